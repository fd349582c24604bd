"""Test helpers users want too: an in-memory corpus, synthetic tones, tiny shard splits.

Usage::

    from espnet_data import Entry
    from espnet_data.testing import ListCorpus, make_shards, tone

    corpus = ListCorpus({"train": [Entry("a", "HELLO", source=(tone(1.0), 16000))]})
    split_dir = make_shards("/tmp/tiny", 6)   # 6 spoken utterances, 3 shards, ~1 s
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import read_audio
from .corpus import Entry, check_split
from .shards import ShardOptions, write_split

__all__ = ["ListCorpus", "make_shards", "tone"]

Pathlike = str | os.PathLike[str]


def tone(
    seconds: float, sample_rate: int = 16000, freq: float = 440.0, amplitude: float = 0.3
) -> np.ndarray:
    """A float32 sine of ``seconds`` at ``sample_rate``: cheap, valid, non-silent audio."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@dataclass
class ListCorpus:
    """A :class:`~espnet_data.corpus.Corpus` over given entries, split name -> entries.

    An entry's ``source`` is an ``(audio, sample_rate)`` pair, a file path, or encoded
    audio bytes. The corpus pickles, so ``write_split(..., num_workers=2)`` works.
    """

    split_entries: dict[str, list[Entry]]

    def splits(self) -> list[str]:
        return list(self.split_entries)

    def entries(self, split: str) -> list[Entry]:
        check_split(self, split)
        return list(self.split_entries[split])

    def load_audio(self, entry: Entry) -> tuple[np.ndarray, int]:
        if isinstance(entry.source, tuple):
            audio, rate = entry.source
            return np.asarray(audio, dtype=np.float32), int(rate)
        return read_audio(entry.source)

    @classmethod
    def from_dir(cls, audio_dir: Pathlike, split: str = "train") -> ListCorpus:
        """One split over a folder of ``<key>.flac`` and ``transcripts.txt`` lines
        ``<key> <TEXT>`` (the layout of ``espnet_data.synth.write_corpus``); speakers
        come from ``manifest.jsonl`` when it is there."""
        folder = Path(audio_dir)
        transcripts = folder / "transcripts.txt"
        if not transcripts.is_file():
            raise FileNotFoundError(
                f"{transcripts} not found: expected '<key> <TEXT>' lines, e.g. from "
                "espnet_data.synth.make_tiny_corpus"
            )
        speakers: dict[str, str] = {}
        manifest = folder / "manifest.jsonl"
        if manifest.is_file():
            rows = [json.loads(line) for line in manifest.read_text().splitlines() if line]
            speakers = {r["key"]: r.get("speaker", "") for r in rows}
        entries = []
        for line in transcripts.read_text().splitlines():
            if line.strip():
                key, _, text = line.partition(" ")
                entries.append(
                    Entry(key, text, speakers.get(key, ""), source=str(folder / f"{key}.flac"))
                )
        return cls({split: entries})


def make_shards(
    out_dir: Pathlike,
    num_utterances: int = 6,
    *,
    utterances_per_shard: int = 2,
    seed: int = 0,
    split: str = "train",
    options: ShardOptions | None = None,
) -> Path:
    """Synthesise a tiny spoken corpus and write it as a shard split; return the split dir.

    Layout: ``<out_dir>/audio`` (FLACs + transcripts, see :meth:`ListCorpus.from_dir`)
    and ``<out_dir>/<split>`` (shards, ``index.jsonl``, ``summary.json``).
    """
    from .synth import make_tiny_corpus

    out = Path(out_dir)
    make_tiny_corpus(out / "audio", num_utterances, seed)
    corpus = ListCorpus.from_dir(out / "audio", split)
    write_split(
        corpus,
        split,
        out / split,
        options=options or ShardOptions(),
        utterances_per_shard=utterances_per_shard,
    )
    return out / split
