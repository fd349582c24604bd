"""The typed schema of ``training.yaml`` (parsed by jsonargparse).

Every key of the YAML is a field below; an unknown key is an error that names it.
The ``model`` block is ESPnet2-style (``encoder: conformer``, ``encoder_conf: {...}``)
and is handed to ``espnet_model.build_asr_model`` as it is; with ``task: lm`` it is an
ESPnet2 LM block (``lm: transformer``, ``lm_conf``) for ``espnet_model.lm.build_lm``.
It is checked when the config is parsed (``espnet_model.builder.check_asr_config``: the
model built on the meta device), so ``espnet-run --dry_run`` and the start of ``all``
catch a typo in it, naming the key and the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class DataConfig:
    """Where the shards are and how batches are made.

    Args:
        train: folder of the training split (``shard-*.tar`` + ``index.jsonl``).
        valid: folder of the validation split.
        max_seconds: padded seconds of audio per batch (dynamic batching).
        max_batch_size: hard cap on utterances per batch.
        buffer_size: samples sorted together by length before cutting batches.
        shortest_first_epochs: length curriculum (SortaGrad; ESPnet1's ``--sortagrad``):
            during the first N epochs each buffer's batches come shortest first instead
            of shuffled (the same batches, bucketed by seconds as always), then in
            shuffled order. Exact over a buffer: a ``buffer_size`` of at least the
            utterances one loader worker reads per epoch sorts the whole epoch. 0: off.
        num_workers: DataLoader worker processes (0 reads in the training process);
            ``auto``: from the cores per device (:mod:`espnet_train.devices`).
        speed_perturb: speed factors drawn per training utterance, e.g. ``[0.9, 1.0, 1.1]``
            (``espnet_data.augment.SpeedPerturb``); null: off.
        reverb: convolve training utterances with rooms simulated per utterance
            (``espnet_data.augment.AddReverb``: reverberation time from ``reverb_rt60``,
            direct-to-reverberant ratio from ``reverb_drr_db``), before any noise.
        rir: instead of simulated rooms, a list file of room impulse response audio paths
            (one per line; ESPnet2's ``rir_scp``) or one RIR file; setting it turns
            reverberation on by itself. null: simulated rooms when ``reverb``, else off.
        reverb_prob: chance that a training utterance is reverberated.
        reverb_rt60: ``[low, high]`` seconds of reverberation time (simulated rooms).
        reverb_drr_db: ``[low, high]`` direct-to-reverberant ratio in dB (simulated rooms).
        noise: a list file of noise audio paths (one per line) mixed into training
            utterances (``espnet_data.augment.AddNoise``); null: off.
        noise_snr_db: ``[low, high]`` SNR range of the added noise, in dB.
        noise_prob: chance that a training utterance gets noise.
        max_tokens: ``task: lm`` only (text splits): padded tokens per batch, counting
            each sentence's ``<eos>`` (``max_seconds`` is the speech budget).
        segment_seconds: ``task: vocoder`` only: each training utterance is a random
            crop of this many seconds (shorter ones are kept whole).
    """

    train: str
    valid: str
    max_seconds: float = 120.0
    max_batch_size: int = 128
    buffer_size: int = 2000
    shortest_first_epochs: int = 0
    num_workers: int | Literal["auto"] = 1
    speed_perturb: list[float] | None = None
    reverb: bool = False
    rir: str | None = None
    reverb_prob: float = 1.0
    reverb_rt60: tuple[float, float] = (0.2, 1.0)
    reverb_drr_db: tuple[float, float] = (-5.0, 10.0)
    noise: str | None = None
    noise_snr_db: tuple[float, float] = (10.0, 20.0)
    noise_prob: float = 1.0
    max_tokens: int = 8000
    segment_seconds: float = 0.5


    def __post_init__(self) -> None:
        if self.shortest_first_epochs < 0:
            raise ValueError(
                f"data.shortest_first_epochs: {self.shortest_first_epochs} must be >= 0 (epochs "
                "of shortest-first batches at the start of training; 0: off)"
            )


@dataclass
class OptimConfig:
    """One optimizer and its learning-rate schedule.

    Args:
        name: ``adamw``, ``adam`` or ``sgd`` (``momentum``/``nesterov`` apply to sgd only).
        lr: peak learning rate (for ``noam``: the factor in front of its formula).
        scheduler: stepped once per optimizer step, never on a skipped batch:
            ``warmuplr`` (ESPnet2's: linear warmup, then inverse square root decay),
            ``noam`` (``lr * model_size**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)``),
            ``cosine`` (linear warmup, cosine decay to ``min_lr`` over training),
            ``linear`` (linear warmup, linear decay to ``min_lr`` over training),
            ``reduce_on_plateau`` (multiply by ``plateau_factor`` after ``plateau_patience``
            epochs without improvement of ``monitor``), ``constant``.
        warmup_steps: optimizer steps of linear warmup.
        horizon: where ``cosine``/``linear`` end: ``steps`` (``max_epochs`` worth of
            optimizer steps) or ``time`` (also ``trainer.max_time``: the decay follows the
            larger of the step and the time fraction, so it ends when the time budget
            does on a slow day too; :mod:`espnet_train.budget`).
        model_size: ``d_model`` of the ``noam`` formula.
        params: multi-optimizer models only: the prefix of the parameter names
            (``model.named_parameters()``) this optimizer updates, e.g. ``generator.``.
        grad_clip: gradient-norm clipping for this optimizer's parameters; None takes
            ``trainer.gradient_clip_val``.
        optimizer: any ``torch.optim`` optimizer by ``{class_path, init_args}`` (``lr``
            from ``init_args``), replacing ``name`` and its hyper-parameters; the schedule
            keys above still apply. ``optim: {class_path: ..., init_args: ...}`` is short
            for ``optim: {optimizer: {class_path: ..., init_args: ...}}``. Your own
            training.yaml only (:mod:`espnet_train.components`).
    """

    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    momentum: float = 0.9
    nesterov: bool = False
    scheduler: Literal["warmuplr", "noam", "cosine", "linear", "reduce_on_plateau", "constant"] = "warmuplr"
    warmup_steps: int = 1000
    horizon: Literal["steps", "time"] = "steps"
    min_lr: float = 1e-5
    model_size: int = 256
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    params: str | None = None
    grad_clip: float | None = None
    optimizer: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.optimizer is not None:
            from .components import check_optimizer, optimizer_lr

            self.optimizer = check_optimizer("optim.optimizer", self.optimizer)
            self.lr = optimizer_lr(self.optimizer, default=self.lr)


@dataclass
class AnnealConfig:
    """One moving setting.

    Args:
        start: the value at the beginning of the run.
        begin: fraction of the run where it starts to move (held at ``start`` before).
        until: fraction of the run where it reaches the configured value (held after).
        shape: ``linear`` or ``cosine`` (slow at both ends) between ``begin`` and ``until``.
    """

    start: float
    begin: float = 0.0
    until: float = 1.0
    shape: Literal["linear", "cosine"] = "linear"

    def __post_init__(self) -> None:
        if not 0.0 <= self.begin < self.until <= 1.0:
            raise ValueError(f"begin {self.begin} and until {self.until} must satisfy 0 <= begin < until <= 1 "
                             "(fractions of the run)")

    def value(self, end: float, fraction: float) -> float:
        """The setting at ``fraction`` of the run, moving from ``start`` to ``end``."""
        t = min(1.0, max(0.0, (fraction - self.begin) / (self.until - self.begin)))
        if self.shape == "cosine":
            t = 0.5 * (1 - math.cos(math.pi * t))
        return self.start + (end - self.start) * t


@dataclass
class TrainerConfig:
    """Arguments handed to ``lightning.Trainer``.

    ``devices``/``num_nodes``/``strategy`` select DDP on several GPUs or nodes
    (``strategy: ddp``; on CPU ``accelerator: cpu, devices: 2`` runs 2 gloo processes).
    ``precision``: ``auto`` (``bf16-mixed`` on CUDA devices with bf16, else ``32-true``),
    ``32-true``, ``bf16-mixed`` (GPU, or CPUs with AVX-512 bf16 or AMX;
    other CPUs train in fp32 with a warning) or
    ``16-mixed`` (GPU only, with a gradient scaler). ``gradient_clip_val`` clips the
    global gradient norm (0 or None: no clipping); ``accumulate_grad_batches`` sums the
    gradients of that many batches per optimizer step. ``num_threads`` sets torch's
    intra-op threads on CPU (None keeps torch's default). ``enable_progress_bar``: None
    shows it when stderr is a terminal. ``keep_host_memory`` (glibc only) keeps freed
    host memory for reuse instead of returning large blocks to the OS
    (:mod:`espnet_model.host_memory`): faster CPU steps, RSS stays at its peak.

    Every other ``lightning.Trainer`` argument is a key here too, passed as given with
    Lightning's default (``val_check_interval``, ``limit_train_batches``, ``max_steps``,
    ``deterministic``, ...), except the few the run owns (:data:`TRAINER_OWNED`, each
    refused with what to set instead). Components by ``class_path`` / ``init_args``
    (:mod:`espnet_train.components`; from your own training.yaml only):
    ``callbacks`` (added to the run's own: checkpoints, logs, plots), ``loggers``
    (added to TensorBoard and CSV), ``profiler`` (``simple``, ``advanced``, ``pytorch``
    or a class) and ``plugins``.
    """

    max_epochs: int = 30
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed", "32", "bf16", "16"] = "auto"
    gradient_clip_val: float | None = 5.0
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 20
    num_threads: int | None = None
    max_time: str | None = None  # "DD:HH:MM:SS": stop gracefully after this long
    enable_progress_bar: bool | None = None
    keep_host_memory: bool = True
    # the other lightning.Trainer arguments, with Lightning's defaults
    min_epochs: int | None = None
    max_steps: int = -1
    min_steps: int | None = None
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    limit_test_batches: int | float | None = None
    limit_predict_batches: int | float | None = None
    overfit_batches: int | float = 0.0
    val_check_interval: int | float | str | None = None
    check_val_every_n_epoch: int | None = 1
    num_sanity_val_steps: int | None = None
    enable_model_summary: bool | None = True
    deterministic: bool | Literal["warn"] | None = None
    benchmark: bool | None = None
    inference_mode: bool = True
    use_distributed_sampler: bool = True
    detect_anomaly: bool = False
    sync_batchnorm: bool = False
    reload_dataloaders_every_n_epochs: int = 0
    enable_autolog_hparams: bool = True
    model_registry: str | None = None
    # class_path components
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    loggers: list[dict[str, Any]] = field(default_factory=list)
    profiler: str | dict[str, Any] | None = None
    plugins: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.callbacks or self.loggers or self.profiler or self.plugins:
            from .components import check_trainer_components

            check_trainer_components(self)


#: lightning.Trainer arguments the run sets itself, and what to write instead
TRAINER_OWNED: dict[str, str] = {
    "default_root_dir": "the run writes into exp_dir: set exp_dir",
    "logger": "TensorBoard and CSV logging are always on: add loggers under trainer.loggers "
              "(class_path + init_args)",
    "enable_checkpointing": "the run's checkpoints are what best_n averages and resume reads: "
                            "tune checkpoint_every_n_steps and best_n",
    "gradient_clip_algorithm": "gradients are clipped by their global norm (gradient_clip_val, "
                               "or optim.grad_clip per optimizer)",
    "fast_dev_run": "it turns off checkpoints, which the exported model needs: use "
                    "limit_train_batches / limit_val_batches with max_epochs: 1",
    "barebones": "it turns off checkpoints and logging, which the run needs",
}


@dataclass
class TrainingConfig:
    """Everything ``espnet-train`` needs.

    Args:
        exp_dir: output folder: checkpoints, logs, the resolved config, ``model/``.
        tokenizer: folder written by ``train_tokenizer`` (holds ``tokenizer.yaml``).
        task: ``asr`` (speech splits, an ASR model block) or ``lm`` (text splits written
            by ``espnet_data.text``, an ESPnet2 LM block ``lm``/``lm_conf``/``model_conf``
            built by ``espnet_model.lm.build_lm``, batches of ``data.max_tokens``; see
            :mod:`espnet_train.lm`); ``tts`` (a FastSpeech2 block of
            ``espnet_model.tts``, phoneme ids + audio + the durations of each split's
            ``durations.jsonl``), ``tts_aligner`` (the CTC aligner that makes those
            durations) or ``vocoder`` (HiFi-GAN on audio crops, ``optims:
            {generator, discriminator}``), all three on speech splits with the phoneme
            tokenizer (:mod:`espnet_train.tts`). Everything else (optimizers,
            checkpoints, resume, averaging, the exported folder) is shared.
        model: ESPnet2-style model block (frontend, specaug, normalize, encoder, decoder,
            model_conf with their ``*_conf``; for ``task: lm``: lm, lm_conf, model_conf).
        stats_file: feature statistics from ``collect_stats`` (for ``normalize: global_mvn``).
        optim: the optimizer and its schedule: a block (:class:`OptimConfig`), any torch
            optimizer by ``{class_path, init_args}``, or an ESPnet2 name (``adam``) with
            ``optim_conf``, ``scheduler`` and ``scheduler_conf`` in ESPnet2's meaning
            (:mod:`espnet_train.espnet2`); parsed, it is always an :class:`OptimConfig`.
        optim_conf / scheduler / scheduler_conf: ESPnet2's keys, with ``optim: <name>``.
        optims: multi-optimizer (GAN-style) models only, replacing ``optim``: named
            optimizers (each with ``params``, the prefix of the parameters it updates);
            the model returns ``OptimizationStep(loss=..., name=...)`` objects that
            route each loss to one of these names.
        best_n: checkpoints kept and averaged into the final ``model.pt``.
        monitor: validation metric that ranks checkpoints (``valid/<stat>`` for any
            stat the model returns, e.g. ``valid/acc``, ``valid/loss_att``).
        monitor_mode: ``min`` or ``max``; None means ``max`` for ``acc`` metrics, else ``min``.
        checkpoint_every_n_steps: also write ``last.ckpt`` every N optimizer steps
            (0: only at the end of each epoch).
        resume: continue from ``exp_dir/checkpoints/last.ckpt`` when it exists, with the
            same data order and random state, so the end result equals an unbroken run.
            A rerun whose config differs from the checkpoint's in a key other than
            ``espnet_train.rerun.SAFE_CHANGES`` is refused before anything is written.
        init_from: start a new run from the model weights of this checkpoint
            (``*.ckpt``) or ``model.pt`` (the same model block; optimizer and schedule
            start fresh), e.g. to fork a run with another ``optim.lr``; ignored when the
            run resumes from its own ``last.ckpt``.
        nan_policy: ``skip`` drops a batch whose loss or gradient is NaN/Inf on any rank
            (on every rank together, counted in the log); ``raise`` stops training.
        max_consecutive_bad_batches: ``skip`` stops with an error after this many
            bad batches in a row.
        anneal: curricula: model settings that start elsewhere and move to their
            configured values during the run, e.g. ``ctc_weight: {start: 0.9, until: 0.4}``
            or ``dropout: {start: 0.0, until: 0.5}`` (:mod:`espnet_train.anneal`).
    """

    exp_dir: str
    tokenizer: str
    data: DataConfig
    task: Literal["asr", "lm", "tts", "tts_aligner", "vocoder"] = "asr"
    model: dict[str, Any] = field(default_factory=dict)
    stats_file: str | None = None
    optim: OptimConfig | str | dict[str, Any] = field(default_factory=OptimConfig)
    optims: dict[str, OptimConfig] = field(default_factory=dict)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    best_n: int = 5
    monitor: str = "valid/loss"
    monitor_mode: Literal["min", "max"] | None = None
    checkpoint_every_n_steps: int = 1000
    seed: int = 0
    resume: bool = True
    init_from: str | None = None
    nan_policy: Literal["skip", "raise"] = "skip"
    max_consecutive_bad_batches: int = 100
    anneal: dict[str, AnnealConfig] = field(default_factory=dict)
    optim_conf: dict[str, Any] | None = None
    scheduler: str | None = None
    scheduler_conf: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._optim_block()
        if not self.monitor.startswith("valid/"):
            raise ValueError(
                f"monitor: {self.monitor!r} must name a validation stat, e.g. valid/loss or valid/acc"
            )
        if self.max_consecutive_bad_batches < 1:
            raise ValueError(
                f"max_consecutive_bad_batches: {self.max_consecutive_bad_batches} must be >= 1"
            )
        if self.checkpoint_every_n_steps < 0:
            raise ValueError(
                f"checkpoint_every_n_steps: {self.checkpoint_every_n_steps} must be >= 0 (0: per epoch only)"
            )
        self._check_task()
        self._check_model()
        timed = [f"optims.{n}" for n, o in self.optims.items() if o.horizon == "time"]
        timed += ["optim"] if not self.optims and self.optim.horizon == "time" else []
        if timed and not self.trainer.max_time:
            raise ValueError(f"{timed[0]}.horizon: time sizes the schedule by trainer.max_time, which is "
                             "not set: set trainer.max_time (e.g. \"00:00:25:00\") or horizon: steps")

    def _optim_block(self) -> None:
        """``optim`` as an :class:`OptimConfig`, whichever of its three shapes was written."""
        espnet2 = {"optim_conf": self.optim_conf, "scheduler": self.scheduler,
                   "scheduler_conf": self.scheduler_conf}
        if isinstance(self.optim, OptimConfig):
            given = [k for k, v in espnet2.items() if v]
            if given:
                raise ValueError(f"{', '.join(given)}: ESPnet2's keys go with optim: <name> (e.g. "
                                 "optim: adam) or optim: {class_path, init_args}; with an optim: "
                                 "block, set its scheduler and warmup_steps instead")
            return
        if isinstance(self.optim, dict) and "class_path" not in self.optim:
            self.optim = _optim_from_mapping("optim", self.optim)
            return self._optim_block()
        if isinstance(self.optim, dict) and not any(espnet2.values()):  # short for {optimizer: ...}
            self.optim = OptimConfig(optimizer=self.optim)
            return
        from .espnet2 import translate_optim

        self.optim = translate_optim(self.optim, self.optim_conf, self.scheduler, self.scheduler_conf)
        self.optim_conf = self.scheduler = self.scheduler_conf = None

    def _check_model(self) -> None:
        """The model block, checked now (without weights), so a typo in it stops the run
        before any stage or data loading: the key and the closest valid one."""
        if self.task not in ("asr", "lm") or not self.model:
            return  # the other tasks' builders check their blocks when training starts
        try:
            _check_model_block(self.task, json.dumps(self.model, sort_keys=True, default=str))
        except ValueError as err:
            raise ValueError(f"model: {err}") from None

    @property
    def sized_by_time(self) -> bool:
        """Whether schedules and curricula follow ``trainer.max_time`` (some ``horizon: time``)."""
        confs = list(self.optims.values()) or [self.optim]
        return any(o.horizon == "time" for o in confs)

    def _check_task(self) -> None:
        """The model block and the audio-only keys must fit ``task``."""
        if self.task != "asr" and self.data.shortest_first_epochs:
            raise ValueError(
                f"data.shortest_first_epochs: {self.data.shortest_first_epochs} orders the batches "
                f"of task: asr only; remove it for task: {self.task}"
            )
        if self.task == "asr":
            if "lm" in self.model or "lm_conf" in self.model:
                raise ValueError("model: has an LM block (lm / lm_conf): set task: lm to train "
                                 "a language model")
            if "tts" in self.model or "vocoder" in self.model:
                kind = "tts" if "tts" in self.model else "vocoder"
                raise ValueError(f"model: has a {kind} block ({kind}: ...): set task: {kind}")
            return
        if self.task in ("tts", "tts_aligner", "vocoder"):
            self._check_tts_task()
            return
        audio = {"stats_file": self.stats_file, "data.speed_perturb": self.data.speed_perturb,
                 "data.reverb": self.data.reverb, "data.rir": self.data.rir,
                 "data.noise": self.data.noise}
        given = [key for key, value in audio.items() if value]
        if given:
            raise ValueError(
                f"task: lm trains a language model on text; {', '.join(given)} appl"
                f"{'ies' if len(given) == 1 else 'y'} to speech only: remove "
                f"{'it' if len(given) == 1 else 'them'} (or set task: asr)"
            )
        if self.data.max_tokens < 2:
            raise ValueError(f"data.max_tokens: {self.data.max_tokens} must be >= 2 (padded tokens per batch)")

    def _check_tts_task(self) -> None:
        """Speech augmentation would change the targets; each task needs its own block."""
        given = [k for k, v in {"data.speed_perturb": self.data.speed_perturb,
                                "data.reverb": self.data.reverb, "data.rir": self.data.rir,
                                "data.noise": self.data.noise}.items() if v]
        if given:
            raise ValueError(
                f"task: {self.task}: {', '.join(given)} would alter the audio the model learns "
                "to produce (and its durations): remove it"
            )
        if self.task == "tts" and "tts" not in self.model:
            raise ValueError("task: tts needs a model block with tts: fastspeech2 (and tts_conf, "
                             "feats_extract_conf)")
        if self.task != "tts" and "tts" in self.model:
            raise ValueError(f"task: {self.task}: model has tts: {self.model['tts']!r}, an "
                             "acoustic model block; set task: tts")
        if self.task == "vocoder" and not self.optims:
            raise ValueError("task: vocoder trains a GAN: set optims: {generator: {params: "
                             "generator., ...}, discriminator: {params: discriminator., ...}}")
        if self.task == "vocoder" and self.data.segment_seconds <= 0:
            raise ValueError(f"data.segment_seconds: {self.data.segment_seconds} must be > 0")

    @property
    def mode(self) -> Literal["min", "max"]:
        """Whether a lower (``min``) or higher (``max``) ``monitor`` value is better."""
        if self.monitor_mode is not None:
            return self.monitor_mode
        return "max" if self.monitor.endswith("acc") else "min"


def _optim_from_mapping(where: str, block: dict[str, Any]) -> OptimConfig:
    """An optim block jsonargparse could not read as :class:`OptimConfig` (an unknown key)."""
    names = [f.name for f in dataclasses.fields(OptimConfig)]
    for key in block:
        if key not in names:
            match = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            raise ValueError(f"unknown key {where}.{key!r}{hint}; valid keys under {where!r}: "
                             f"{', '.join(names)} (or class_path + init_args for a torch optimizer)")
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(OptimConfig, as_group=False)
    try:  # the values, against the field types
        parsed = parser.parse_object(block)
    except Exception as err:  # jsonargparse's ArgumentError
        raise ValueError(f"{where}: {' '.join(str(err).split())}") from None
    init = parser.instantiate(parsed)
    return OptimConfig(**{name: init[name] for name in names})


@functools.lru_cache(maxsize=16)
def _check_model_block(task: str, block: str) -> None:
    """Check a model block (as JSON: the cache key) once per process."""
    if task == "lm":
        from espnet_model.lm.builder import check_lm_config

        check_lm_config(json.loads(block))
    else:
        from espnet_model.builder import check_asr_config

        # the user's own training.yaml: a class_path in it is the user's code
        check_asr_config(json.loads(block), trust_remote_code=True)
