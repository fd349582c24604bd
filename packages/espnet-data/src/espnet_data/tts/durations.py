"""``<split>/durations.jsonl``: frames per input token of each utterance, beside its shards.

The alignment stage (collect_stats of the TTS system) writes one line per utterance::

    {"key": "LJ001-0001", "durations": [3, 7, 5, ...], "frames": 412}

``durations`` has one non-negative int per token of ``tokenizer.encode(text)`` and sums
to ``frames``, the utterance's number of mel frames. The file is written atomically
(a reader never sees half of it) with the keys in the order given; the reader checks
every line and names the file, the line and the problem, so a truncated or hand-edited
file fails where it is wrong instead of deep in training.

Usage::

    from espnet_data.tts.durations import read_durations, write_durations
    write_durations("data/train/durations.jsonl", {"utt1": [2, 3, 1]})
    read_durations("data/train/durations.jsonl")       # {'utt1': [2, 3, 1]}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..atomic import atomic_open

__all__ = ["DURATIONS_FILE", "durations_path", "read_durations", "write_durations"]

DURATIONS_FILE = "durations.jsonl"

Pathlike = str | os.PathLike[str]


def durations_path(split_dir: Pathlike) -> Path:
    """Where a split's durations live: ``<split_dir>/durations.jsonl``."""
    return Path(split_dir) / DURATIONS_FILE


def _check(key: object, durations: object, where: str) -> list[int]:
    if not isinstance(key, str) or not key:
        raise ValueError(f"{where}: key {key!r} must be a non-empty string")
    if not isinstance(durations, Sequence) or isinstance(durations, str) or not durations:
        raise ValueError(f"{where}: durations of {key!r} must be a non-empty list of ints")
    out = []
    for n, d in enumerate(durations):
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ValueError(
                f"{where}: durations of {key!r}: item {n} is {d!r}, expected an int >= 0 "
                "(frames of that token)"
            )
        out.append(int(d))
    return out


def write_durations(
    path: Pathlike, durations: Mapping[str, Sequence[int]] | Iterable[tuple[str, Sequence[int]]]
) -> Path:
    """Write ``key -> durations`` (a mapping or ``(key, durations)`` pairs) atomically.

    Each line also records ``frames`` (the sum). Raises ``ValueError`` for a bad key,
    an empty list, a negative or non-int duration, or a repeated key.
    """
    items = durations.items() if isinstance(durations, Mapping) else durations
    path = Path(path)
    seen: set[str] = set()
    lines = []
    for n, (key, values) in enumerate(items):
        checked = _check(key, values, f"{path}: utterance #{n}")
        if key in seen:
            raise ValueError(f"{path}: key {key!r} is given twice (utterance #{n})")
        seen.add(key)
        lines.append(json.dumps({"key": key, "durations": checked, "frames": sum(checked)}) + "\n")
    with atomic_open(path) as f:
        f.writelines(lines)
    return path


def read_durations(path: Pathlike) -> dict[str, list[int]]:
    """``key -> durations`` of a file written by :func:`write_durations`, validated.

    Raises ``FileNotFoundError`` (with the stage that writes it) when it is missing and
    ``ValueError`` naming ``<path>:<line>`` for a line that is not JSON, lacks a field,
    has a bad value, a ``frames`` that is not the sum, or repeats a key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the collect_stats stage of the TTS system writes the "
            "durations beside the shards; run it first"
        )
    out: dict[str, list[int]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not a JSON line ({err}); rerun collect_stats") from err
            if not isinstance(row, dict) or not {"key", "durations"} <= row.keys():
                raise ValueError(f"{where}: expected an object with 'key' and 'durations', got {line.strip()[:80]!r}")
            key = row["key"]
            durations = _check(key, row["durations"], where)
            frames = row.get("frames", sum(durations))
            if frames != sum(durations):
                raise ValueError(
                    f"{where}: {key!r} has frames {frames!r} but its durations sum to "
                    f"{sum(durations)}; the file is damaged, rerun collect_stats"
                )
            if key in out:
                raise ValueError(f"{where}: key {key!r} appears twice; rerun collect_stats")
            out[key] = durations
    return out
