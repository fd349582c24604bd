"""The training contract: what ``model(**batch)`` must return.

``loss, stats, weight = model(**batch)`` (ESPnet2/ESPnet3): ``loss`` a scalar tensor,
``stats`` a dict of detached tensors (or None values, which are not logged), ``weight``
the batch size (int, scalar tensor or None). A multi-optimizer (GAN-style) model returns
a list of :class:`OptimizationStep` in place of ``loss``: each routes its loss to the
optimizer of that name in ``optims:``; only the named optimizers step for that batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class OptimizationStep:
    """One loss and the name of the optimizer (a key of ``optims:``) it updates."""

    loss: torch.Tensor
    name: str


def _is_step(obj: Any) -> bool:
    # duck-typed so that an OptimizationStep defined by the model package works too
    return isinstance(getattr(obj, "loss", None), torch.Tensor) and isinstance(getattr(obj, "name", None), str)


def unpack_output(
    model: torch.nn.Module, out: Any
) -> tuple[list[OptimizationStep] | None, torch.Tensor | None, dict[str, Any], int | None]:
    """Check ``out`` against the contract: ``(steps, loss, stats, weight)``.

    Exactly one of ``steps`` (multi-optimizer) and ``loss`` is set. A wrong return is a
    ``TypeError`` that names the model class and what it returned.
    """
    name = type(model).__name__
    if not isinstance(out, tuple | list) or len(out) != 3:
        got = f"{type(out).__name__} of length {len(out)}" if isinstance(out, tuple | list) else type(out).__name__
        raise TypeError(
            f"{name}.forward must return (loss, stats, weight) (the training contract); got {got}"
        )
    first, stats, weight = out
    if not isinstance(stats, Mapping):
        raise TypeError(f"{name}.forward: stats must be a dict of detached tensors, got {type(stats).__name__}")
    if weight is not None:
        if isinstance(weight, torch.Tensor):
            if weight.numel() != 1:
                raise TypeError(f"{name}.forward: weight must be a scalar, got shape {tuple(weight.shape)}")
            weight = int(weight.item())
        elif isinstance(weight, int | float):
            weight = int(weight)
        else:
            raise TypeError(f"{name}.forward: weight must be an int, a scalar tensor or None, got {type(weight).__name__}")
    if isinstance(first, torch.Tensor):
        if first.numel() != 1:
            raise TypeError(f"{name}.forward: loss must be a scalar tensor, got shape {tuple(first.shape)}")
        return None, first.reshape(()), dict(stats), weight
    if isinstance(first, list | tuple) and first and all(_is_step(s) for s in first):
        steps = [OptimizationStep(loss=s.loss.reshape(()), name=s.name) for s in first]
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise TypeError(f"{name}.forward returned two OptimizationSteps with the same name: {names}")
        return steps, None, dict(stats), weight
    raise TypeError(
        f"{name}.forward: the first value must be a scalar loss tensor or a non-empty list of "
        f"OptimizationStep(loss=..., name=...); got {type(first).__name__}"
    )
