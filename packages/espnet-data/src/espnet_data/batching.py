"""Length-bucketed dynamic batching and collation.

``DynamicBatcher`` is an ``iterator -> iterator`` stage: it fills a bounded buffer,
sorts it by duration, cuts batches whose *padded* size (longest × count) stays under
``max_seconds``, and yields them in shuffled order. It keeps count of real and padded
seconds so the padding ratio can be reported. With ``sort_by_length=False`` it cuts
batches in arrival order (the "random batches" baseline the padding ratio is compared
with). :meth:`DynamicBatcher.estimate_batches` counts the batches a list of durations
gives, so every DDP rank can agree on one number of batches per epoch.

Length curriculum (``shortest_first_epochs``, SortaGrad of Deep Speech 2 and ESPnet1's
``--sortagrad``): during the first N epochs the batches of each buffer are yielded
shortest first instead of shuffled; they are cut as in any epoch, so the count per
epoch (and every rank's plan) is unchanged, and the order is still a function of the
seed and epoch (a resumed run re-reads the same sequence). The order is exact within a buffer: with
``buffer_size`` at least the utterances a DataLoader worker reads per epoch, the whole
epoch runs shortest first; with smaller buffers each buffer restarts from its shortest.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

Sample = dict[str, Any]


@dataclass
class DynamicBatcher:
    """Group samples into batches of at most ``max_seconds`` of padded audio.

    Args:
        max_seconds: budget of padded seconds per batch (longest sample × batch size).
        max_batch_size: hard cap on utterances per batch.
        buffer_size: samples sorted together; larger wastes less padding, costs memory.
        shuffle: shuffle the buffer's batches (training); False keeps input order stable.
        min_batch_size: batches with fewer utterances are dropped (not counted).
        seed: random seed of the batch-order shuffle.
        length_jitter: seconds of random noise added to durations before sorting (shuffle only).
        sort_by_length: sort each buffer by duration before cutting (bucketing); False
            cuts batches in arrival order.
        length_key: the sample's size: ``duration`` (seconds of audio), or e.g.
            ``num_tokens`` for text, where ``max_seconds`` is then a budget of padded
            tokens (``espnet_data.text.token_batcher``).
        shortest_first_epochs: length curriculum: in epochs ``0 .. N-1`` (as given to
            :meth:`set_epoch`) each buffer's batches come shortest first, not shuffled
            (needs ``sort_by_length``; 0: off). Applies only when ``shuffle`` is on.
    """

    max_seconds: float = 120.0
    max_batch_size: int = 256
    buffer_size: int = 2000
    shuffle: bool = True
    min_batch_size: int = 1
    seed: int = 0
    length_jitter: float = 0.2
    sort_by_length: bool = True
    length_key: str = "duration"
    shortest_first_epochs: int = 0
    real_seconds: float = field(default=0.0, init=False)
    padded_seconds: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.max_seconds <= 0 or self.max_batch_size < 1 or self.buffer_size < 1:
            raise ValueError(
                "DynamicBatcher needs max_seconds > 0, max_batch_size >= 1, buffer_size >= 1; "
                f"got {self.max_seconds}, {self.max_batch_size}, {self.buffer_size}"
            )
        if self.shortest_first_epochs < 0:
            raise ValueError(
                f"shortest_first_epochs={self.shortest_first_epochs} must be >= 0 (epochs of "
                "shortest-first batches at the start of training; 0: off)"
            )
        if self.shortest_first_epochs and not self.sort_by_length:
            raise ValueError(
                f"shortest_first_epochs={self.shortest_first_epochs} orders length-sorted "
                "batches; it needs sort_by_length=True"
            )
        self._rng = random.Random(self.seed)
        self._epoch = 0

    @property
    def padding_ratio(self) -> float:
        """Fraction of the padded batch area that is padding."""
        if not self.padded_seconds:
            return 0.0
        return 1.0 - self.real_seconds / self.padded_seconds

    def set_epoch(self, epoch: int) -> None:
        """Reseed so that each epoch gets other batches and another batch order."""
        self._rng = random.Random(self.seed + epoch)
        self._epoch = epoch

    @property
    def shortest_first(self) -> bool:
        """Whether this epoch's batches come shortest first (the length curriculum)."""
        return self.shuffle and self._epoch < self.shortest_first_epochs

    def _batch_sizes(self, durations: Sequence[float]) -> list[int]:
        """Sizes of the batches cut from ``durations``, in this order, under the budget."""
        sizes: list[int] = []
        count, longest = 0, 0.0
        for duration in durations:
            grown = max(longest, duration)
            if count and (grown * (count + 1) > self.max_seconds or count >= self.max_batch_size):
                sizes.append(count)
                count, grown = 0, duration
            count += 1
            longest = grown
        if count:
            sizes.append(count)
        return sizes

    def _cut(self, buffer: list[Sample]) -> list[list[Sample]]:
        if self.sort_by_length:
            # when shuffling, a small random jitter mixes utterances of near-equal length
            jitter = self.length_jitter if self.shuffle else 0.0
            keys = {id(s): s[self.length_key] + self._rng.uniform(0.0, jitter) for s in buffer}
            buffer.sort(key=lambda s: keys[id(s)])
        batches: list[list[Sample]] = []
        start = 0
        for size in self._batch_sizes([s[self.length_key] for s in buffer]):
            batches.append(buffer[start : start + size])
            start += size
        return batches

    def estimate_batches(self, durations: Sequence[float]) -> int:
        """How many batches (of at least ``min_batch_size``) these durations give.

        Exact for ``shuffle=False``; with shuffling the length jitter and the order of
        samples in the buffers move the count by a few batches.
        """
        count = 0
        for i in range(0, len(durations), self.buffer_size):
            chunk = list(durations[i : i + self.buffer_size])
            if self.sort_by_length:
                chunk.sort()
            count += sum(n >= self.min_batch_size for n in self._batch_sizes(chunk))
        return count

    def _emit(self, buffer: list[Sample]) -> Iterator[list[Sample]]:
        batches = self._cut(buffer)  # sorted by (jittered) length: shortest first
        if self.shuffle and not self.shortest_first:
            self._rng.shuffle(batches)
        for batch in batches:
            if len(batch) < self.min_batch_size:
                continue
            self.real_seconds += sum(s[self.length_key] for s in batch)
            self.padded_seconds += max(s[self.length_key] for s in batch) * len(batch)
            yield batch

    def __call__(self, samples: Iterable[Sample]) -> Iterator[list[Sample]]:
        buffer: list[Sample] = []
        for sample in samples:
            buffer.append(sample)
            if len(buffer) >= self.buffer_size:
                yield from self._emit(buffer)
                buffer = []
        if buffer:
            yield from self._emit(buffer)


