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


_HOST_GROUPS: dict[int, Any] = {}  # a gloo group per default NCCL group (a cache, not configuration)


def _host_group() -> Any:
    """A gloo group over the ranks of the default group when that one is NCCL, else None.

    A host-side flag all-reduced through NCCL would travel through the device and be read
    back with a copy that waits for the device; through gloo it stays on the CPU. Made on
    first use, which every rank reaches together (the first batch of a stream).
    """
    if dist.get_backend() != "nccl":
        return None
    key = id(dist.group.WORLD)
    if key not in _HOST_GROUPS:
        _HOST_GROUPS[key] = dist.new_group(backend="gloo")
    return _HOST_GROUPS[key]


def all_ranks_true(flag: bool) -> bool:
    """``flag`` AND-ed over all DDP ranks (a collective: every rank must call it), on the CPU."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return flag
    value = torch.tensor(1 if flag else 0, dtype=torch.int32)
    dist.all_reduce(value, op=dist.ReduceOp.MIN, group=_host_group())
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


def batch_loader(dataset: Any, num_workers: int, seed: int, *, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over a dataset that yields whole batches (``batch_size=None``).

    ``pin_memory``: page-locked batches (for a GPU), whose copies to the device run
    asynchronously; from pageable memory each copy waits for the device.
    """
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=False,
        prefetch_factor=4 if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=pin_memory and torch.cuda.is_available(),
    )


def make_loader(
    split_dir: str,
    data: DataConfig,
    tokenize: Any,
    *,
    train: bool,
    seed: int = 0,
    pin_memory: bool = False,
) -> tuple[DataLoader, ShardDataset]:
    """A DataLoader of ready batches (``batch_size=None``: the batcher makes them).

    The loader has its own random generator, so creating its iterator does not draw
    from torch's global RNG (which a resumed run restores for dropout and SpecAugment).
    Training loaders augment the audio when ``data`` asks for it (speed, reverberation,
    noise), and yield each buffer's batches shortest first during the first
    ``data.shortest_first_epochs`` epochs (the length curriculum).
    """
    augment = augmentation_stages(
        speed_factors=data.speed_perturb,
        reverb=data.reverb,
        rirs=data.rir,
        rt60=data.reverb_rt60,
        drr_db=data.reverb_drr_db,
        reverb_prob=data.reverb_prob,
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
        shortest_first_epochs=data.shortest_first_epochs if train else 0,
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
    loader = batch_loader(dataset, int(data.num_workers), seed, pin_memory=pin_memory)
    return loader, dataset


def make_stream(
    split_dir: str, data: DataConfig, tokenize: Any, *, train: bool, seed: int = 0, pin_memory: bool = False
) -> BatchStream:
    """:func:`make_loader` wrapped in a :class:`BatchStream`."""
    loader, dataset = make_loader(split_dir, data, tokenize, train=train, seed=seed, pin_memory=pin_memory)
    return BatchStream(loader, dataset, name="train" if train else "valid")
