"""Average the model weights of the best checkpoints (ESPnet's ``average_nbest_models``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

MODEL_PREFIX = "model."  # LitESPnetModel keeps the model as ``self.model``


def model_state(checkpoint: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The wrapped model's weights from a Lightning checkpoint."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = ckpt.get("state_dict")
    if state is None:
        raise ValueError(f"{checkpoint} has no 'state_dict': is it a Lightning checkpoint?")
    return {k[len(MODEL_PREFIX) :]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}


def average_checkpoints(paths: Sequence[str | os.PathLike[str]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point weights; integer buffers come from the last one."""
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint")
    total: dict[str, torch.Tensor] = {}
    for path in paths:
        for key, value in model_state(path).items():
            if key not in total or not value.is_floating_point():
                total[key] = value.clone().double() if value.is_floating_point() else value
            else:
                total[key] += value.double()
    out = {}
    for key, value in total.items():
        out[key] = (value / len(paths)).float() if value.is_floating_point() else value
    return out


def best_checkpoints(ckpt_dir: Path, scores: dict[str, float], n: int, mode: str) -> list[Path]:
    """The ``n`` best checkpoint paths by score (``mode`` "min" or "max")."""
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=mode == "max")
    return [Path(p) for p, _ in ranked[:n] if Path(p).exists()] or sorted(ckpt_dir.glob("*.ckpt"))
