"""The embedded corpus ``hard``: sentences from public-domain books read by espeak-ng voices.

Harder than ``mini`` (census phrases, a few hundred words) on every axis a recogniser
feels: natural sentences of 4-25 words with a vocabulary of about 10,800 words
(five 19th- and early 20th-century books, :mod:`espnet_data.synth.books`), fewer
voices to learn from (20 voice groups, of which 14 train; the 3 dev and 3 test groups
are never heard in training), and half of the utterances with white or pink noise at
15-30 dB SNR. Dev and test sentences are held out from the training text too, so a
test sentence is new in both voice and words.

Nothing is downloaded: each entry is a synthesis plan and its audio is rendered when
the shard writer loads it, as for ``mini``. Everything follows from ``seed``.

Usage::

    from espnet_data.corpora import HardCorpus
    corpus = HardCorpus()                  # 3,000 train, 300 dev, 300 test utterances
    entries = corpus.entries("test")
    audio, rate = corpus.load_audio(entries[0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..corpus import Entry, check_split
from ..synth import plan_corpus, render, split_voices
from ..synth.books import DEFAULT_BOOKS, MAX_WORDS, MIN_WORDS, BookSentences
from ..synth.voices import sample_voice_groups

__all__ = ["HardCorpus"]

SPLITS = ("train", "dev", "test")


@dataclass
class HardCorpus:
    """Sizes are utterance counts (about 4 s each: 3,000 ≈ 3.3 hours).

    Args:
        utterances: number of utterances per split (``train``, ``dev``, ``test``).
        seed: everything (sentences and their split, voices, jitter, noise) follows from it.
        voice_groups: how many espeak-ng voice groups the corpus uses in all.
        test_groups: of those, voice groups held out for the test split.
        dev_groups: of those, voice groups held out for the dev split.
        books: the shipped books the sentences come from (``espnet_data.synth.books.BOOKS``).
        min_words: shortest sentence kept, in words.
        max_words: longest sentence kept, in words.
        sample_rate: rate the audio is rendered at.
    """

    utterances: dict[str, int] = field(
        default_factory=lambda: {"train": 3000, "dev": 300, "test": 300}
    )
    seed: int = 0
    voice_groups: int = 20
    test_groups: int = 3
    dev_groups: int = 3
    books: Sequence[str] = DEFAULT_BOOKS
    min_words: int = MIN_WORDS
    max_words: int = MAX_WORDS
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        unknown = sorted(set(self.utterances) - set(SPLITS))
        if unknown:
            raise ValueError(
                f"HardCorpus utterances has splits {unknown}; its sentences and voices are "
                f"split into {list(SPLITS)} only: rename them"
            )

    def splits(self) -> list[str]:
        return list(self.utterances)

    def voices(self) -> dict[str, list[str]]:
        pool = sample_voice_groups(self.voice_groups, self.seed)
        return split_voices(
            self.seed, test_groups=self.test_groups, dev_groups=self.dev_groups, voices=pool
        )

    @cached_property
    def _sentences(self) -> BookSentences:
        return BookSentences(self.seed, tuple(self.books), self.min_words, self.max_words)

    def entries(self, split: str) -> list[Entry]:
        check_split(self, split)
        plan = plan_corpus(
            split,
            self.utterances[split],
            self.seed,
            self.voices()[split],
            sentences=self._sentences,
            prefix="hard",
        )
        return [Entry(key=u.key, text=u.text, speaker=u.speaker, source=u) for u in plan]

    def load_audio(self, entry: Entry) -> tuple[np.ndarray, int]:
        return render(entry.source, self.sample_rate), self.sample_rate
