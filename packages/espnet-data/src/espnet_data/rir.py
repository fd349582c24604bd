"""Room impulse responses: simulated ones and convolution that keeps the utterance's timing.

``simulate_rir`` draws Polack's statistical model of a room: the direct path, then
after a short gap a diffuse tail of Gaussian noise whose level falls by 60 dB over the
reverberation time ``rt60``; ``drr_db`` sets the direct-to-reverberant energy ratio.
No room geometry and no files are needed, so every training utterance can get a room
of its own (Kaldi's and ESPnet's recipes convolve with measured or image-method RIRs
listed in ``rir_scp``; :class:`espnet_data.augment.AddReverb` takes those too)::

    rng = np.random.default_rng(0)
    rir = simulate_rir(rng, 16000, rt60=0.6, drr_db=3.0)   # float32, starts at its peak
    wet = reverberate(audio, rir)                          # same length and power as audio
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["reverberate", "simulate_rir"]

_ONSET_S = (0.001, 0.010)  # gap between the direct path and the first reflections


def simulate_rir(
    rng: np.random.Generator, sample_rate: int, *, rt60: float, drr_db: float
) -> np.ndarray:
    """One impulse response (float32, ``rt60`` seconds long, direct path at sample 0).

    Args:
        rng: source of the tail's noise and of its onset.
        sample_rate: of the audio it will be convolved with.
        rt60: seconds for the tail's level to fall by 60 dB (0.05-3).
        drr_db: direct-path energy over tail energy, in dB (low: far from the talker).
    """
    if not 0.05 <= rt60 <= 3.0:
        raise ValueError(f"rt60={rt60} s must be in [0.05, 3] (rooms: ~0.2 to ~1.5 s)")
    if not math.isfinite(drr_db):
        raise ValueError(f"drr_db={drr_db} must be a finite number of dB")
    length = max(2, round(rt60 * sample_rate))
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * 10.0 ** (-3.0 * t / rt60)  # -60 dB at rt60
    onset = max(1, round(rng.uniform(*_ONSET_S) * sample_rate))
    tail[:onset] = 0.0
    energy = float(np.sum(tail**2))
    if energy > 0.0:
        tail *= math.sqrt(10.0 ** (-drr_db / 10.0) / energy)
    tail[0] = 1.0  # the direct path, energy 1
    return tail.astype(np.float32)


def reverberate(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``audio`` convolved with ``rir``, cut to the input's length and power.

    As ESPnet2's preprocessor: the RIR is scaled to a peak of 1, the reverberant
    signal keeps the first ``len(audio)`` samples and is rescaled to the input's mean
    power. Unlike it, the output starts at the RIR's peak (the direct path of a
    measured RIR usually comes after some silence), so words keep their times.
    """
    audio = np.asarray(audio, dtype=np.float32)
    rir = np.asarray(rir, dtype=np.float64).reshape(-1)
    if audio.ndim != 1:
        raise ValueError(f"reverberate takes mono audio (1-D), got shape {audio.shape}")
    if rir.size == 0 or not np.all(np.isfinite(rir)) or not np.any(rir):
        raise ValueError("the impulse response is empty, silent or holds NaN/Inf")
    if audio.size == 0:
        return audio
    peak = int(np.argmax(np.abs(rir)))
    rir = rir[peak:] / abs(rir[peak])
    n = audio.size + rir.size - 1
    size = 1 << (n - 1).bit_length()
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(rir, size), size)[: audio.size]
    power = float(np.mean(audio.astype(np.float64) ** 2))
    wet_power = float(np.mean(wet**2))
    if wet_power > 0.0:
        wet *= math.sqrt(power / wet_power)
    return wet.astype(np.float32)
