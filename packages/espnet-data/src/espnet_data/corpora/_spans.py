"""Shared by the manifest adapters: part of an audio file, and keys a shard can hold.

A manifest row names an audio file and, often, a segment of it (offset and duration in
seconds). :class:`Span` carries that to the worker that reads it; :func:`read_span`
reads only the segment's frames (``soundfile`` seeks), never the whole file. A span is
path-like (``os.fspath`` gives its file), so when it covers a whole FLAC or 16-bit WAV
file at the target rate the shard writer stores the file's bytes as they are; for a
part of a file it re-encodes what was read.

Keys: WebDataset cuts a member name at its first dot, and a ``/`` would make a folder
in the tar, so :func:`safe_key` replaces those (and whitespace) by ``_``. It is
deterministic; two ids that differ only there end up equal, and the shard writer keeps
the first and lists the second as a ``duplicate_key``.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from ..audio import AudioError, check_finite, to_mono
from ._tables import CorpusError

#: a segment may end this far past its file (rounded durations; Kaldi's --max-overshoot)
MAX_OVERSHOOT = 0.5
#: a segment ending this close to its file's end (rounded durations) reads to the end
END_TOLERANCE = 0.01
_UNSAFE = re.compile(r"[./\\\s]")

Channels = int | tuple[int, ...] | None


def safe_key(raw: str) -> str:
    """``raw`` with ``.``, ``/``, ``\\`` and whitespace replaced by ``_``."""
    return _UNSAFE.sub("_", raw)


@dataclass(frozen=True)
class Span:
    """``duration`` seconds of ``path`` from ``start`` (``None``: to the end).

    ``channels``: the file's channel to keep, or several to average; ``None`` averages
    all of them (the corpus's ``channel`` setting, when given, wins).
    """

    path: str
    start: float = 0.0
    duration: float | None = None
    channels: Channels = None

    def __fspath__(self) -> str:
        return self.path


def check_times(start: object, duration: object, what: str) -> str:
    """Why ``start`` / ``duration`` (seconds, ``duration`` may be None) cannot be a
    segment, or ``""`` when they can."""
    for name, value in (("offset", start), ("duration", duration)):
        if value is None and name == "duration":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            return f"{what}: {name} {value!r} is not a number of seconds"
    if start < 0:  # type: ignore[operator]
        return f"{what}: offset {start} s is negative"
    if duration is not None and duration <= 0:  # type: ignore[operator]
        return f"{what}: duration {duration} s is not > 0"
    return ""


def _pick(audio: np.ndarray, channels: Channels, name: str) -> np.ndarray:
    if channels is None or isinstance(channels, int):
        return to_mono(audio, channels, name=name)
    if len(channels) == 1:
        return to_mono(audio, channels[0], name=name)
    have = audio.shape[1]
    bad = [c for c in channels if not 0 <= c < have]
    if bad:
        raise AudioError(f"{name} has {have} channels: there is no channel {bad[0]}")
    return np.ascontiguousarray(audio[:, list(channels)].mean(axis=1, dtype=np.float32))


def read_span(
    source: str | bytes,
    start: float = 0.0,
    duration: float | None = None,
    channels: Channels = None,
    *,
    name: str | None = None,
) -> tuple[np.ndarray, int]:
    """Float32 mono audio of ``source`` (a path or encoded bytes) from ``start`` for
    ``duration`` seconds, and its rate; only those frames are decoded.

    A segment may end up to :data:`MAX_OVERSHOOT` seconds past the file and is clipped;
    one that starts after the end or ends further past it raises :class:`CorpusError`.
    One ending within :data:`END_TOLERANCE` seconds of the end reads to the end.
    """
    name = name or ("<bytes>" if isinstance(source, bytes) else str(source))
    if isinstance(source, str) and not os.path.isfile(source):
        raise AudioError(f"audio file {source} does not exist")
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        info = sf.info(handle)
        rate, frames = info.samplerate, info.frames
        first = round(start * rate)
        stop = frames if duration is None else round((start + duration) * rate)
        if first >= frames > 0:  # an empty file reads as empty: the writer says so
            raise CorpusError(
                f"segment starts at {start:.2f} s, after the end of {name} ({frames / rate:.2f} s)"
            )
        if stop > frames + MAX_OVERSHOOT * rate:
            raise CorpusError(
                f"segment ends at {stop / rate:.2f} s, past the end of {name} "
                f"({frames / rate:.2f} s): check its offset and duration"
            )
        if abs(stop - frames) <= END_TOLERANCE * rate:
            stop = frames  # a whole file stays whole (its bytes can be stored as they are)
        if isinstance(handle, io.BytesIO):
            handle.seek(0)
        audio, rate = sf.read(
            handle, start=first, stop=min(stop, frames), dtype="float32", always_2d=True
        )
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"cannot decode audio {name}: {err}") from err
    mono = _pick(audio, channels, name)
    check_finite(mono, name)
    return mono, int(rate)


def channel_tuple(value: object) -> Channels | str:
    """A manifest's channel field (int, list of ints or absent) as :data:`Channels`, or
    why it is not one."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, Sequence) and not isinstance(value, str) and value and all(
        isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in value
    ):
        return tuple(value)
    return f"channel {value!r} is not a channel number or a list of them"
