"""Audio I/O on soundfile: read, decode, encode FLAC, resample, validate.

Everything here works on mono float32 numpy arrays in [-1, 1]. Multi-channel audio is
mixed down (the mean of its channels) unless a channel is chosen, so that a recording
whose speech is on one channel only is not taken for silence. Decoded audio with NaN or
Inf samples (a float WAV can hold them) is refused with :class:`NonFiniteAudioError`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf

Pathlike = str | os.PathLike[str]
SampleRate = int

_MAX_CHANNELS = 64  # more "channels" than this: the array is (channels, frames)


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
