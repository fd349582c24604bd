"""Check and encode one utterance for a shard, or reject it with a code and a reason.

:func:`prepare_sample` is what the shard writer does to every entry: clean the
transcript, load the audio through the corpus, check it, resample it to the target
rate, and encode it. When the source is already a FLAC (or 16-bit PCM WAV) file at the
target rate, mono, and decodes to exactly what the corpus returned, its original bytes
are stored as they are (no re-encoding: faster, and bit-exact with the source).

A sample that cannot be used raises :class:`Rejected`; its ``code`` is one of
:data:`REJECT_CODES`, its message names the problem and, where it helps, the fix.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .audio import AudioError, NonFiniteAudioError, check_audio, encode_flac, resample, to_mono
from .corpus import Corpus, Entry

REJECT_CODES = (
    "bad_key",
    "duplicate_key",
    "missing_transcript",
    "empty_transcript",
    "bad_text_encoding",
    "unreadable_audio",
    "truncated_audio",
    "empty_audio",
    "bad_audio",
    "sample_rate",
    "too_short",
    "too_long",
)

_AUDIO_SUFFIXES = {".flac", ".wav"}
_HEAD_BYTES = 65536  # enough for the chunk headers before a WAV's data chunk


class Rejected(ValueError):
    """A sample that is skipped; ``code`` is one of :data:`REJECT_CODES`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SampleOptions:
    """How samples are checked and stored (the fields of ``ShardOptions`` that matter here)."""

    sample_rate: int = 16000
    min_duration: float = 0.1
    max_duration: float = 30.0
    resample: bool = True
    keep_original: bool = True


@dataclass
class Prepared:
    """One sample ready for a shard: encoded audio, its member extension, its metadata."""

    audio: bytes
    ext: str  # "flac" or "wav"
    meta: dict[str, Any]
    original: bool  # True when ``audio`` is the source's bytes, not re-encoded


def clean_text(text: Any) -> str:
    """The transcript with whitespace normalised; :class:`Rejected` when it is unusable."""
    if text is None:
        raise Rejected("missing_transcript", "missing transcript (the corpus has no text for this key)")
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            raise Rejected(
                "bad_text_encoding",
                f"transcript is not valid UTF-8 ({err.reason} at byte {err.start}: "
                f"{bytes(text)[err.start:err.end]!r}); re-encode the transcript file as UTF-8",
            ) from err
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:  # lone surrogates, e.g. from errors="surrogateescape"
        raise Rejected(
            "bad_text_encoding",
            f"transcript is not valid UTF-8 (undecodable byte at character {err.start}); "
            "re-encode the transcript file as UTF-8",
        ) from err
    if "\ufffd" in text:
        raise Rejected(
            "bad_text_encoding",
            "transcript holds U+FFFD (it was read from invalid UTF-8 with errors='replace'); "
            "re-encode the transcript file as UTF-8",
        )
    cleaned = " ".join(text.split())
    if not cleaned:
        raise Rejected("empty_transcript", "empty transcript")
    return cleaned


def _audio_path(source: Any) -> Path | None:
    """The FLAC/WAV file an entry's source names, if it is one."""
    if isinstance(source, str | os.PathLike) and Path(source).suffix.lower() in _AUDIO_SUFFIXES:
        return Path(source)
    return None


