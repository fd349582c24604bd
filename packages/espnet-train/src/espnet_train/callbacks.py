"""Lightning callbacks of ``train``: atomic checkpoints, the data position, the epoch history.

* :class:`AtomicCheckpoint` writes each checkpoint to ``<name>.partial`` and renames
  it, so a kill during a save leaves the previous ``last.ckpt`` whole.
* :class:`DataPosition` tells the :class:`~espnet_train.data.BatchStream` the epoch and
  counts the batches trained in it (saved in checkpoints through the stream).
* :class:`EpochHistory` keeps one row of metrics per epoch (train means, validation
  metrics, learning rate; saved in checkpoints, so a resumed run continues it),
  steps ``reduce_on_plateau`` and redraws ``images/*.png``. It runs at validation end,
  before the epoch checkpoint is written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from weakref import proxy

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from .data import BatchStream
from .plots import plot_history

log = logging.getLogger(__name__)


class AtomicCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that never leaves a half-written file under the final name."""

    @property
    def state_key(self) -> str:
        # ModelCheckpoint's key, so checkpoints written before this class existed still
        # restore the best-k scores (the key embeds the class name)
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        partial = f"{filepath}.partial"
        trainer.save_checkpoint(partial, self.save_weights_only)
        if trainer.is_global_zero:
            os.replace(partial, filepath)
        trainer.strategy.barrier("atomic_checkpoint")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))


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
