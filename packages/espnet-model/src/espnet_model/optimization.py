""":class:`OptimizationStep`: one loss routed to one named optimizer (GAN-style models).

A model with several optimizers (e.g. a HiFi-GAN vocoder: ``generator`` and
``discriminator``) returns ``([OptimizationStep(loss, "generator"), ...], stats,
weight)`` from ``forward``; the trainer (``espnet_train``) steps each loss on the
optimizer of that name in ``optims:``, in the order given. The trainer duck-types
``.loss`` / ``.name``, so this package does not import it (dependency direction).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["OptimizationStep"]


@dataclass(frozen=True)
class OptimizationStep:
    """One scalar ``loss`` and the ``name`` of the optimizer (a key of ``optims:``) it updates."""

    loss: torch.Tensor
    name: str
