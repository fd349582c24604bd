"""Average the model weights of the best checkpoints (ESPnet's ``average_nbest_models``).

Checkpoints are read with ``weights_only=True`` (:func:`~espnet_train.checkpoints.load_checkpoint`);
which ones to average comes from ``checkpoints/ranking.json``
(:func:`~espnet_train.checkpoints.best_checkpoints`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from .checkpoints import best_checkpoints, load_checkpoint

MODEL_PREFIX = "model."  # LitESPnetModel keeps the model as ``self.model``

__all__ = ["average_checkpoints", "best_checkpoints", "model_state"]


def model_state(checkpoint: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The wrapped model's weights from a Lightning checkpoint."""
    ckpt = load_checkpoint(checkpoint)
    state = ckpt.get("state_dict")
    if state is None:
        raise ValueError(f"{checkpoint} has no 'state_dict': is it a Lightning checkpoint?")
    return {k[len(MODEL_PREFIX) :]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}


def average_checkpoints(paths: Sequence[str | os.PathLike[str]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point weights; integer buffers come from the first one.

    Give ``paths`` best first (as :func:`best_checkpoints` does): integer buffers such as
    BatchNorm's ``num_batches_tracked`` cannot be averaged and are taken from the best.
    """
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint")
    total: dict[str, torch.Tensor] = {}
    for i, path in enumerate(paths):
        state = model_state(path)
        if i and state.keys() != total.keys():
            raise ValueError(
                f"{path} holds other weights than {paths[0]} (only in one of them: "
                f"{sorted(state.keys() ^ total.keys())[:5]}): average checkpoints of one model"
            )
        for key, value in state.items():
            if key not in total:
                total[key] = value.clone().double() if value.is_floating_point() else value
            elif value.is_floating_point():
                total[key] += value.double()
    out = {}
    for key, value in total.items():
        out[key] = (value / len(paths)).float() if value.is_floating_point() else value
    return out