def pad_sequences(seqs: Sequence[Sequence[float] | np.ndarray], pad: float) -> torch.Tensor:
    """Stack 1-D sequences into a (B, max_len) tensor filled with ``pad``."""
    longest = max((len(s) for s in seqs), default=0)
    first = np.asarray(seqs[0]) if seqs else np.zeros(0)
    dtype = torch.float32 if np.issubdtype(first.dtype, np.floating) else torch.long
    out = torch.full((len(seqs), longest), pad, dtype=dtype)
    for i, seq in enumerate(seqs):
        out[i, : len(seq)] = torch.as_tensor(np.asarray(seq))
    return out


@dataclass
class Collate:
    """Turn a list of samples into model inputs.

    ``tokenize`` maps a transcript to token ids; batch keys: ``keys``, ``speech``,
    ``speech_lengths``, ``text`` (padded with ``ignore_id``), ``text_lengths``, ``texts``.
    """

    tokenize: Callable[[str], list[int]] | None = None
    ignore_id: int = -1

    def __call__(self, batch: Sequence[Sample]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "keys": [s["key"] for s in batch],
            "texts": [s["text"] for s in batch],
            "speech": pad_sequences([s["audio"] for s in batch], 0.0),
            "speech_lengths": torch.tensor([len(s["audio"]) for s in batch], dtype=torch.long),
        }
        if self.tokenize is not None:
            ids = [self.tokenize(s["text"]) for s in batch]
            out["text"] = pad_sequences([np.asarray(i, dtype=np.int64) for i in ids], self.ignore_id)
            out["text_lengths"] = torch.tensor([len(i) for i in ids], dtype=torch.long)
        return out


def map_stage(fn: Callable[[Any], Any]) -> Callable[[Iterable[Any]], Iterator[Any]]:
    """Lift a per-item function into an ``iterator -> iterator`` stage."""

    def stage(items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            yield fn(item)

    return stage
