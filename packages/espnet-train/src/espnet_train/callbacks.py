"""Lightning callbacks of ``train``: atomic checkpoints, the data position, the epoch history.

* :class:`AtomicCheckpoint` writes each checkpoint to ``<name>.partial`` and renames
  it, so a kill during a save leaves the previous ``last.ckpt`` whole. With
  ``ranking=True`` it keeps ``ranking.json`` (best first, file names relative to the
  folder) next to the checkpoints, and restores its best-k list from it when the folder
  was moved or copied (Lightning then drops the absolute paths it saved).
* :class:`RunConfig` stores the resolved training config in every checkpoint (plain
  values), so a rerun can tell what changed before it resumes.
* :class:`DataPosition` tells the :class:`~espnet_train.data.BatchStream` the epoch and
  counts the batches trained in it (saved in checkpoints through the stream).
* :class:`EpochHistory` keeps one row of metrics per epoch (train means, validation
  metrics, learning rate; saved in checkpoints, so a resumed run continues it),
  steps ``reduce_on_plateau`` and redraws ``images/*.png``. It runs at validation end,
  before the epoch checkpoint is written.
* :class:`EpochLog` writes one line per epoch through ``logging`` (train and valid
  loss and accuracy, epoch time, ETA), so ``train.log`` has them with no terminal.
* :class:`StepTimer` is Lightning's ``Timer`` (``trainer.max_time``) checking every
  ``log_every_n_steps`` batches instead of every batch (its check is a broadcast
  under DDP, which waits for the device).
* :class:`HostStatsProgressBar` shows the loss the module read back at its last
  settle, so the bar reads nothing from the device itself.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any
from weakref import proxy

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, Timer, TQDMProgressBar

from .checkpoints import RANKING_FILE, ranked_checkpoints, write_ranking
from .data import BatchStream
from .plots import plot_history

log = logging.getLogger(__name__)


class AtomicCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that never leaves a half-written file under the final name.

    ``ranking``: keep ``dirpath/ranking.json`` (the best-k checkpoints and scores) up to date
    after every save; use it on the callback that ranks (``monitor``, ``save_top_k > 0``).
    """

    def __init__(self, *args: Any, ranking: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ranking = ranking

    @property
    def state_key(self) -> str:
        # ModelCheckpoint's key, so checkpoints written before this class existed still
        # restore the best-k scores (the key embeds the class name)
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        settle = getattr(trainer.lightning_module, "settle", None)
        if settle is not None:  # deferred NaN checks may raise: before a file is opened
            settle()
        partial = f"{filepath}.partial"
        trainer.save_checkpoint(partial, self.save_weights_only)
        if trainer.is_global_zero:
            os.replace(partial, filepath)
            # best_k_models already holds this file and no longer the one it replaces
            self.write_ranking()
        trainer.strategy.barrier("atomic_checkpoint")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def write_ranking(self) -> None:
        if self.ranking and self.dirpath and self.monitor:
            scores = {p: float(s) for p, s in self.best_k_models.items()}
            write_ranking(Path(self.dirpath), scores, monitor=self.monitor, mode=self.mode)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        moved = state_dict.get("dirpath", self.dirpath) != self.dirpath
        if not moved:
            super().load_state_dict(state_dict)
            return
        # the folder was moved or copied: Lightning drops the saved absolute paths (and warns
        # about it); the ranking inside the folder, or the checkpoints' own scores, replace them
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The dirpath has changed")
            super().load_state_dict(state_dict)
        if not (self.ranking and self.dirpath and self.monitor):
            return
        ckpt_dir = Path(self.dirpath)
        ranked = ranked_checkpoints(ckpt_dir, monitor=self.monitor, mode=self.mode)
        ranked = [(p, s) for p, s in ranked if p.exists()][: self.save_top_k if self.save_top_k > 0 else None]
        log.info("checkpoints moved from %s to %s: best-%d list restored from %s",
                 state_dict.get("dirpath"), ckpt_dir, len(ranked), RANKING_FILE)
        if not ranked:
            return
        self.best_k_models = {str(p): torch.tensor(s) for p, s in ranked}
        self.best_model_path, self.best_model_score = str(ranked[0][0]), torch.tensor(ranked[0][1])
        if len(ranked) == self.save_top_k:
            self.kth_best_model_path = str(ranked[-1][0])
            self.kth_value = self.best_k_models[self.kth_best_model_path]


class RunConfig(L.Callback):
    """Store ``config`` (plain values: dicts, lists, numbers, strings) in every checkpoint."""

    KEY = "espnet_train_config"

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[self.KEY] = self.config


class DataPosition(L.Callback):
    """Keep the training stream's epoch and position in step with the training loop."""

    def __init__(self, stream: BatchStream) -> None:
        self.stream = stream

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stream.set_epoch(trainer.current_epoch)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.stream.consumed += 1


class EpochHistory(L.Callback):
    """One row per epoch; ``images/*.png`` redrawn on rank 0 after each validation."""

    def __init__(self, images_dir: str | os.PathLike[str] | None) -> None:
        self.images_dir = Path(images_dir) if images_dir is not None else None
        self.history: list[dict[str, Any]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("valid/")}
        row: dict[str, Any] = {"epoch": trainer.current_epoch + 1}
        means = pl_module.epoch_train_means() if hasattr(pl_module, "epoch_train_means") else {}
        row.update({f"train/{k}": v for k, v in means.items()})
        row.update(metrics)
        names = list(getattr(pl_module, "optim_confs", {})) or [str(i) for i in range(len(trainer.optimizers))]
        for name, opt in zip(names, trainer.optimizers, strict=False):
            key = "lr" if len(trainer.optimizers) == 1 else f"lr_{name}"
            row[key] = float(opt.param_groups[0]["lr"])
        if hasattr(pl_module, "step_epoch_schedulers"):
            pl_module.step_epoch_schedulers(metrics)
        self.history = [r for r in self.history if r["epoch"] != row["epoch"]] + [row]
        if trainer.is_global_zero and self.images_dir is not None:
            try:
                plot_history(self.history, self.images_dir)
            except Exception as err:  # noqa: BLE001 - a plot must never stop training
                log.warning("could not draw %s: %r", self.images_dir, err)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))


