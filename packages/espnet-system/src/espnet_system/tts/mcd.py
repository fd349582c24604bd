"""Mel-cepstral distortion (MCD) between synthesised and reference speech, with DTW.

The formula (per utterance, in dB)::

    MCD = (10 / ln 10) * sqrt(2) * mean over the DTW path of sqrt(sum_{d=1..D} (c_d - c'_d)^2)

where ``c`` and ``c'`` are the mel-cepstra of one frame of each signal (``D`` =
``coefficients``, 24 by default; ``c0``, the frame energy, is left out, as is usual),
and the path is the dynamic-time-warping alignment of the two frame sequences that
minimises the summed Euclidean distance (steps (1,0), (0,1), (1,1)); the mean is over
the path's frame pairs. The two signals are compared at one sample rate (the
reference is resampled to the synthesised audio's rate).

The mel-cepstrum here is the DCT-II (orthonormal) of the natural-log *amplitude* mel
spectrum (``0.5 * ln`` of a 40-band mel power spectrum; 25 ms Hann windows, 10 ms
hop), so its units match SPTK's mel-cepstrum (log amplitude) and the usual constant
applies. It is a filterbank cepstrum, not SPTK's all-pass-warped ``mcep``: values are
comparable between runs of this toolkit, and of the same order as (not equal to) the
MCDs papers report with SPTK/WORLD analysis.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio

__all__ = ["dtw_mean_distance", "mcd", "mel_cepstrum"]

_K = 10.0 / math.log(10.0) * math.sqrt(2.0)


def mel_cepstrum(wav: np.ndarray, sample_rate: int, coefficients: int = 24, n_mels: int = 40) -> np.ndarray:
    """``(frames, coefficients)`` mel-cepstra ``c1..cD`` of a waveform (module docstring)."""
    if coefficients >= n_mels:
        raise ValueError(f"coefficients={coefficients} must be < n_mels={n_mels}")
    win = int(round(0.025 * sample_rate))
    hop = int(round(0.010 * sample_rate))
    n_fft = 1 << (win - 1).bit_length()
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=n_mels,
        power=2.0, center=False, f_min=0.0, f_max=sample_rate / 2,
    )
    x = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    if x.numel() < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.numel()))
    power = mel(x).T  # (frames, n_mels)
    log_amp = 0.5 * torch.log(power.clamp_min(1e-10))
    dct = torchaudio.functional.create_dct(n_mels, n_mels, norm="ortho")  # (n_mels, n_mfcc)
    cep = log_amp @ dct
    return cep[:, 1 : coefficients + 1].double().numpy()


def dtw_mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean frame distance along the DTW path of ``a`` ``(N, D)`` and ``b``
    ``(M, D)`` (steps (1,0), (0,1), (1,1)); computed one anti-diagonal at a time."""
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        raise ValueError("DTW needs at least one frame on each side")
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    total = np.full((n + 1, m + 1), np.inf)
    steps = np.zeros((n + 1, m + 1))
    total[0, 0] = 0.0
    for k in range(2, n + m + 1):
        i = np.arange(max(1, k - m), min(n, k - 1) + 1)
        j = k - i
        options = np.stack([total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]])
        lengths = np.stack([steps[i - 1, j - 1], steps[i - 1, j], steps[i, j - 1]])
        best = options.argmin(0)
        pick = np.arange(len(i))
        total[i, j] = cost[i - 1, j - 1] + options[best, pick]
        steps[i, j] = lengths[best, pick] + 1
    return float(total[n, m] / steps[n, m])


def mcd(synth: np.ndarray, reference: np.ndarray, sample_rate: int, coefficients: int = 24) -> float:
    """MCD in dB between two waveforms at ``sample_rate`` (module docstring)."""
    return _K * dtw_mean_distance(mel_cepstrum(synth, sample_rate, coefficients),
                                  mel_cepstrum(reference, sample_rate, coefficients))
