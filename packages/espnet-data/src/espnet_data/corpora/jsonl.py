"""NeMo-style JSONL manifests as a corpus: one JSON object per line, one file per split.

Each line::

    {"audio_filepath": "wavs/a1.wav", "duration": 3.21, "text": "hello world"}
    {"audio_filepath": "/data/talk.flac", "offset": 12.5, "duration": 4.0, "text": "...", "speaker": "s7"}

``audio_filepath`` is absolute or relative to the manifest's folder; ``offset`` and
``duration`` (seconds) cut a segment, of which only the frames are read; ``duration``
missing reads to the end of the file (NeMo reads ``duration`` seconds). A speaker id is
taken from the first of ``speaker_fields`` a row has. Nothing but the standard library
and soundfile is needed.

Keys: ``key_field`` names a field holding the utterance id; without it, the key is the
audio file's path relative to the folder all of the split's files share, without its
suffix, ``/`` written ``-`` (``spk1/a1.wav`` -> ``spk1-a1``); a file with several rows
(segments) adds each row's offset in milliseconds (``talk-00012500``). Dots and spaces
become ``_`` (WebDataset cuts member names at the first dot).

A bad row never stops the job; the shard writer lists it with its key and reason: a
line that is not a JSON object, a row without ``audio_filepath`` or text, a missing
audio file, an offset or duration that is not a number or lies outside the file, a line
that is not UTF-8.

Usage::

    from espnet_data import write_split
    from espnet_data.corpora import JsonlManifestCorpus

    corpus = JsonlManifestCorpus(manifests={"train": "train_manifest.json",
                                            "dev": "dev_manifest.json"})
    write_split(corpus, "dev", "data/dev")
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..corpus import Entry, check_split
from ._spans import Span, check_times, read_span, safe_key
from ._tables import Unusable

__all__ = ["JsonlManifestCorpus", "read_manifest"]


@dataclass(frozen=True)
class ManifestRow:
    """One non-empty line of a manifest: its object, or why it has none."""

    manifest: Path
    lineno: int
    row: dict[str, Any] | None
    line: str
    error: str = ""


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRow]:
    """The non-empty lines of a JSONL manifest, each parsed on its own.

    A line that is not UTF-8 is decoded with ``surrogateescape`` (its text then fails
    the writer's UTF-8 check, its path still names the file); a line that is not a JSON
    object keeps its ``error``.
    """
    path = Path(path).absolute()
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            line = raw.decode("utf-8", errors="surrogateescape").strip()
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                rows.append(ManifestRow(path, lineno, None, line, f"not JSON ({err})"))
                continue
            if not isinstance(row, dict):
                rows.append(ManifestRow(path, lineno, None, line, "not a JSON object"))
                continue
            rows.append(ManifestRow(path, lineno, row, line))
    return rows


def _audio_path(row: ManifestRow) -> str | None:
    value = row.row.get("audio_filepath") if row.row else None
    if not isinstance(value, str) or not value:
        return None
    path = Path(value).expanduser()
    return os.path.normpath(path if path.is_absolute() else row.manifest.parent / path)


def _text(value: Any) -> str | None | Unusable:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return Unusable(f"its text is a {type(value).__name__}, not a string")


@dataclass
class JsonlManifestCorpus:
    """NeMo-style JSONL manifests, one (or a list) per split.

    Args:
        manifests: split name -> manifest file, or a list of them read in turn.
        text_field: the field holding the transcript.
        speaker_fields: fields that may hold a speaker id; the first one a row has counts.
        key_field: a field holding each row's utterance id; ``None`` derives keys from
            the audio paths (see the module's doc).
        channel: which channel of multi-channel audio to keep (0 is the first); ``None``
            averages them.
    """

    manifests: dict[str, str | list[str]]
    text_field: str = "text"
    speaker_fields: list[str] = field(default_factory=lambda: ["speaker", "spk", "speaker_id"])
    key_field: str | None = None
    channel: int | None = None

    def __post_init__(self) -> None:
        if not self.manifests:
            raise ValueError("JsonlManifestCorpus needs manifests: a mapping split -> manifest file")

    def splits(self) -> list[str]:
        return list(self.manifests)

    def _files(self, split: str) -> list[Path]:
        check_split(self, split)
        value = self.manifests[split]
        files = [Path(value)] if isinstance(value, str | os.PathLike) else [Path(v) for v in value]
        for path in files:
            if not path.is_file():
                raise FileNotFoundError(
                    f"manifest {path} (manifests[{split!r}]) does not exist: point it at a "
                    "JSONL file with one {\"audio_filepath\", \"duration\", \"text\"} object per line"
                )
        return files

    def entries(self, split: str) -> list[Entry]:
        rows = [row for path in self._files(split) for row in read_manifest(path)]
        paths = [_audio_path(row) for row in rows]
        found = [p for p in paths if p is not None]
        common = os.path.commonpath([os.path.dirname(p) for p in found]) if found else ""
        rows_of_file = Counter(found)
        return [self._entry(row, path, common, rows_of_file) for row, path in zip(rows, paths, strict=True)]

    def _key(self, row: ManifestRow, path: str | None, common: str, rows_of_file: Counter[str]) -> str:
        where = f"{safe_key(row.manifest.stem)}-line{row.lineno:06d}"
        if row.row is not None and self.key_field is not None:
            value = row.row.get(self.key_field)
            return safe_key(str(value)) if value not in (None, "") else where
        if path is None:
            return where
        key = os.path.splitext(os.path.relpath(path, common))[0].replace(os.sep, "-")
        if rows_of_file[path] > 1:
            offset = row.row.get("offset", 0) if row.row else 0
            numeric = isinstance(offset, int | float) and np.isfinite(offset) and offset >= 0
            key += f"-{round(offset * 1000):08d}" if numeric else f"-line{row.lineno}"
        return safe_key(key)

    def _entry(self, row: ManifestRow, path: str | None, common: str, rows_of_file: Counter[str]) -> Entry:
        key = self._key(row, path, common, rows_of_file)
        what = f"{row.manifest} line {row.lineno}"
        if row.row is None:
            # the line itself is shown as text so that the reason below is what is reported
            return Entry(key, row.line, source=Unusable(f"{what} is {row.error}"))
        obj = row.row
        text = _text(obj.get(self.text_field))
        speaker = next((str(obj[f]) for f in self.speaker_fields if obj.get(f) not in (None, "")), "")
        offset, duration = obj.get("offset", 0.0), obj.get("duration")
        source: Span | Unusable
        if self.key_field is not None and obj.get(self.key_field) in (None, ""):
            source = Unusable(f"{what} has no {self.key_field!r} (key_field)")
        elif path is None:
            source = Unusable(f"{what} has no audio_filepath (a path to the audio file)")
        elif isinstance(text, Unusable):
            source, text = Unusable(f"{what}: {text.reason}"), row.line
        elif reason := check_times(offset, duration, what):
            source = Unusable(reason)
        else:
            source = Span(path, float(offset), None if duration is None else float(duration))
        return Entry(key, text, speaker, source=source)  # type: ignore[arg-type]

    def load_audio(self, entry: Entry) -> tuple[np.ndarray, int]:
        source = entry.source
        if isinstance(source, Unusable):
            source.raise_()
        channels = self.channel if self.channel is not None else source.channels
        return read_span(source.path, source.start, source.duration, channels)
