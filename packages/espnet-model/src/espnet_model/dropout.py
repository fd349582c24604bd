"""Dropout whose mask is cheap to draw on a CPU.

torch's CPU dropout draws one Bernoulli sample per element from its Mersenne-Twister
generator: about 150 M elements/s on one core, and in issue 4's benchmark (a
conformer training step on 2 cores) 12% of the step went to ``bernoulli_``. Here
each 64-bit draw of the same generator gives four 15-bit uniform numbers, so a
mask takes a quarter of the draws (about 3x faster for a whole dropout). The drop
probability is rounded to a multiple of 1/32768 (error below 1.6e-5) and kept
values are scaled by ``1 / (1 - rounded p)``, so the expected output is the input.
Seeding works as for torch's dropout (``torch.manual_seed``). In eval mode, with
``p == 0`` and on other devices this is :func:`torch.nn.functional.dropout`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Dropout", "dropout"]

_LEVELS = 1 << 15  # 15 random bits per element


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Zero each element with probability ``p`` and scale the rest (training only)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not 0.0 < p < 1.0:
        return F.dropout(x, p, training)
    threshold = round(p * _LEVELS)
    if threshold == 0:
        return x
    n = x.numel()
    # random_() on int64 fills 63 uniform bits; each 16-bit lane keeps its low 15.
    draws = torch.empty((n + 3) // 4, dtype=torch.int64).random_()
    lanes = draws.view(torch.int16)[:n].view(x.shape) & (_LEVELS - 1)
    return x.masked_fill(lanes < threshold, 0.0) * (_LEVELS / (_LEVELS - threshold))


class Dropout(nn.Dropout):
    """:class:`torch.nn.Dropout` with the cheaper CPU mask of :func:`dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
