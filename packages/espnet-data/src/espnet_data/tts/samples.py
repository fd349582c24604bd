"""A split written by ``create_dataset`` seen as TTS samples: text, audio, speaker.

TTS uses the same shards as ASR (``<split>/shard-*.tar`` + ``index.jsonl``, see
:mod:`espnet_data.shards`), read by the same reader (:class:`espnet_data.ShardDataset`
with its error policy). A TTS sample adds one field to what ASR reads: ``transcript``,
the reference an ASR model's output is scored against. Corpora whose ``text`` is
written for a speaker rather than for scoring store it in their index rows (the mini
TTS corpus: ``text`` ``"C, H, A."`` is what is spoken, ``transcript`` ``"C H A"`` is what
an ASR model of the mini corpus writes); for the others it is the ``text``.

Usage::

    from espnet_data.tts.samples import read_texts, read_tts_samples
    for sample in read_tts_samples("data/test"):
        sample.key, sample.text, sample.audio.shape, sample.sample_rate, sample.speaker
    texts = read_texts("data/train")            # {key: text}, no audio read
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..dataset import ShardDataset, decode_samples, warn_and_skip
from ..shards import read_index, shard_paths

__all__ = ["TTSSample", "read_texts", "read_transcripts", "read_tts_samples", "to_tts_samples"]

Pathlike = str | os.PathLike[str]


@dataclass(frozen=True)
class TTSSample:
    """One utterance: ``audio`` is float32 mono at ``sample_rate``."""

    key: str
    text: str
    audio: np.ndarray
    sample_rate: int
    speaker: str
    transcript: str

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def _transcript(row: Mapping[str, Any]) -> str:
    return str(row.get("transcript") or row.get("text", ""))


def read_texts(split_dir: Pathlike) -> dict[str, str]:
    """``key -> text`` of a split, from its index (no audio is read), in index order."""
    return {row["key"]: row["text"] for row in read_index(split_dir)}


def read_transcripts(split_dir: Pathlike) -> dict[str, str]:
    """``key -> transcript`` (the ASR reference; the text where the corpus has none)."""
    return {row["key"]: _transcript(row) for row in read_index(split_dir)}


def to_tts_samples(
    samples: Iterable[Mapping[str, Any]], transcripts: Mapping[str, str] | None = None
) -> Iterator[TTSSample]:
    """A stage: decoded shard samples (:func:`espnet_data.dataset.decode_samples`) ->
    :class:`TTSSample`; ``transcripts`` (key -> reference) fills ``transcript``."""
    for s in samples:
        key = str(s["key"])
        text = str(s["text"])
        yield TTSSample(
            key=key,
            text=text,
            audio=np.asarray(s["audio"], dtype=np.float32),
            sample_rate=int(s["sample_rate"]),
            speaker=str(s.get("speaker", "")),
            transcript=(transcripts or {}).get(key, text),
        )


def read_tts_samples(
    split_dir: Pathlike,
    *,
    keys: Iterable[str] | None = None,
    handler: Callable[[Exception], bool] = warn_and_skip,
) -> Iterator[TTSSample]:
    """The samples of ``split_dir`` in shard order (all of them in this process).

    ``keys`` keeps only those utterances (shards holding none of them are not opened);
    ``handler`` is the error policy of :func:`espnet_data.dataset.decode_samples`
    (default: log a broken sample and skip it). Raises ``FileNotFoundError`` when the
    split was never written.
    """
    rows = read_index(split_dir)
    paths = shard_paths(split_dir)
    wanted = None if keys is None else set(keys)
    if wanted is not None:
        shards = {row["shard"] for row in rows if row["key"] in wanted}
        paths = [p for p in paths if Path(p).name in shards]
        if not paths:
            return
    dataset = ShardDataset(
        paths, rank=0, world_size=1, decode=functools.partial(decode_samples, handler=handler)
    )
    transcripts = {row["key"]: _transcript(row) for row in rows}
    for sample in to_tts_samples(dataset, transcripts):
        if wanted is None or sample.key in wanted:
            yield sample

