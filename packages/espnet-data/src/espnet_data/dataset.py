"""Read shards back: WebDataset pipelines with node and worker splitting.

``ShardDataset`` is a ``torch.utils.data.IterableDataset`` yielding decoded samples
(``key``, ``audio`` float32 array, ``text``, ``speaker``, ``duration``) or, with a
``batcher`` stage, ready batches. It works the same in one process, in DataLoader
workers and under DDP: each epoch the shard list is shuffled with one seed on every
rank, then split by rank (``urls[rank::world_size]``) and by DataLoader worker.

Under DDP the ranks must run the same number of steps per epoch, or the rank that runs
out first leaves the others waiting in a gradient all-reduce forever. With
``batches_per_rank="auto"`` every rank computes, from the split's index, how many
batches each rank's shards give and takes the smallest count; a rank with more data
stops there, a rank whose data runs out early reads its shards again until it has as
many. Shard lists may be local paths, ``pipe:`` commands or http(s) URLs (webdataset
opens them; http goes through ``curl``).
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from .audio import AudioError, read_audio
from .batching import DynamicBatcher

log = logging.getLogger(__name__)

Sample = dict[str, Any]
Stage = Callable[[Iterable[Any]], Iterator[Any]]


def warn_and_skip(err: Exception) -> bool:
    """The default error policy: log the broken sample and skip it.

    Unlike ``wds.warn_and_continue`` it does not sleep 0.5 s per broken sample.
    """
    notes = "".join(f" ({note})" for note in getattr(err, "__notes__", ()))
    log.warning("skipping a broken sample: %r%s", err, notes)
    return True


def decode_samples(
    raw: Iterable[dict[str, Any]], handler: Callable[[Exception], bool] = warn_and_skip
) -> Iterator[Sample]:
    """Turn raw tar members (``flac``/``wav`` + ``json``) into samples.

    ``handler`` decides what a broken sample does: return True to skip it (the default
    warns and continues), or raise. Audio that cannot be decoded raises
    :class:`~espnet_data.audio.AudioError`; audio with NaN or Inf samples raises its
    subclass :class:`~espnet_data.audio.NonFiniteAudioError` (a ``ValueError`` naming
    the sample's key, its shard and the count of bad samples).
    """
    for item in raw:
        key = item.get("__key__", "?")
        try:
            meta = json.loads(item["json"])
            blob = item.get("flac") or item.get("wav")
            if blob is None:
                raise AudioError(f"{key}: no .flac or .wav member in {item.get('__url__')}")
            # NaN/Inf samples raise NonFiniteAudioError naming the key, the shard and
            # how many samples are bad: the handler decides (skip, or an error row)
            audio, rate = read_audio(blob, name=f"sample {key!r} of {item.get('__url__')}")
            yield {
                "key": meta.get("key", key),
                "audio": audio,
                "sample_rate": rate,
                "text": meta.get("text", ""),
                "speaker": meta.get("speaker", ""),
                "duration": len(audio) / rate,
            }
        except Exception as err:  # noqa: BLE001 - the handler is the error policy
            err.add_note(f"sample {key!r} of {item.get('__url__')}")
            if handler(err):
                continue
            break


_SHARD_NAME = re.compile(r"[^/\\\s'\"]+\.tar")
_REPEAT_SEED = 100_003  # seed offset of each extra pass over a rank's shards


def shard_name(url: str) -> str:
    """The shard file name inside a path or URL (``pipe:cat /d/shard-000001.tar`` gives
    ``shard-000001.tar``); index rows name their shard this way."""
    names = _SHARD_NAME.findall(url)
    if not names:
        raise ValueError(f"cannot find a '<name>.tar' shard file name in {url!r}")
    return names[-1]


def node_info(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: the given values, else ``RANK``/``WORLD_SIZE`` from the
    environment or the initialised ``torch.distributed`` group (as webdataset reads them)."""
    if rank is not None and world_size is not None:
        found = (rank, world_size)
    else:
        env_rank, env_world, _, _ = wds.utils.pytorch_worker_info()
        found = (env_rank if rank is None else rank, env_world if world_size is None else world_size)
    if not 0 <= found[0] < found[1]:
        raise ValueError(f"rank {found[0]} is not in [0, world_size={found[1]})")
    return found


def rank_batch_counts(
    index: Iterable[Mapping[str, Any]],
    rank_urls: Sequence[Sequence[str]],
    batcher: DynamicBatcher | None,
) -> list[int]:
    """Per rank, the batches its shards give (samples when ``batcher`` is None)."""
    durations: dict[str, list[float]] = defaultdict(list)
    for row in index:
        durations[row["shard"]].append(float(row["duration"]))
    counts = []
    for urls in rank_urls:
        mine: list[float] = []
        for url in urls:
            name = shard_name(url)
            if name not in durations:
                raise ValueError(
                    f"shard {name} ({url}) has no rows in the index: pass the index of the "
                    "split these shards belong to (espnet_data.read_index(split_dir))"
                )
            mine += durations[name]
        counts.append(batcher.estimate_batches(mine) if batcher else len(mine))
    return counts


class ShardDataset(IterableDataset):
    """Stream samples (or, with a batching stage, batches) from shard tars.

    Args:
        urls: shard paths or URLs (``pipe:``/http work through webdataset).
        shuffle_shards: shuffle shard order each epoch (training).
        stages: further ``iterator -> iterator`` stages, e.g. augmentation or batching.
        seed: base seed for shard shuffling; the epoch is added by ``set_epoch``.
        rank: this process's DDP rank; default ``RANK`` or ``torch.distributed``.
        world_size: number of DDP ranks; default ``WORLD_SIZE`` or ``torch.distributed``.
        batches_per_rank: items each rank yields per epoch. ``None``: whatever its shards
            give. An int: exactly that many (stop early, or read the shards again).
            ``"auto"``: with more than one rank, the smallest count any rank's shards
            give according to ``index`` and the first ``DynamicBatcher`` in ``stages``.
        index: rows of the split's ``index.jsonl`` (``shard`` and ``duration``) for
            ``"auto"``; default: the ``index.jsonl`` beside local shard files.
        decode: the first stage, raw tar members -> samples: :func:`decode_samples`
            (audio) or ``espnet_data.text.decode_text_blocks`` (text shards).
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        shuffle_shards: bool = False,
        stages: Sequence[Stage] = (),
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        batches_per_rank: int | Literal["auto"] | None = None,
        index: Sequence[Mapping[str, Any]] | None = None,
        decode: Stage = decode_samples,
    ) -> None:
        if not urls:
            raise ValueError("ShardDataset needs at least one shard url")
        if not (batches_per_rank in (None, "auto") or (
            isinstance(batches_per_rank, int) and batches_per_rank > 0
        )):
            raise ValueError(f"batches_per_rank must be a positive int, 'auto' or None, got {batches_per_rank!r}")
        self.urls = list(urls)
        self.shuffle_shards = shuffle_shards
        self.stages = list(stages)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.batches_per_rank = batches_per_rank
        self.index = index
        self.decode = decode
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _shard_order(self, seed: int) -> list[str]:
        urls = list(self.urls)
        if self.shuffle_shards:
            random.Random(seed).shuffle(urls)
        return urls

    def _index_rows(self) -> Sequence[Mapping[str, Any]]:
        if self.index is not None:
            return self.index
        path = Path(self.urls[0]).parent / "index.jsonl"
        if not path.is_file():
            raise ValueError(
                "batches_per_rank='auto' needs the split's index: pass "
                f"index=espnet_data.read_index(split_dir) (no index.jsonl beside {self.urls[0]})"
            )
        from .atomic import read_jsonl

        self.index = read_jsonl(path)
        return self.index

    def _rank_quota(self, rank_urls: list[list[str]], rank: int) -> int | None:
        """Items this rank yields this epoch; ``None`` for no limit."""
        if self.batches_per_rank is None or (self.batches_per_rank == "auto" and len(rank_urls) == 1):
            return None
        if isinstance(self.batches_per_rank, int):
            return self.batches_per_rank
        batcher = next((s for s in self.stages if isinstance(s, DynamicBatcher)), None)
        counts = rank_batch_counts(self._index_rows(), rank_urls, batcher)
        quota = min(counts)
        if rank == 0 and quota < max(counts):
            log.info("batches per rank this epoch: %s; every rank yields %d", counts, quota)
        if quota < 1:
            raise ValueError(
                f"rank {counts.index(quota)} gets no batch from its shards: write smaller "
                "shards (utterances_per_shard) or lower max_seconds"
            )
        return quota

    def _stream(self, urls: list[str], epoch: int) -> Iterator[Any]:
        dataset = wds.WebDataset(
            urls,
            shardshuffle=False,
            nodesplitter=None,
            workersplitter=None,
            empty_check=False,
            handler=warn_and_skip,
        )
        stream: Iterable[Any] = self.decode(dataset)
        for stage in self.stages:
            if hasattr(stage, "set_epoch"):
                stage.set_epoch(epoch)
            stream = stage(stream)
        yield from stream

    def __iter__(self) -> Iterator[Any]:
        rank, world_size = node_info(self.rank, self.world_size)
        order = self._shard_order(self.seed + self.epoch)
        rank_urls = [order[r::world_size] for r in range(world_size)]
        if not rank_urls[rank]:
            message = (
                f"rank {rank} of {world_size} gets no shard: {len(self.urls)} shards for "
                f"{world_size} ranks; write at least {world_size} shards (a smaller "
                "utterances_per_shard)"
            )
            if self.batches_per_rank is not None:
                raise ValueError(message)
            log.warning("%s; this rank reads nothing", message)
            return
        quota = self._rank_quota(rank_urls, rank)
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        urls = rank_urls[rank][worker::num_workers]
        if quota is not None:
            active = min(num_workers, len(rank_urls[rank]))
            quota = quota // active + (worker < quota % active) if worker < active else 0
        if not urls or quota == 0:
            return
        produced, repeat = 0, 0
        while True:
            epoch = self.epoch + _REPEAT_SEED * repeat
            got = 0
            for item in self._stream(urls, epoch):
                if quota is not None and produced >= quota:
                    return
                yield item
                produced += 1
                got += 1
            if quota is None or produced >= quota:
                return
            if got == 0:
                raise RuntimeError(
                    f"rank {rank} worker {worker}: shards {urls} gave nothing to read; "
                    f"cannot make the {quota} items of this epoch"
                )
            repeat += 1
            log.info(
                "rank %d worker %d: its shards gave %d of %d items; reading them again",
                rank, worker, produced, quota,
            )
            random.Random(epoch + 1).shuffle(urls)
