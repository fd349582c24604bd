"""The typed schema of ``training.yaml`` (parsed by jsonargparse).

Every key of the YAML is a field below; an unknown key is an error that names it.
The ``model`` block is ESPnet2-style (``encoder: conformer``, ``encoder_conf: {...}``)
and is handed to ``espnet_model.build_asr_model`` as it is.
"""

from __future__ import annotations

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
        num_workers: DataLoader worker processes (0 reads in the training process).
    """

    train: str
    valid: str
    max_seconds: float = 120.0
    max_batch_size: int = 128
    buffer_size: int = 2000
    num_workers: int = 1


@dataclass
class OptimConfig:
    """AdamW with a warmup schedule.

    Args:
        lr: peak learning rate.
        scheduler: ``warmuplr`` (ESPnet2's: linear warmup, then inverse square root decay),
            ``cosine`` (linear warmup, cosine decay to ``min_lr`` over training), ``constant``.
        warmup_steps: optimizer steps of linear warmup.
    """

    lr: float = 2e-3
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    scheduler: Literal["warmuplr", "cosine", "constant"] = "warmuplr"
    warmup_steps: int = 1000
    min_lr: float = 1e-5


@dataclass
class TrainerConfig:
    """Arguments handed to ``lightning.Trainer``.

    ``devices``/``num_nodes``/``strategy`` select DDP on several GPUs or nodes.
    ``num_threads`` sets torch's intra-op threads on CPU (None keeps torch's default).
    """

    max_epochs: int = 30
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    gradient_clip_val: float = 5.0
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 20
    num_threads: int | None = None
    max_time: str | None = None  # "DD:HH:MM:SS": stop gracefully after this long


@dataclass
class TrainingConfig:
    """Everything ``espnet-train`` needs.

    Args:
        exp_dir: output folder: checkpoints, logs, the resolved config, ``model/``.
        tokenizer: folder written by ``train_tokenizer`` (holds ``tokenizer.yaml``).
        model: ESPnet2-style model block (frontend, specaug, normalize, encoder, decoder,
            model_conf with their ``*_conf``).
        stats_file: feature statistics from ``collect_stats`` (for ``normalize: global_mvn``).
        best_n: checkpoints kept and averaged into the final ``model.pt``.
        monitor: validation metric that ranks checkpoints.
        resume: continue from ``exp_dir/checkpoints/last.ckpt`` when it exists.
        nan_policy: ``skip`` drops a batch whose loss is NaN/Inf (counted in the log);
            ``raise`` stops training.
    """

    exp_dir: str
    tokenizer: str
    data: DataConfig
    model: dict[str, Any] = field(default_factory=dict)
    stats_file: str | None = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    best_n: int = 5
    monitor: Literal["valid/loss", "valid/acc", "valid/loss_ctc"] = "valid/loss"
    seed: int = 0
    resume: bool = True
    nan_policy: Literal["skip", "raise"] = "skip"