def _hms(seconds: float) -> str:
    return str(timedelta(seconds=int(round(seconds))))


class EpochLog(L.Callback):
    """One ``logging`` line per epoch, on rank 0, after validation::

        epoch 3/30: train loss 41.2 acc 0.512 | valid loss 38.7 acc 0.54 | 212.4 s (train 198.1 s, 1,234 audio s/s) | ETA 1:35:40

    The figures are :class:`EpochHistory`'s row (put this callback after it). The ETA
    is the mean epoch time times the epochs left, capped by what ``max_time`` leaves
    (the run stops there); ``audio s/s`` counts the ``speech_lengths`` of the trained
    batches at ``sample_rate`` (host values: the lengths never leave the CPU).
    """

    STATS = ("loss", "acc", "loss_ctc", "loss_att")

    def __init__(self, history: EpochHistory, *, max_time_s: float | None = None,
                 sample_rate: int | None = 16000) -> None:
        self.history = history
        self.max_time_s = max_time_s
        self.sample_rate = sample_rate
        self._fit_start: float | None = None
        self._epoch_start: float | None = None
        self._train_end: float | None = None
        self._samples = 0
        self._padded = False
        self._epoch_seconds: list[float] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._train_end = None
        self._samples = 0
        self._padded = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if isinstance(batch, dict):
            lengths, speech = batch.get("speech_lengths"), batch.get("speech")
            if isinstance(lengths, torch.Tensor) and lengths.device.type == "cpu":
                self._samples += int(lengths.sum())
            elif isinstance(speech, torch.Tensor) and speech.dim() >= 2:  # on the device: its shape only
                self._samples += speech.shape[0] * speech.shape[1]
                self._padded = True
        self._train_end = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._epoch_start is None:
            return
        now = time.perf_counter()
        seconds = now - self._epoch_start
        self._epoch_seconds.append(seconds)
        if trainer.is_global_zero:
            log.info("%s", self.line(trainer, seconds, now))

    def line(self, trainer: L.Trainer, seconds: float, now: float) -> str:
        """The epoch's line (``seconds``: the epoch so far, validation included)."""
        row = self.history.history[-1] if self.history.history else {}
        epoch = int(row.get("epoch", trainer.current_epoch + 1))
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        head = f"epoch {epoch}/{max_epochs}" if max_epochs else f"epoch {epoch}"
        sections = []
        for split in ("train", "valid"):
            figures = [f"{k} {_fmt(row[f'{split}/{k}'])}" for k in self.STATS if f"{split}/{k}" in row]
            if figures:
                sections.append(f"{split} " + " ".join(figures))
        timing = f"{seconds:.1f} s"
        if self._train_end is not None and self._epoch_start is not None:
            train_s = self._train_end - self._epoch_start
            timing += f" (train {train_s:.1f} s"
            if self._samples and self.sample_rate and train_s > 0:
                rate = self._samples / self.sample_rate / train_s
                timing += f", {rate:,.0f} {'padded ' if self._padded else ''}audio s/s"
            timing += ")"
        return f"{head}: " + " | ".join([*sections, timing, f"ETA {self.eta(epoch, max_epochs, now)}"])

    def eta(self, epoch: int, max_epochs: int | None, now: float) -> str:
        mean = sum(self._epoch_seconds) / len(self._epoch_seconds) if self._epoch_seconds else 0.0
        left = (max_epochs - epoch) * mean if max_epochs else math.inf
        if self.max_time_s is not None and self._fit_start is not None:
            left = min(left, max(0.0, self.max_time_s - (now - self._fit_start)))
        return "unknown" if math.isinf(left) else _hms(left)


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.1f}"


class StepTimer(Timer):
    """``Timer`` that checks the clock every ``every`` training batches instead of every one.

    Lightning's check broadcasts the decision from rank 0 (under NCCL a host-device
    synchronisation); the batch index is the same on every rank (each rank trains the
    same number of batches), so every rank checks at the same batches.
    """

    def __init__(self, *args: Any, every: int = 20, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.every = max(1, every)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if (batch_idx + 1) % self.every == 0:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class HostStatsProgressBar(TQDMProgressBar):
    """The progress bar, with the training loss the module last read back (no read of its own)."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        stats = getattr(pl_module, "host_stats", {})
        if "loss" in stats:
            items["loss"] = f"{stats['loss']:.3g}"
        return items
