"""Read shards back: WebDataset pipelines with node and worker splitting.

``ShardDataset`` is a ``torch.utils.data.IterableDataset`` yielding decoded samples
(``key``, ``audio`` float32 array, ``text``, ``speaker``, ``duration``) or, with a
``batcher`` stage, ready batches. It works the same in one process, in DataLoader
workers and under DDP (``wds.split_by_node`` / ``wds.split_by_worker``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import webdataset as wds
from torch.utils.data import IterableDataset

from .audio import AudioError, read_audio

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
    warns and continues), or raise.
    """
    for item in raw:
        key = item.get("__key__", "?")
        try:
            meta = json.loads(item["json"])
            blob = item.get("flac") or item.get("wav")
            if blob is None:
                raise AudioError(f"{key}: no .flac or .wav member in {item.get('__url__')}")
            audio, rate = read_audio(blob)
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


class ShardDataset(IterableDataset):
    """Stream samples from shard tars.

    Args:
        urls: shard paths or URLs (``pipe:``/http work through webdataset).
        shuffle_shards: shuffle shard order each epoch (training).
        stages: further ``iterator -> iterator`` stages, e.g. shuffling or batching.
        seed: base seed for shard shuffling; the epoch is added by ``set_epoch``.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        shuffle_shards: bool = False,
        stages: Sequence[Stage] = (),
        seed: int = 0,
    ) -> None:
        if not urls:
            raise ValueError("ShardDataset needs at least one shard url")
        self.urls = list(urls)
        self.shuffle_shards = shuffle_shards
        self.stages = list(stages)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[Any]:
        dataset = wds.WebDataset(
            self.urls,
            shardshuffle=len(self.urls) if self.shuffle_shards else False,
            nodesplitter=wds.split_by_node,
            workersplitter=wds.split_by_worker,
            empty_check=False,
            handler=warn_and_skip,
            seed=self.seed + self.epoch if self.shuffle_shards else None,
        )
        stream: Iterable[Any] = decode_samples(dataset)
        for stage in self.stages:
            if hasattr(stage, "set_epoch"):
                stage.set_epoch(self.epoch)
            stream = stage(stream)
        yield from stream
