"""Signal effects applied to raw espeak output: resample, speed, trim, level, noise.

All functions are pure: randomness comes in through an explicit
``numpy.random.Generator`` so that a rendered utterance depends only on its seed.
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np

__all__ = [
    "add_noise",
    "add_noise_floor",
    "resample",
    "set_peak",
    "speed_perturb",
    "trim_silence",
]


@lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int, zeros: int = 6, rolloff: float = 0.99) -> np.ndarray:
    """Hann-windowed sinc polyphase bank, shape (new, 2 * width + orig); same design as
    ``torchaudio.functional.resample`` (``sinc_interp_hann``), so outputs match it to ~1e-6."""
    base = min(orig, new) * rolloff
    width = int(np.ceil(zeros * orig / base))
    idx = np.arange(-width, width + orig, dtype=np.float64)[None, :] / orig
    t = (np.arange(0, -new, -1, dtype=np.float64)[:, None] / new + idx) * base
    t = np.clip(t, -zeros, zeros)
    window = np.cos(t * np.pi / zeros / 2) ** 2
    t *= np.pi
    safe = np.where(t == 0, 1.0, t)
    kernel = np.where(t == 0, 1.0, np.sin(safe) / safe) * window * (base / orig)
    return kernel.astype(np.float32)


def resample(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Band-limited resampling of a float32 mono signal from ``orig`` Hz to ``new`` Hz.

    Plain numpy (a strided view times the polyphase bank): torch's conv1d rebuilds its
    kernels for every new input length, which made it 5x slower on utterances.
    """
    if orig == new or x.size == 0:
        return x.astype(np.float32, copy=False)
    g = gcd(orig, new)
    orig, new = orig // g, new // g
    if max(orig, new) > 2000:
        raise ValueError(
            f"resampling {orig * g} Hz -> {new * g} Hz needs a {orig}:{new} filter bank; "
            "use sample rates with a larger common divisor (e.g. multiples of 50 Hz)."
        )
    kernel = _sinc_kernel(orig, new)
    width = (kernel.shape[1] - orig) // 2
    padded = np.pad(x.astype(np.float32, copy=False), (width, width + orig))
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1])[::orig]
    y = (frames @ kernel.T).reshape(-1)
    return np.ascontiguousarray(y[: int(np.ceil(new * x.size / orig))], dtype=np.float32)


def speed_perturb(x: np.ndarray, sample_rate: int, speed: float) -> np.ndarray:
    """Kaldi/sox-style speed change: duration / ``speed``, pitch * ``speed``."""
    if speed == 1.0:
        return x
    return resample(x, int(round(sample_rate * speed)), sample_rate)


def trim_silence(
    x: np.ndarray,
    sample_rate: int,
    keep_s: float = 0.15,
    threshold_db: float = -40.0,
    frame_s: float = 0.01,
) -> np.ndarray:
    """Cut leading/trailing audio quieter than ``threshold_db`` below the peak frame,
    keeping ``keep_s`` seconds of margin on each side."""
    frame = max(1, int(sample_rate * frame_s))
    n = x.size // frame
    if n == 0:
        return x
    energy = (x[: n * frame].reshape(n, frame).astype(np.float64) ** 2).mean(axis=1)
    peak = energy.max()
    if peak <= 0:
        return x
    active = np.nonzero(energy > peak * 10 ** (threshold_db / 10))[0]
    keep = int(keep_s * sample_rate)
    start = max(0, active[0] * frame - keep)
    end = min(x.size, (active[-1] + 1) * frame + keep)
    return x[start:end]


def set_peak(x: np.ndarray, peak_db: float) -> np.ndarray:
    """Scale so that max |x| is ``peak_db`` dBFS."""
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak == 0.0:
        return x
    return (x * (10 ** (peak_db / 20) / peak)).astype(np.float32)


def _coloured_noise(rng: np.random.Generator, n: int, colour: str) -> np.ndarray:
    white = rng.standard_normal(n)
    if colour == "white":
        return white
    if colour != "pink":
        raise ValueError(f"noise colour {colour!r} is not one of 'white', 'pink'")
    size = 1 << max(0, n - 1).bit_length()  # power-of-two FFT: fast for any n
    spectrum = np.fft.rfft(white, size)
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), size)[:n]  # 1/f power
    return pink / (pink.std() + 1e-12)


def add_noise(
    x: np.ndarray, rng: np.random.Generator, snr_db: float, colour: str = "white"
) -> np.ndarray:
    """Add white or pink noise at ``snr_db`` relative to the mean power of ``x``."""
    power = float(np.mean(x.astype(np.float64) ** 2)) if x.size else 0.0
    if power == 0.0:
        return x
    noise = _coloured_noise(rng, x.size, colour)
    noise *= np.sqrt(power / 10 ** (snr_db / 10)) / (noise.std() + 1e-12)
    return (x + noise).astype(np.float32)


def add_noise_floor(x: np.ndarray, rng: np.random.Generator, level_db: float) -> np.ndarray:
    """Add gaussian noise with RMS ``level_db`` dBFS, so no sample run is digitally silent."""
    return (x + rng.standard_normal(x.size) * 10 ** (level_db / 20)).astype(np.float32)
