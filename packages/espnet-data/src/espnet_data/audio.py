"""Audio I/O on soundfile: read, decode, encode FLAC, resample, validate.

Everything here works on mono float32 numpy arrays in [-1, 1].
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf

Pathlike = str | os.PathLike[str]
SampleRate = int


class AudioError(ValueError):
    """A sample whose audio cannot be used; the message says why."""


def read_audio(source: Pathlike | bytes, *, channel: int | None = 0) -> tuple[np.ndarray, SampleRate]:
    """Read a file path or encoded bytes (wav, flac, sph, ogg...) as float32 mono.

    ``channel`` picks one channel of a multi-channel file; ``None`` averages them.
    Raises :class:`AudioError` naming the source when soundfile cannot decode it.
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        audio, rate = sf.read(handle, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"cannot decode audio {name}: {err}") from err
    if audio.shape[1] > 1:
        audio = audio.mean(axis=1) if channel is None else audio[:, channel]
    else:
        audio = audio[:, 0]
    return np.ascontiguousarray(audio), int(rate)


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
    if not np.isfinite(audio).all():
        raise AudioError(f"{key}: audio contains NaN or Inf samples")
    if not np.any(audio):
        raise AudioError(f"{key}: audio is digital silence (all samples are 0)")


def write_audio(path: Pathlike, audio: np.ndarray, sample_rate: SampleRate) -> None:
    """Write audio atomically; the format follows the suffix (.wav, .flac)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, np.clip(audio, -1.0, 1.0), sample_rate, format=path.suffix.lstrip(".").upper())
    os.replace(tmp, path)