def check_wav_complete(head: bytes, total_size: int, name: str) -> None:
    """Reject a RIFF/WAV file whose ``data`` chunk is shorter than its header says.

    ``head`` is the start of the file (its chunk headers), ``total_size`` its length.
    libsndfile decodes such a file without an error, just shorter; its transcript then
    describes audio that is not there.
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if chunk == b"data":
            have = total_size - pos - 8
            if size not in (0, 0xFFFFFFFF) and have < size:
                raise Rejected(
                    "truncated_audio",
                    f"truncated WAV {name}: its header declares {size} bytes of audio, "
                    f"the file holds {have}",
                )
            return
        pos += 8 + size + (size & 1)


def _check_complete(source: Any) -> None:
    if isinstance(source, bytes | bytearray):
        check_wav_complete(bytes(source[:_HEAD_BYTES]), len(source), "<bytes>")
        return
    path = _audio_path(source)
    if path is not None and path.suffix.lower() == ".wav":
        try:
            with open(path, "rb") as f:
                head = f.read(_HEAD_BYTES)
            size = path.stat().st_size
        except OSError:
            return  # the corpus's load_audio reports it
        check_wav_complete(head, size, str(path))


def _original(source: Any, audio: np.ndarray, opts: SampleOptions) -> tuple[bytes, str] | None:
    """``(bytes, ext)`` when the source file can be stored as is for ``audio``; else ``None``.

    Only the header and the first samples are read to decide; the bytes only when kept.
    """
    path = _audio_path(source)
    if isinstance(source, bytes | bytearray):
        blob: bytes | None = bytes(source)
        handle: Any = io.BytesIO(blob)
    elif path is not None:
        blob, handle = None, path
    else:
        return None
    try:
        info = sf.info(handle)
        if info.format == "FLAC":
            ext = "flac"
        elif info.format == "WAV" and info.subtype == "PCM_16":
            ext = "wav"
        else:
            return None
        if info.samplerate != opts.sample_rate or info.channels != 1 or info.frames != len(audio):
            return None
        if blob is not None:
            handle.seek(0)
        # the corpus may have processed the file: compare the first samples too
        head, _ = sf.read(handle, frames=min(len(audio), 4096), dtype="float32")
        if not np.array_equal(head, audio[: len(head)]):
            return None
        return (blob if blob is not None else Path(handle).read_bytes()), ext
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
        return None


def prepare_sample(corpus: Corpus, entry: Entry, opts: SampleOptions) -> Prepared:
    """Load, check and encode one entry; raise :class:`Rejected` to skip it."""
    text = clean_text(entry.text)
    _check_complete(entry.source)
    try:
        audio, rate = corpus.load_audio(entry)
        # a corpus may hand back (frames, channels): mix down, as read_audio does
        audio = to_mono(audio, name=entry.key)
    except NonFiniteAudioError as err:  # decoded, but NaN/Inf samples: bad audio
        raise Rejected("bad_audio", str(err)) from err
    except Exception as err:  # noqa: BLE001 - any corpus failure rejects this sample only
        reason = str(err) if isinstance(err, AudioError | OSError) else f"{type(err).__name__}: {err}"
        raise Rejected("unreadable_audio", reason) from err
    if audio.size == 0:
        raise Rejected("empty_audio", f"{entry.key}: empty audio (0 samples)")
    try:
        check_audio(audio, entry.key)
    except AudioError as err:
        raise Rejected("bad_audio", str(err)) from err
    if rate != opts.sample_rate:
        if not opts.resample:
            raise Rejected(
                "sample_rate",
                f"sample rate {rate} Hz != {opts.sample_rate} Hz (set resample: true to convert it)",
            )
        audio = resample(audio, rate, opts.sample_rate)
    duration = len(audio) / opts.sample_rate
    if not opts.min_duration <= duration <= opts.max_duration:
        code = "too_short" if duration < opts.min_duration else "too_long"
        raise Rejected(
            code, f"duration {duration:.2f}s outside [{opts.min_duration}, {opts.max_duration}]"
        )
    meta = {"key": entry.key, "text": text, "speaker": entry.speaker, "duration": round(duration, 4)}
    meta.update(entry.extra)
    kept = _original(entry.source, audio, opts) if opts.keep_original and rate == opts.sample_rate else None
    if kept is not None:
        return Prepared(kept[0], kept[1], meta, original=True)
    return Prepared(encode_flac(audio, opts.sample_rate), "flac", meta, original=False)
