"""Audio I/O on soundfile: read, decode, encode FLAC, resample (whole or streamed), validate.

Everything here works on mono float32 numpy arrays in [-1, 1]. Multi-channel audio is
mixed down (the mean of its channels) unless a channel is chosen, so that a recording
whose speech is on one channel only is not taken for silence. Decoded audio with NaN or
Inf samples (a float WAV can hold them) is refused with :class:`NonFiniteAudioError`.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf

Pathlike = str | os.PathLike[str]
SampleRate = int

_MAX_CHANNELS = 64  # more "channels" than this: the array is (channels, frames)
# torchaudio.functional.resample's defaults, which resample() uses: they set the half width
# of its filter, which StreamingResampler must know to tell when an output block is final
_LOWPASS_FILTER_WIDTH = 6
_ROLLOFF = 0.99


class AudioError(ValueError):
    """A sample whose audio cannot be used; the message says why."""


class NonFiniteAudioError(AudioError):
    """Decoded audio holding NaN or Inf samples; the message names the source and how
    many samples are bad."""


def to_mono(audio: np.ndarray, channel: int | None = None, *, name: str = "<audio>") -> np.ndarray:
    """One float32 channel of ``audio`` shaped ``(frames,)`` or ``(frames, channels)``.

    ``channel`` picks one channel; ``None`` (the default) averages them, so speech on
    one channel only survives.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return audio
    if audio.ndim != 2:
        raise AudioError(
            f"{name}: audio of shape {audio.shape}: expected (frames,) or (frames, channels)"
        )
    channels = audio.shape[1]
    if channels > _MAX_CHANNELS:
        raise AudioError(
            f"{name}: audio of shape {audio.shape} would have {channels} channels: expected "
            "(frames, channels); transpose audio given as (channels, frames)"
        )
    if channel is None:
        mono = audio[:, 0] if channels == 1 else audio.mean(axis=1, dtype=np.float32)
    elif -channels <= channel < channels:
        mono = audio[:, channel]
    else:
        raise AudioError(
            f"{name} has {channels} channels: there is no channel {channel}; choose one "
            f"of 0..{channels - 1}, or none to average them"
        )
    return np.ascontiguousarray(mono)


def check_finite(audio: np.ndarray, name: str) -> None:
    """Raise :class:`NonFiniteAudioError` when ``audio`` holds NaN or Inf samples."""
    bad = int(np.count_nonzero(~np.isfinite(audio)))
    if bad:
        raise NonFiniteAudioError(
            f"{name}: {bad} of {audio.size} samples are NaN or Inf: the audio is corrupt; "
            "re-create it from its source"
        )


def read_audio(
    source: Pathlike | bytes, *, channel: int | None = None, name: str | None = None
) -> tuple[np.ndarray, SampleRate]:
    """Read a file path or encoded bytes (wav, flac, sph, ogg...) as float32 mono.

    ``channel`` picks one channel of a multi-channel file; ``None`` (the default)
    averages them. ``name`` is what errors call the source (default: the path, or
    ``<bytes>``). Raises :class:`AudioError` naming the source when soundfile cannot
    decode it, and :class:`NonFiniteAudioError` when it holds NaN or Inf samples.
    """
    if name is None:
        name = "<bytes>" if isinstance(source, bytes | bytearray) else str(source)
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
        audio, rate = sf.read(handle, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"cannot decode audio {name}: {err}") from err
    mono = to_mono(audio, channel, name=name)
    check_finite(mono, name)
    return mono, int(rate)


