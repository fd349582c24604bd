"""Shared by the corpus readers: keyed text tables and entries known to be unusable.

A corpus lists every utterance it finds, good or bad. One that is known to be bad
before its audio is read (its recording is not listed, its segment is impossible, its
line is not UTF-8) carries an :class:`Unusable` source: ``load_audio`` raises its
reason, so the shard writer skips it and lists it in the split's summary with its key
and reason, instead of losing it silently or stopping the job. A key given a second
line in a table becomes a second entry of that key, which the writer rejects as a
duplicate (the first is kept).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

Pathlike = str | os.PathLike[str]


class CorpusError(ValueError):
    """One utterance that cannot be used; the message names the file and says why."""


@dataclass(frozen=True)
class Unusable:
    """The source of an entry that is known to be unusable before any audio is read."""

    reason: str

    def raise_(self) -> NoReturn:
        raise CorpusError(self.reason)


@dataclass(frozen=True)
class Row:
    """One line ``<key> <value>`` of a table; ``error`` is set when it is not UTF-8."""

    lineno: int
    key: str
    value: str
    error: str = ""


def read_table(path: Pathlike) -> list[Row]:
    """The non-empty lines of ``path`` split at the first run of whitespace.

    Lines are decoded one by one, so a line that is not UTF-8 becomes a row with an
    ``error`` (decoded with U+FFFD replacements) instead of failing the whole file.
    """
    path = Path(path)
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
                error = ""
            except UnicodeDecodeError as err:
                line = raw.decode("utf-8", errors="replace")
                error = f"{path.name} line {lineno} is not valid UTF-8 ({err.reason})"
            key, *rest = line.split(maxsplit=1)
            rows.append(Row(lineno, key, rest[0].strip() if rest else "", error))
    return rows


@dataclass(frozen=True)
class Table:
    """A keyed table: the first line of each key, and what was wrong with the rest."""

    values: dict[str, str]
    problems: dict[str, str]  # key -> why its (first) line is unusable (not UTF-8)
    repeats: list[tuple[str, str]]  # (key, reason) for each later line of a key


def index_table(path: Pathlike) -> Table:
    """``path`` as a :class:`Table`: a key's first line counts (as the shard writer keeps
    the first of repeated keys); each later line of the key is listed in ``repeats``."""
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    problems: dict[str, str] = {}
    repeats: list[tuple[str, str]] = []
    name = Path(path).name
    for row in read_table(path):
        if row.key in lines:
            reason = f"{name} line {row.lineno} repeats key {row.key} of line {lines[row.key]}"
            repeats.append((row.key, reason))
            continue
        lines[row.key] = row.lineno
        values[row.key] = row.value
        if row.error:
            problems[row.key] = row.error
    return Table(values, problems, repeats)
