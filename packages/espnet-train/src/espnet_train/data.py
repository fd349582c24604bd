"""Batches for training: streaming, length-bucketed, tokenized, resumable, rank-equalised.

:class:`BatchStream` wraps the DataLoader so that (1) every DDP rank yields the same
number of batches per epoch (the stream ends for all ranks when the first rank runs
out, so no rank waits forever in an all-reduce), and (2) a run resumed from a
mid-epoch checkpoint continues the epoch where it stopped, in the same order: the
batch order is a function of ``seed`` and the epoch, and the batches already trained
are read again and dropped (Lightning saves and restores the position through
``state_dict`` / ``load_state_dict``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from espnet_data import Collate, DynamicBatcher, ShardDataset, map_stage, read_index, shard_paths
from espnet_data.augment import augmentation_stages
from torch.utils.data import DataLoader

from .config import DataConfig

log = logging.getLogger(__name__)


def all_ranks_true(flag: bool) -> bool:
    """``flag`` AND-ed over all DDP ranks (a collective: every rank must call it)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return flag
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    value = torch.tensor(1 if flag else 0, dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


class BatchStream:
    """An iterable of batches with equal counts on every rank and a resumable position.

    Args:
        batches: anything iterable once per epoch (a DataLoader).
        dataset: told the epoch (``set_epoch``) so shuffles differ per epoch; optional.
        name: for log messages.

    ``consumed`` counts the batches the trainer finished in the current epoch
    (incremented by the training loop, not by iteration, because Lightning fetches
    one batch ahead).
    """

    def __init__(self, batches: Iterable[Any], dataset: Any = None, *, name: str = "train") -> None:
        self.batches = batches
        self.dataset = dataset
        self.name = name
        self.epoch = 0
        self.consumed = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._skip = 0  # a restored position belongs to the epoch it was saved in
        self.epoch = epoch
        if self.dataset is not None and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        skip, self._skip = self._skip, 0
        self.consumed = skip
        it = iter(self.batches)
        if skip:
            log.info("%s: epoch %d resumes after batch %d (re-reading and dropping those)", self.name, self.epoch, skip)
        for _ in range(skip):
            if next(it, None) is None:
                break
        while True:
            batch = next(it, None)
            if not all_ranks_true(batch is not None):
                if batch is not None:
                    log.info("%s: this rank has more batches than another; the epoch ends here", self.name)
                return
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self._skip = int(state["consumed"])
        if self.dataset is not None and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)


def batch_loader(dataset: Any, num_workers: int, seed: int) -> DataLoader:
    """A DataLoader over a dataset that yields whole batches (``batch_size=None``)."""
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=False,
        prefetch_factor=4 if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
    )


def make_loader(
    split_dir: str,
    data: DataConfig,
    tokenize: Any,
    *,
    train: bool,
    seed: int = 0,
) -> tuple[DataLoader, ShardDataset]:
    """A DataLoader of ready batches (``batch_size=None``: the batcher makes them).

    The loader has its own random generator, so creating its iterator does not draw
    from torch's global RNG (which a resumed run restores for dropout and SpecAugment).
    Training loaders augment the audio when ``data`` asks for it (speed, noise).
    """
    augment = augmentation_stages(
        speed_factors=data.speed_perturb,
        noise=data.noise,
        snr_db=data.noise_snr_db,
        noise_prob=data.noise_prob,
        seed=seed,
    ) if train else []
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
        stages=[*augment, batcher, map_stage(Collate(tokenize=tokenize))],
        seed=seed,
        # under DDP every rank plans the same number of batches from the index
        # (BatchStream still ends the epoch for all ranks if one runs short)
        batches_per_rank="auto" if train else None,
        index=read_index(split_dir) if train else None,
    )
    loader = batch_loader(dataset, data.num_workers, seed)
    return loader, dataset


def make_stream(
    split_dir: str, data: DataConfig, tokenize: Any, *, train: bool, seed: int = 0
) -> BatchStream:
    """:func:`make_loader` wrapped in a :class:`BatchStream`."""
    loader, dataset = make_loader(split_dir, data, tokenize, train=train, seed=seed)
    return BatchStream(loader, dataset, name="train" if train else "valid")
