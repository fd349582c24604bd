"""Train a model from a :class:`TrainingConfig`: the one path both the CLI and the
``train`` stage of a recipe take.

Outputs in ``exp_dir``: ``config.yaml`` (resolved, never overwritten: older ones are
kept as ``config.1.yaml``...), ``checkpoints/`` (best N epochs by the monitored metric,
``epochNNN.ckpt``, plus ``last.ckpt`` written at each epoch end and every
``checkpoint_every_n_steps``), ``tensorboard/``, ``csv/metrics.csv``, ``images/*.png``
(loss, accuracy, learning rate per epoch), ``train_summary.json`` and ``model/``
(best-N average, ready for inference; ``task: lm`` trains a language model the same
way, :mod:`espnet_train.lm`); ``checkpoints/ranking.json`` ranks the best N
by file name, so a moved or copied folder exports the same model. Run again after a
kill, ``train`` resumes from ``last.ckpt`` and ends with the same weights as an
unbroken run; a rerun whose config changes more than :data:`~espnet_train.rerun.SAFE_CHANGES`
is refused before anything is written. Every checkpoint is read with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

import lightning as L
import torch
import yaml
from espnet_data import load_tokenizer_dir, read_index
from espnet_data.atomic import atomic_open, write_json
from espnet_model import build_asr_model, count_parameters
from espnet_model.host_memory import keep_freed_host_memory
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from .anneal import Anneal
from .average import MODEL_PREFIX, average_checkpoints
from .budget import TrainingBudget
from .callbacks import (
    AtomicCheckpoint,
    DataPosition,
    EpochHistory,
    EpochLog,
    HostStatsProgressBar,
    RunConfig,
    StepTimer,
)
from .checkpoints import LAST, best_checkpoints, load_checkpoint, ranked_checkpoints
from .components import lightning_arguments
from .config import TrainerConfig, TrainingConfig
from .data import make_stream
from .devices import cpu_has_native_bf16, on_gpu, resolve, resolve_precision, trainer_settings  # noqa: F401 (re-exported)
from .export import export_model_folder
from .lm import build_lm_model, lm_steps_per_epoch, make_text_stream
from .module import LitESPnetModel
from .rerun import check_rerun, plain_config
from .tts import (
    TTS_TASKS,
    build_tts_task_model,
    load_phoneme_tokenizer,
    make_tts_stream,
    save_phoneme_tokenizer,
    tts_steps_per_epoch,
    vocab_size,
)

log = logging.getLogger(__name__)


def _keep_previous(path: Path) -> None:
    """Move ``name.ext`` to the first free ``name.N.ext``, so a rerun never overwrites it."""
    if path.exists():
        n = 1
        while path.with_name(f"{path.stem}.{n}{path.suffix}").exists():
            n += 1
        os.replace(path, path.with_name(f"{path.stem}.{n}{path.suffix}"))


def _save_resolved(config: TrainingConfig, exp_dir: Path) -> None:
    path = exp_dir / "config.yaml"
    _keep_previous(path)
    with atomic_open(path) as f:
        yaml.safe_dump(dataclasses.asdict(config), f, sort_keys=False)


def build_model(config: TrainingConfig, vocab_size: int) -> torch.nn.Module:
    """The model block of the config, with ``stats_file`` linked into global MVN
    (``task: lm``: the LM block, :func:`espnet_train.lm.build_lm_model`)."""
    if config.task == "lm":
        return build_lm_model(config, vocab_size)
    if config.task in TTS_TASKS:
        return build_tts_task_model(config, vocab_size)
    block = json.loads(json.dumps(config.model))
    if block.get("normalize") == "global_mvn":
        conf = block.setdefault("normalize_conf", {})
        conf.setdefault("stats_file", config.stats_file)
        if not conf["stats_file"] or not Path(conf["stats_file"]).is_file():
            raise FileNotFoundError(
                f"normalize: global_mvn needs stats_file, got {conf['stats_file']!r}: "
                "run the collect_stats stage first or set normalize: utterance_mvn"
            )
    # the user's own training.yaml: a class_path model in it is the user's code
    return build_asr_model(block, vocab_size=vocab_size, trust_remote_code=True)


def init_weights(model: torch.nn.Module, path: str) -> None:
    """Load ``init_from``: the model weights of a Lightning checkpoint or of a ``model.pt``."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"init_from: {path} does not exist; give a *.ckpt or a model.pt")
    ckpt = load_checkpoint(path)
    state = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), dict) else ckpt
    if any(k.startswith(MODEL_PREFIX) for k in state):
        state = {k[len(MODEL_PREFIX):]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        detail = "; ".join(line.strip() for line in str(err).splitlines()[1:4])
        raise ValueError(
            f"init_from: {path}: its weights do not fit the model block of this config ({detail}); "
            "init_from needs the same model (sizes, layers, vocabulary) as the run it comes from"
        ) from None
    log.info("model weights from %s (init_from)", path)


def _steps_per_epoch(config: TrainingConfig) -> int:
    seconds = sum(r["duration"] for r in read_index(config.data.train))
    return max(1, int(seconds * 1.15 / config.data.max_seconds) + 1)


def _precision(tc: TrainerConfig) -> str:
    """``tc.precision`` as training uses it (:func:`espnet_train.devices.resolve_precision`)."""
    return resolve_precision(tc)


def train(config: TrainingConfig, *, callbacks: list[L.Callback] | None = None) -> Path:
    """Train, average the best checkpoints, export ``exp_dir/model``; return that folder.

    ``callbacks``: further Lightning callbacks (progress reporting, tests that stop
    training on purpose).
    """
    config = resolve(config)  # precision: auto, num_workers: auto (recorded resolved)
    exp_dir = Path(config.exp_dir)
    ckpt_dir = exp_dir / "checkpoints"
    last = ckpt_dir / LAST
    resume = config.resume and last.exists()
    if resume:  # before anything is written: an edited config must not leave half a change
        check_rerun(config, last)
    exp_dir.mkdir(parents=True, exist_ok=True)
    if rank_zero_only.rank == 0:  # under DDP every rank runs this function
        _save_resolved(config, exp_dir)
        _keep_previous(exp_dir / "csv" / "metrics.csv")  # Lightning's CSVLogger would delete it
    if config.trainer.num_threads:
        torch.set_num_threads(config.trainer.num_threads)
    if config.trainer.keep_host_memory:
        keep_freed_host_memory()
    L.seed_everything(config.seed, workers=True)
    tts = config.task in TTS_TASKS
    if config.task == "vocoder":
        tokenizer = None  # a vocoder reads audio only
    elif tts:
        tokenizer = load_phoneme_tokenizer(config.tokenizer)
    else:
        tokenizer = load_tokenizer_dir(config.tokenizer)
    model = build_model(config, vocab_size(tokenizer) if tokenizer is not None else 0)
    log.info("model: %.2fM parameters", count_parameters(model) / 1e6)
    if config.init_from and not resume:
        init_weights(model, config.init_from)
    tc = config.trainer
    if tts:
        pin = on_gpu(tc)
        train_stream = make_tts_stream(config, config.data.train, tokenizer, train=True, seed=config.seed,
                                       pin_memory=pin)
        valid_stream = make_tts_stream(config, config.data.valid, tokenizer, train=False, pin_memory=pin)
    elif config.task == "lm":
        train_stream = make_text_stream(config.data.train, config.data, tokenizer.encode, train=True, seed=config.seed)
        valid_stream = make_text_stream(config.data.valid, config.data, tokenizer.encode, train=False)
    else:  # page-locked batches on a GPU: their copies to the device do not wait for it
        pin = on_gpu(tc)
        train_stream = make_stream(config.data.train, config.data, tokenizer.encode, train=True, seed=config.seed,
                                   pin_memory=pin)
        valid_stream = make_stream(config.data.valid, config.data, tokenizer.encode, train=False, pin_memory=pin)
    per_epoch = (lm_steps_per_epoch(config, tokenizer.encode) if config.task == "lm"
                 else tts_steps_per_epoch(config) if tts else _steps_per_epoch(config))
    total_steps = per_epoch * tc.max_epochs // max(1, tc.accumulate_grad_batches)
    budget = TrainingBudget(total_steps, _seconds(tc.max_time) if config.sized_by_time else None)
    lit = LitESPnetModel(
        model,
        config.optim,
        optims=config.optims or None,
        nan_policy=config.nan_policy,
        bad_batch_limit=config.max_consecutive_bad_batches,
        total_steps=total_steps,
        budget=budget,
        gradient_clip_val=tc.gradient_clip_val,
        accumulate_grad_batches=tc.accumulate_grad_batches,
        monitor=config.monitor,
        monitor_mode=config.mode,
    )
    best_ckpt = AtomicCheckpoint(
        dirpath=ckpt_dir,
        filename="epoch{epoch:03d}",
        auto_insert_metric_name=False,
        monitor=config.monitor,
        mode=config.mode,
        save_top_k=config.best_n,
        save_last=True,
        enable_version_counter=False,
        ranking=True,
    )
    checkpoints: list[L.Callback] = [best_ckpt]
    if config.checkpoint_every_n_steps:
        checkpoints.append(AtomicCheckpoint(
            dirpath=ckpt_dir,
            every_n_train_steps=config.checkpoint_every_n_steps,
            save_top_k=0,
            save_last=True,
            enable_version_counter=False,
        ))
    progress = tc.enable_progress_bar if tc.enable_progress_bar is not None else sys.stderr.isatty()
    history = EpochHistory(exp_dir / "images")
    timer = [StepTimer(duration=tc.max_time, every=tc.log_every_n_steps)] if tc.max_time else []
    if timer:  # the schedule's clock is the one that stops the run
        budget.follow(lambda: timer[0].time_elapsed("train"))
    curricula = [Anneal(config.anneal, budget)] if config.anneal else []
    given = lightning_arguments(tc)  # the other Trainer arguments; the user's components
    trainer = L.Trainer(
        default_root_dir=exp_dir,
        max_epochs=tc.max_epochs,
        **trainer_settings(tc),
        log_every_n_steps=tc.log_every_n_steps,
        callbacks=[
            RunConfig(plain_config(config)),
            DataPosition(train_stream),
            history,
            EpochLog(history, max_time_s=_seconds(tc.max_time),
                     sample_rate=None if config.task == "lm" else _sample_rate(config.data.train)),
            LearningRateMonitor(),
            *timer,
            *curricula,
            *([HostStatsProgressBar()] if progress else []),
            *(callbacks or []),
            *given.pop("callbacks"),
            *checkpoints,
        ],
        logger=[
            TensorBoardLogger(exp_dir, name="tensorboard", version=""),
            CSVLogger(exp_dir, name="csv", version=""),
            *given.pop("logger"),
        ],
        enable_progress_bar=progress,
        **given,
    )
    if resume:
        log.info("resuming from %s", last)
    start = time.perf_counter()
    # weights_only=True even where TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set
    trainer.fit(lit, train_stream, valid_stream, ckpt_path=str(last) if resume else None, weights_only=True)
    if not trainer.is_global_zero:
        return exp_dir / "model"
    if best_ckpt.best_k_models:  # a finished run started again saved nothing: write it anyway
        best_ckpt.write_ranking()
    ranked = ranked_checkpoints(ckpt_dir, monitor=config.monitor, mode=config.mode)
    best = best_checkpoints(ckpt_dir, config.best_n, monitor=config.monitor, mode=config.mode, ranked=ranked)
    log.info("averaging %d checkpoints: %s", len(best), [p.name for p in best])
    summary = {
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "optimizer_steps": lit.optimizer_steps,
        "trained_batches": lit.trained_batches,
        "averaged": [p.name for p in best],
        "monitor": config.monitor,
        "best_scores": {p.name: s for p, s in ranked},
        "parameters": count_parameters(model),
        "skipped_batches": lit.skipped_batches,
    }
    out = export_model_folder(
        exp_dir / "model",
        state_dict=average_checkpoints(best),
        model_config=config.model,
        tokenizer=tokenizer,
        sample_rate=None if config.task == "lm" else _sample_rate(config.data.train),
        stats_file=config.stats_file,
        training=summary,
        task=None if config.task == "asr" else config.task,
        write_tokenizer=save_phoneme_tokenizer if tts else None,
    )
    # the wall time stays out of the model folder: a finished run started again re-exports
    # byte-identical files, so results decoded from them stay valid
    write_json(exp_dir / "train_summary.json",
               {**summary, "train_seconds": round(time.perf_counter() - start, 1)})
    return out


def _seconds(max_time: str | None) -> float | None:
    """``DD:HH:MM:SS`` in seconds."""
    if not max_time:
        return None
    days, hours, minutes, seconds = (int(x) for x in max_time.split(":"))
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _sample_rate(split_dir: str) -> int:
    summary = Path(split_dir) / "summary.json"
    if summary.exists():
        return int(json.loads(summary.read_text()).get("sample_rate", 16000))
    return 16000
