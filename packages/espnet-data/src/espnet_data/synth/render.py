"""Render a planned utterance to a waveform.

Pipeline: espeak-ng (rate, pitch, seeded) -> float -> resample to ``sample_rate``
-> speed perturbation -> trim leading/trailing silence to 0.1-0.2 s -> random
peak level (-12..-3 dBFS) -> optional white/pink noise at ``utt.snr_db`` -> a
gaussian noise floor at -70..-60 dBFS (exact digital silence hurts recognisers)
-> clip to [-1, 1].  Every random choice comes from ``utt.seed``, so the output
depends on the utterance alone, never on what was rendered before.

Usage::

    from espnet_data.synth import plan_corpus, render, available_voices
    utt = plan_corpus("train", 1, seed=0, voices=available_voices())[0]
    audio = render(utt)          # float32, mono, 16 kHz, in [-1, 1]
"""

from __future__ import annotations

import numpy as np

from . import _effects
from ._espeak import synthesize
from .plan import SynthUtterance
from .voices import check_voice

__all__ = ["render"]

_NOISE_COLOURS = ("white", "pink")


def render(utt: SynthUtterance, sample_rate: int = 16000) -> np.ndarray:
    """Synthesise ``utt``: float32 mono samples in [-1, 1] at ``sample_rate`` Hz."""
    if sample_rate < 8000:
        raise ValueError(f"sample_rate={sample_rate} Hz is too low for speech; use >= 8000")
    check_voice(utt.speaker)
    rng = np.random.default_rng(utt.seed)
    pcm, espeak_rate = synthesize(
        utt.speaker, utt.spoken, rate=utt.rate, pitch=utt.pitch, seed=utt.seed
    )
    if pcm.size == 0:
        raise RuntimeError(
            f"espeak produced no audio for {utt.key} (voice {utt.speaker!r}, "
            f"spoken {utt.spoken!r}); check the spoken text."
        )
    x = pcm.astype(np.float32) / 32768.0
    x = _effects.resample(x, espeak_rate, sample_rate)
    x = _effects.speed_perturb(x, sample_rate, utt.speed)
    x = _effects.trim_silence(x, sample_rate, keep_s=float(rng.uniform(0.1, 0.2)))
    x = _effects.set_peak(x, float(rng.uniform(-12.0, -3.0)))
    colour = _NOISE_COLOURS[int(rng.integers(len(_NOISE_COLOURS)))]
    if utt.snr_db is not None:
        x = _effects.add_noise(x, rng, utt.snr_db, colour)
    x = _effects.add_noise_floor(x, rng, float(rng.uniform(-70.0, -60.0)))
    return np.clip(x, -1.0, 1.0).astype(np.float32)