def encode_flac(audio: np.ndarray, sample_rate: SampleRate) -> bytes:
    """Encode float audio as 16-bit FLAC bytes (lossless for 16-bit sources)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def resample(audio: np.ndarray, orig_rate: SampleRate, new_rate: SampleRate) -> np.ndarray:
    """Band-limited resampling through ``torchaudio.functional.resample``."""
    if orig_rate == new_rate:
        return audio
    import torch
    import torchaudio.functional as taf

    out = taf.resample(torch.from_numpy(np.ascontiguousarray(audio)), orig_rate, new_rate)
    return out.numpy().astype(np.float32, copy=False)


class StreamingResampler:
    """Resample audio that arrives in pieces (a microphone), as :func:`resample` would
    the whole recording.

    ``push(chunk)`` returns the output samples that no later input can change (possibly
    none); ``push(chunk, final=True)`` (``chunk`` may be empty) returns the rest and ends
    the stream. Concatenated, the outputs equal ``resample(whole, orig_rate, new_rate)``
    up to float rounding, however ``whole`` was cut; resampling each chunk alone would
    instead put the filter's zero padding at every chunk edge.

    How: with both rates divided by their gcd (``o`` in, ``n`` out), :func:`resample`
    makes output block ``j`` (``n`` samples) from input samples ``j*o - w`` to
    ``j*o + o + w`` (``w``: the filter's half width; zeros beyond the ends). The
    resampler keeps the input from a block boundary at least ``w`` samples before the
    next block it owes, resamples that window when blocks are complete and returns
    them. Output thus lags input by at most one block plus ``w`` input samples (44.1 or
    48 kHz to 16 kHz: under 1 ms). Chunks are 1-D float samples; checking them (finite,
    mono) is the caller's job.
    """

    def __init__(self, orig_rate: SampleRate, new_rate: SampleRate) -> None:
        for name, rate in (("orig_rate", orig_rate), ("new_rate", new_rate)):
            if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
                raise ValueError(f"StreamingResampler: {name}={rate!r} is not a positive int")
        self.orig_rate, self.new_rate = orig_rate, new_rate
        gcd = math.gcd(orig_rate, new_rate)
        self._in, self._out = orig_rate // gcd, new_rate // gcd
        self._width = math.ceil(
            _LOWPASS_FILTER_WIDTH * self._in / (min(self._in, self._out) * _ROLLOFF)
        )
        self._buffer = np.zeros(0, dtype=np.float32)  # input from block _start on
        self._start = 0  # the block whose first input sample is _buffer[0]
        self._next = 0  # the first output block not returned yet
        self.finished = False

    def push(self, chunk: np.ndarray, *, final: bool = False) -> np.ndarray:
        """Take ``chunk`` (1-D float samples at ``orig_rate``); return the float32 samples
        at ``new_rate`` that are now final (all the rest with ``final=True``)."""
        if self.finished:
            raise ValueError("StreamingResampler: pushed after final=True; make a new one")
        samples = np.asarray(chunk, dtype=np.float32)
        if samples.ndim != 1:
            raise AudioError(
                f"StreamingResampler: chunk of shape {samples.shape}; expected 1-D samples "
                "(mix channels down with to_mono first)"
            )
        self.finished = final
        if self.orig_rate == self.new_rate:
            return samples
        self._buffer = np.concatenate([self._buffer, samples])
        first = self._next - self._start  # blocks of the buffer returned already
        if final:
            if self._buffer.size == 0:
                return np.zeros(0, dtype=np.float32)
            return resample(self._buffer, self.orig_rate, self.new_rate)[first * self._out :]
        reach = self._buffer.size - self._in - self._width  # last complete block starts <= reach
        complete = reach // self._in + 1 if reach >= 0 else 0
        if complete <= first:
            return np.zeros(0, dtype=np.float32)
        out = resample(self._buffer, self.orig_rate, self.new_rate)
        out = out[first * self._out : complete * self._out]
        self._next = self._start + complete
        keep = max(0, self._next - math.ceil(self._width / self._in))
        self._buffer = self._buffer[(keep - self._start) * self._in :]
        self._start = keep
        return out


def check_audio(audio: np.ndarray, key: str) -> None:
    """Reject audio that would poison training: empty, non-finite or all zeros."""
    if audio.size == 0:
        raise AudioError(f"{key}: empty audio (0 samples)")
    check_finite(audio, key)
    if not np.any(audio):
        raise AudioError(f"{key}: audio is digital silence (all samples are 0)")


def write_audio(path: Pathlike, audio: np.ndarray, sample_rate: SampleRate) -> None:
    """Write audio atomically; the format follows the suffix (.wav, .flac)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, np.clip(audio, -1.0, 1.0), sample_rate, format=path.suffix.lstrip(".").upper())
    os.replace(tmp, path)
