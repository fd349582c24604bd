"""Tokenized batches of text for LM training: token-count dynamic batching.

The pipeline over a text split's shards (a :class:`~espnet_data.ShardDataset` with the
text decoder) is: sentences -> :class:`Tokenize` (ids, ``num_tokens``) -> a
:class:`~espnet_data.DynamicBatcher` that counts padded tokens instead of seconds
(:func:`token_batcher`) -> :class:`TextCollate`. :func:`text_batches` builds it::

    from espnet_data import load_tokenizer_dir
    from espnet_data.text import text_batches

    tokenizer = load_tokenizer_dir("../asr/exp/tokenizer")
    for batch in text_batches("data/train", tokenizer.encode, max_tokens=4000):
        batch["text"], batch["text_lengths"]      # (B, L) ids padded with 0, (B,)

``num_tokens`` counts the ``<eos>`` an LM also predicts (ids + 1), so ``max_tokens``
bounds what the model computes: ``(longest + 1) * batch size``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..batching import DynamicBatcher, map_stage, pad_sequences
from ..dataset import ShardDataset
from ..shards import shard_paths
from .shards import check_text_split, decode_text_blocks

log = logging.getLogger(__name__)

Pathlike = str | os.PathLike[str]
PAD_ID = 0  # ESPnet2's LM padding id (its <blank>); positions past text_lengths are ignored


@dataclass
class Tokenize:
    """Stage: add ``tokens`` (ids) and ``num_tokens`` (ids + 1 for ``<eos>``) to each sentence.

    Sentences that give no token, or more than ``max_tokens`` when set, are dropped
    (counted in ``dropped``, logged at the end of each pass).
    """

    tokenize: Callable[[str], list[int]]
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        self.dropped = 0

    def __call__(self, samples: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        dropped = 0
        for sample in samples:
            ids = self.tokenize(sample["text"])
            if not ids or (self.max_tokens is not None and len(ids) > self.max_tokens):
                dropped += 1
                continue
            yield {**sample, "tokens": ids, "num_tokens": len(ids) + 1}
        if dropped:
            self.dropped += dropped
            log.info("dropped %d sentences with no token or more than %s tokens", dropped,
                     self.max_tokens)


@dataclass
class TextCollate:
    """A list of tokenized sentences -> ``keys``, ``texts``, ``text`` (B, L), ``text_lengths``."""

    pad_id: int = PAD_ID

    def __call__(self, batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        ids = [np.asarray(s["tokens"], dtype=np.int64) for s in batch]
        return {
            "keys": [s["key"] for s in batch],
            "texts": [s["text"] for s in batch],
            "text": pad_sequences(ids, self.pad_id),
            "text_lengths": torch.tensor([len(i) for i in ids], dtype=torch.long),
        }


def token_batcher(
    max_tokens: int,
    *,
    max_batch_size: int = 1024,
    buffer_size: int = 20_000,
    shuffle: bool = True,
    seed: int = 0,
) -> DynamicBatcher:
    """A :class:`~espnet_data.DynamicBatcher` whose budget is ``max_tokens`` padded tokens."""
    return DynamicBatcher(
        max_seconds=max_tokens, max_batch_size=max_batch_size, buffer_size=buffer_size,
        shuffle=shuffle, seed=seed, length_key="num_tokens", length_jitter=1.0,
    )


def text_batches(
    split_dir: Pathlike,
    tokenize: Callable[[str], list[int]],
    *,
    max_tokens: int = 4000,
    max_batch_size: int = 1024,
    buffer_size: int = 20_000,
    max_sentence_tokens: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
) -> ShardDataset:
    """Batches of a text split (``write_text_split``), ready for an LM.

    Args:
        split_dir: the text split folder.
        tokenize: text -> ids, e.g. ``load_tokenizer_dir(path).encode``.
        max_tokens: padded tokens per batch (``(longest + 1) * size``).
        max_batch_size: sentences per batch at most.
        buffer_size: sentences sorted by length together before batches are cut.
        max_sentence_tokens: longer sentences are dropped (None: keep all).
        shuffle: shuffle the shard order and the batch order (training).
        seed: seed of the shuffles (the epoch is added by ``set_epoch``).
        rank, world_size: DDP split of the shards (default: from the environment).
    """
    check_text_split(split_dir)
    return ShardDataset(
        shard_paths(split_dir),
        shuffle_shards=shuffle,
        decode=decode_text_blocks,
        stages=[
            Tokenize(tokenize, max_sentence_tokens),
            token_batcher(max_tokens, max_batch_size=max_batch_size, buffer_size=buffer_size,
                          shuffle=shuffle, seed=seed),
            map_stage(TextCollate()),
        ],
        seed=seed,
        rank=rank,
        world_size=world_size,
    )
