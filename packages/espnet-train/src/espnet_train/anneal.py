"""Curricula: model settings that move during a run (``anneal:`` in training.yaml).

Each entry names a number the built model holds and where it starts; it moves to the
value the model was built with (its config's value) as the run goes on::

    anneal:
      ctc_weight: {start: 0.9, until: 0.4}     # CTC-first: 0.9 -> model_conf.ctc_weight by 40%
      dropout: {start: 0.0, begin: 0.2, until: 0.6}   # no dropout first, then the configured rates

``begin``/``until`` are fractions of the run (:class:`~espnet_train.budget.TrainingBudget`:
steps of ``max_epochs``, or the time of ``trainer.max_time`` with ``optim.horizon: time``).
A name is a model attribute (dotted for a submodule's, e.g. ``specaug.num_time_mask``;
integers are rounded) or ``dropout``: the ``p`` of every ``torch.nn.Dropout`` module, each
moving from ``start`` to its own configured rate.

Validation always runs at the configured values, so ``valid/loss`` of every epoch
measures the same objective and checkpoints rank fairly; the exported model is the
configured one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch

from .budget import TrainingBudget
from .config import AnnealConfig

__all__ = ["Anneal", "AnnealConfig"]

log = logging.getLogger(__name__)


@dataclass
class _Target:
    owner: Any
    attr: str
    end: float
    integer: bool


def _targets(model: torch.nn.Module, name: str) -> list[_Target]:
    """The attributes ``name`` moves, with their configured (end) values."""
    if name == "dropout":
        found = [_Target(m, "p", float(m.p), False) for m in model.modules() if isinstance(m, torch.nn.Dropout)]
        if not found:
            raise ValueError(f"anneal.dropout: {type(model).__name__} has no torch.nn.Dropout module")
        return found
    owner: Any = model
    *path, attr = name.split(".")
    for part in path:
        owner = getattr(owner, part, None)
        if owner is None:
            break
    value = getattr(owner, attr, None) if owner is not None else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"anneal.{name}: {type(model).__name__} has no number attribute {name!r} "
            f"(got {type(value).__name__}); name a number the model holds (e.g. ctc_weight, "
            "specaug.num_time_mask) or dropout"
        )
    if name == "ctc_weight" and (getattr(model, "ctc", 0) is None or getattr(model, "decoder", 0) is None):
        raise ValueError(
            f"anneal.ctc_weight: the model was built with ctc_weight {value}, so it has no "
            f"{'CTC' if getattr(model, 'ctc', 0) is None else 'decoder'} to move weight to; set "
            "model_conf.ctc_weight strictly between 0 and 1 (its value at the end of the curriculum)"
        )
    return [_Target(owner, attr, float(value), isinstance(value, int))]


class Anneal(L.Callback):
    """Moves the ``anneal:`` settings of ``pl_module.model`` before each training batch."""

    def __init__(self, anneals: dict[str, AnnealConfig], budget: TrainingBudget) -> None:
        self.anneals = dict(anneals)
        self.budget = budget
        self._targets: dict[str, list[_Target]] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        model = pl_module.model
        self._targets = {name: _targets(model, name) for name in self.anneals}
        for name, conf in self.anneals.items():
            ends = sorted({t.end for t in self._targets[name]})
            log.info("anneal %s: %s -> %s between %.0f%% and %.0f%% of the run", name, conf.start,
                     ends[0] if len(ends) == 1 else f"{ends[0]}..{ends[-1]}", 100 * conf.begin, 100 * conf.until)

    def _set(self, fraction: float | None) -> None:
        for name, conf in self.anneals.items():
            for target in self._targets[name]:
                value = target.end if fraction is None else conf.value(target.end, fraction)
                setattr(target.owner, target.attr, round(value) if target.integer else value)

    def values(self, fraction: float) -> dict[str, float]:
        """The first target's value of each setting at ``fraction`` (for logs and tests)."""
        return {name: conf.value(self._targets[name][0].end, fraction) for name, conf in self.anneals.items()}

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        fraction = self.budget.fraction(int(getattr(pl_module, "optimizer_steps", trainer.global_step)))
        self._set(fraction)
        if (batch_idx + 1) % max(1, trainer.log_every_n_steps) == 0:
            for name, value in self.values(fraction).items():
                pl_module.log(f"anneal/{name}", value, on_step=True, on_epoch=False, batch_size=1)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set(None)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set(None)
