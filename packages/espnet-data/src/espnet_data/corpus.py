"""What a corpus is to the shard writer: cheap entries, plus a way to load each one.

A corpus lists its utterances as :class:`Entry` objects without touching audio, so the
list can be split into shards and handed to worker processes. ``load_audio`` is called
in the worker. Corpora are plain picklable objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Entry:
    """One utterance of a corpus, before its audio is read.

    ``text`` is the transcript as the corpus holds it: ``None`` when the corpus has no
    transcript for the key, or raw ``bytes`` when it could not be decoded; the shard
    writer rejects both (``missing_transcript``, ``bad_text_encoding``) with the key.
    """

    key: str
    text: str | bytes | None
    speaker: str = ""
    source: Any = None  # a path, an encoded blob, or corpus-specific recipe for the audio
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Corpus(Protocol):
    """The contract ``create_dataset`` relies on."""

    def splits(self) -> list[str]:
        """The split names this corpus provides, e.g. ``["train", "dev", "test"]``."""
        ...

    def entries(self, split: str) -> list[Entry]:
        """All utterances of ``split`` in a deterministic order; no audio is read."""
        ...

    def load_audio(self, entry: Entry) -> tuple[np.ndarray, int]:
        """The entry's audio as float32 mono and its sample rate."""
        ...


def check_split(corpus: Corpus, split: str) -> None:
    """Raise a clear error when ``split`` is not one of the corpus's splits."""
    if split not in corpus.splits():
        raise ValueError(
            f"split {split!r} is not provided by {type(corpus).__name__}; "
            f"choose from {corpus.splits()}"
        )
