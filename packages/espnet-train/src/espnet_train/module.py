"""The LightningModule around the model contract.

Any ``torch.nn.Module`` whose ``forward(**batch)`` returns ``(loss, stats, weight)``
(the ESPnet2 convention, see ``espnet_model.ASRModel``) trains here. The module owns
the NaN/Inf policy, the optimizer and scheduler, and what gets logged.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
import torch

from .config import OptimConfig

log = logging.getLogger(__name__)

MODEL_INPUTS = ("speech", "speech_lengths", "text", "text_lengths")


def lr_lambda(optim: OptimConfig, total_steps: int | None) -> Any:
    """The multiplier of the peak LR at each optimizer step."""
    warmup = max(1, optim.warmup_steps)

    def warmuplr(step: int) -> float:
        step = step + 1
        return min(step / warmup, (warmup / step) ** 0.5)

    def cosine(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        total = max(total_steps or warmup * 10, warmup + 1)
        progress = min(1.0, (step - warmup) / (total - warmup))
        floor = optim.min_lr / optim.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return {"warmuplr": warmuplr, "cosine": cosine, "constant": lambda step: 1.0}[optim.scheduler]


class LitESPnetModel(L.LightningModule):
    """Train any model that follows the ``(loss, stats, weight)`` contract."""

    def __init__(
        self,
        model: torch.nn.Module,
        optim: OptimConfig,
        *,
        nan_policy: str = "skip",
        total_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.optim = optim
        self.nan_policy = nan_policy
        self.total_steps = total_steps
        self.skipped_batches = 0

    def _step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any], int]:
        return self.model(**{k: batch[k] for k in MODEL_INPUTS})

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        loss, stats, weight = self._step(batch)
        if not torch.isfinite(loss):
            if self.nan_policy == "raise":
                raise FloatingPointError(
                    f"non-finite loss {loss.item()} on batch {batch['keys'][:3]}...; "
                    "set nan_policy: skip to drop such batches"
                )
            self.skipped_batches += 1
            log.warning("skipping batch with non-finite loss (keys %s...)", batch["keys"][:3])
            self.log("train/skipped_batches", float(self.skipped_batches), batch_size=weight)
            return None
        for name, value in stats.items():
            if value is not None:
                self.log(f"train/{name}", value, batch_size=weight, prog_bar=name == "loss")
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=weight)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        _, stats, weight = self._step(batch)
        for name, value in stats.items():
            if value is not None:
                self.log(
                    f"valid/{name}", value, batch_size=weight, on_epoch=True,
                    prog_bar=name in ("loss", "acc"), sync_dist=True,
                )

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=self.optim.lr,
            betas=self.optim.betas,
            eps=self.optim.eps,
            weight_decay=self.optim.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(self.optim, self.total_steps)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
