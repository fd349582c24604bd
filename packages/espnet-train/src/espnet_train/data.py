"""DataLoaders over shard folders: streaming, length-bucketed, tokenized."""

from __future__ import annotations

from typing import Any

from espnet_data import Collate, DynamicBatcher, ShardDataset, map_stage, shard_paths
from torch.utils.data import DataLoader

from .config import DataConfig


def make_loader(
    split_dir: str,
    data: DataConfig,
    tokenize: Any,
    *,
    train: bool,
    seed: int = 0,
) -> tuple[DataLoader, ShardDataset]:
    """A DataLoader of ready batches (``batch_size=None``: the batcher makes them)."""
    batcher = DynamicBatcher(
        max_seconds=data.max_seconds,
        max_batch_size=data.max_batch_size,
        buffer_size=data.buffer_size,
        shuffle=train,
        seed=seed,
    )
    dataset = ShardDataset(
        shard_paths(split_dir),
        shuffle_shards=train,
        stages=[batcher, map_stage(Collate(tokenize=tokenize))],
        seed=seed,
    )
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=data.num_workers,
        persistent_workers=False,
        prefetch_factor=4 if data.num_workers > 0 else None,
    )
    return loader, dataset
