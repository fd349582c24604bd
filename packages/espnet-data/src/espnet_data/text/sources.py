"""Where LM sentences come from: text files, split folders, the mini corpus's generator.

A text source is any object with ``sentences() -> Iterator[(key, text)]`` (``text`` a
``str``, or a raw line's ``bytes`` that the text split writer decodes or rejects). In a
config it is a ``class_path`` + ``init_args`` entry, like a corpus::

    sets:
      train:
        - class_path: espnet_data.text.SplitText        # the ASR training transcripts
          init_args: {split_dir: ../asr/data/train}
        - class_path: espnet_data.text.TextFile         # one sentence per line, .gz too
          init_args: {path: /data/extra_text.txt.gz}

A source that reads folders or files lists them with ``input_paths() -> {init_args key:
path}``, so a recipe checks them before any stage runs.
"""

from __future__ import annotations

import gzip
import logging
import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from ..atomic import read_jsonl
from ..synth.text import generate_sentence
from .shards import clean_sentence, read_text_split

log = logging.getLogger(__name__)

Pathlike = str | os.PathLike[str]
_GZIP_MAGIC = b"\x1f\x8b"


@runtime_checkable
class TextSource(Protocol):
    """The contract of the LM ``create_dataset`` stage: sentences with unique keys."""

    def sentences(self) -> Iterator[tuple[str, str | bytes]]:
        """Every ``(key, text)`` in a deterministic order; keys hold no ``.``."""
        ...


def key_prefix_of(path: Pathlike) -> str:
    """A key prefix from a file name: ``librispeech-lm-norm.txt.gz`` -> ``librispeech_lm_norm``."""
    name = Path(path).name
    for suffix in (".gz", ".txt"):
        name = name.removesuffix(suffix)
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "line"


def open_text(path: Pathlike) -> IO[bytes]:
    """``path`` opened for reading bytes, gunzipped when it is gzip (by its first bytes)."""
    handle = open(path, "rb")  # noqa: SIM115 - returned to the caller
    if handle.peek(2)[:2] == _GZIP_MAGIC:
        return gzip.open(handle)  # type: ignore[return-value]
    return handle


@dataclass
class TextFile:
    """One sentence per line of a plain or gzip text file (read as bytes, line by line).

    Args:
        path: the file (``.gz`` or plain; gzip is recognised by its content).
        key_prefix: keys are ``<key_prefix>_<line number, 8 digits>`` (1-based); default
            from the file name (``librispeech-lm-norm.txt.gz`` -> ``librispeech_lm_norm``).
        has_keys: each line is ``<key> <text>`` (a Kaldi ``text`` file) instead.
        max_lines: read at most this many lines (None: all).
    """

    path: str
    key_prefix: str | None = None
    has_keys: bool = False
    max_lines: int | None = None

    def input_paths(self) -> dict[str, str]:
        return {"path": self.path}

    def sentences(self) -> Iterator[tuple[str, str | bytes]]:
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"text file {self.path} does not exist")
        prefix = self.key_prefix or key_prefix_of(self.path)
        with open_text(self.path) as lines:
            for number, line in enumerate(lines, 1):
                if self.max_lines is not None and number > self.max_lines:
                    break
                line = line.rstrip(b"\r\n")
                if self.has_keys:
                    key, _, text = line.strip().partition(b" ")
                    yield key.decode("utf-8", errors="replace") or f"{prefix}_{number:08d}", text
                else:
                    yield f"{prefix}_{number:08d}", line


@dataclass
class SplitText:
    """The sentences of a split folder: an ASR split's transcripts (its ``index.jsonl``),
    or a text split's sentences (its shards).

    Args:
        split_dir: a folder written by ``create_dataset`` (ASR or LM).
    """

    split_dir: str

    def input_paths(self) -> dict[str, str]:
        return {"split_dir": self.split_dir}

    def sentences(self) -> Iterator[tuple[str, str | bytes]]:
        index = Path(self.split_dir) / "index.jsonl"
        if not index.is_file():
            raise FileNotFoundError(
                f"{index} does not exist: {self.split_dir} is not a split folder; run the "
                "create_dataset stage that writes it first"
            )
        rows = read_jsonl(index)
        if rows and "num_sentences" in rows[0]:
            yield from read_text_split(self.split_dir)
            return
        for row in rows:
            yield row["key"], row.get("text", "")


def split_sentences(split_dirs: list[str]) -> set[str]:
    """Every sentence (whitespace collapsed) of the given split folders."""
    found: set[str] = set()
    for folder in split_dirs:
        for _, text in SplitText(folder).sentences():
            try:
                found.add(clean_sentence(text))
            except ValueError:
                continue
    return found


@dataclass
class MiniLMText:
    """LM text from the mini corpus's own sentence generator (no audio is made).

    Sentence ``i`` is the transcript part of ``generate_sentence(random.Random(
    f"{seed}-{stream}-{i}"))``: the draw the mini corpus makes for utterance ``i`` of a
    split named ``stream`` (``plan_utterance``). With the default stream ``lm`` the
    sentences are new draws, not the ASR training transcripts.

    Args:
        num_sentences: sentences to yield (after leaving out the excluded ones).
        seed: the mini corpus's seed.
        stream: the name the draws are made under (any name but the corpus's splits).
        exclude_splits: split folders (e.g. the ASR ``dev`` and ``test`` splits) whose
            transcripts are left out, so the LM text is disjoint from them.
        key_prefix: keys are ``<key_prefix>-<draw number, 7 digits>``.
    """

    num_sentences: int = 40_000
    seed: int = 0
    stream: str = "lm"
    exclude_splits: list[str] = field(default_factory=list)
    key_prefix: str = "mini-lm"

    def __post_init__(self) -> None:
        if self.stream in ("train", "dev", "test"):
            raise ValueError(
                f"stream={self.stream!r} would repeat the mini corpus's {self.stream} split; "
                "use another name (default: lm)"
            )

    def input_paths(self) -> dict[str, str]:
        return {f"exclude_splits[{i}]": p for i, p in enumerate(self.exclude_splits)}

    def sentences(self) -> Iterator[tuple[str, str | bytes]]:
        excluded = split_sentences(self.exclude_splits)
        made = skipped = draw = 0
        while made < self.num_sentences:
            if skipped > 10 * self.num_sentences + 1000:
                raise RuntimeError(
                    f"MiniLMText: {skipped} of {draw} draws were in {self.exclude_splits}; "
                    "the exclusions leave too few sentences"
                )
            text, _ = generate_sentence(random.Random(f"{self.seed}-{self.stream}-{draw}"))
            draw += 1
            if text in excluded:
                skipped += 1
                continue
            made += 1
            yield f"{self.key_prefix}-{draw - 1:07d}", text
        log.info("MiniLMText: %d sentences from %d draws; left out %d that are in %s",
                 made, draw, skipped, self.exclude_splits)
