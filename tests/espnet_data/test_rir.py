"""Tests for espnet_data.rir: simulated rooms and peak-aligned, power-keeping convolution."""

from __future__ import annotations

import numpy as np
import pytest
from espnet_data.rir import reverberate, simulate_rir


def _schroeder_rt60(rir: np.ndarray, rate: int) -> float:
    """T20 of the tail: the -5 to -25 dB slope of the backward-integrated energy, x3."""
    energy = np.cumsum((rir[1:].astype(np.float64) ** 2)[::-1])[::-1]
    db = 10 * np.log10(energy / energy[0])
    return 3 * (int(np.argmax(db < -25)) - int(np.argmax(db < -5))) / rate


@pytest.mark.parametrize("rt60", [0.25, 0.6, 1.2])
def test_the_tail_decays_by_60_db_over_rt60(rt60) -> None:
    rir = simulate_rir(np.random.default_rng(1), 16000, rt60=rt60, drr_db=0.0)
    assert rir.dtype == np.float32 and len(rir) == round(rt60 * 16000)
    assert rir[0] == 1.0 and np.argmax(np.abs(rir)) == 0
    assert _schroeder_rt60(rir, 16000) == pytest.approx(rt60, rel=0.1)


@pytest.mark.parametrize("drr_db", [-5.0, 0.0, 10.0])
def test_direct_to_reverberant_ratio(drr_db) -> None:
    rir = simulate_rir(np.random.default_rng(2), 16000, rt60=0.5, drr_db=drr_db)
    assert 10 * np.log10(1.0 / np.sum(rir[1:].astype(np.float64) ** 2)) == pytest.approx(drr_db, abs=1e-3)
    assert not np.any(rir[1:16])  # the first reflections come at least 1 ms after the direct path


def test_simulation_is_seeded_and_checked() -> None:
    a = simulate_rir(np.random.default_rng(3), 8000, rt60=0.4, drr_db=3.0)
    np.testing.assert_array_equal(a, simulate_rir(np.random.default_rng(3), 8000, rt60=0.4, drr_db=3.0))
    with pytest.raises(ValueError, match="rt60"):
        simulate_rir(np.random.default_rng(), 16000, rt60=5.0, drr_db=0.0)
    with pytest.raises(ValueError, match="drr_db"):
        simulate_rir(np.random.default_rng(), 16000, rt60=0.5, drr_db=float("nan"))


def test_reverberate_matches_a_direct_convolution() -> None:
    rng = np.random.default_rng(4)
    audio = rng.standard_normal(3000).astype(np.float32)
    rir = np.concatenate([np.zeros(5), [2.0], 0.3 * rng.standard_normal(200)])
    out = reverberate(audio, rir)
    expected = np.convolve(audio, rir[5:] / 2.0)[: len(audio)]
    expected *= np.sqrt(np.mean(audio.astype(np.float64) ** 2) / np.mean(expected**2))
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert reverberate(np.zeros(0, dtype=np.float32), rir).size == 0


def test_reverberate_refuses_bad_responses() -> None:
    audio = np.ones(100, dtype=np.float32)
    for bad in (np.zeros(10), np.array([]), np.array([1.0, np.nan])):
        with pytest.raises(ValueError, match="impulse response"):
            reverberate(audio, bad)
    with pytest.raises(ValueError, match="mono"):
        reverberate(np.ones((2, 100), dtype=np.float32), np.array([1.0]))
