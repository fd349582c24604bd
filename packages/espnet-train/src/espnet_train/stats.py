"""collect_stats: global feature mean and variance over a training split.

Writes ESPnet2's ``feats_stats.npz`` layout (``count``, ``sum``, ``sum_square``) that
``espnet_model.GlobalMVN`` reads.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from espnet_data import Collate, DynamicBatcher, ShardDataset, map_stage, shard_paths
from espnet_data.atomic import atomic_open
from torch.utils.data import DataLoader

log = logging.getLogger(__name__)


def collect_stats(
    split_dir: str | os.PathLike[str],
    frontend: torch.nn.Module,
    out_file: str | os.PathLike[str],
    *,
    max_seconds: float = 300.0,
    num_workers: int = 0,
) -> dict[str, Any]:
    """Accumulate frame count, sum and sum of squares of ``frontend`` features."""
    dataset = ShardDataset(
        shard_paths(split_dir),
        stages=[DynamicBatcher(max_seconds=max_seconds, shuffle=False), map_stage(Collate())],
    )
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    count, total, total_sq, utts = 0, None, None, 0
    frontend.eval()
    with torch.inference_mode():
        for batch in loader:
            feats, lengths = frontend(batch["speech"], batch["speech_lengths"])
            mask = torch.arange(feats.shape[1])[None, :] < lengths[:, None]
            valid = feats[mask].double()
            total = valid.sum(0) if total is None else total + valid.sum(0)
            total_sq = (valid**2).sum(0) if total_sq is None else total_sq + (valid**2).sum(0)
            count += int(mask.sum())
            utts += len(batch["keys"])
    if not count or total is None or total_sq is None:
        raise ValueError(f"collect_stats read no frames from {split_dir}")
    out = Path(out_file)
    with atomic_open(out, "wb") as f:
        np.savez(f, count=np.array(count), sum=total.numpy(), sum_square=total_sq.numpy())
    mean = total / count
    std = (total_sq / count - mean**2).clamp_min(1e-20).sqrt()
    log.info("stats over %d utterances, %d frames -> %s", utts, count, out)
    return {"utterances": utts, "frames": count, "mean": mean.tolist(), "std": std.tolist()}
