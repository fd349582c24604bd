"""espnet_system.tts.mcd: the DTW and the mel-cepstral distortion."""

from __future__ import annotations

import numpy as np
import pytest
from espnet_system.tts.mcd import dtw_mean_distance, mcd, mel_cepstrum


def test_dtw_aligns_a_stretched_sequence_at_zero_cost() -> None:
    a = np.array([[0.0], [1.0], [2.0], [3.0]])
    b = np.array([[0.0], [0.0], [1.0], [2.0], [2.0], [3.0]])  # a with frames repeated
    assert dtw_mean_distance(a, b) == pytest.approx(0.0)
    assert dtw_mean_distance(np.zeros((3, 2)), np.full((4, 2), 3.0)) == pytest.approx(np.sqrt(18))
    assert dtw_mean_distance(a, a + 1.0) == pytest.approx(0.4)  # 1<->0, 2<->1, 3<->2, 3<->3 ...: 2 of 5 pairs
    with pytest.raises(ValueError, match="at least one frame"):
        dtw_mean_distance(a, np.zeros((0, 1)))


def test_mcd_is_zero_for_the_same_audio_and_grows_with_noise() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    speechlike = (np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32) * 0.3
    assert mcd(speechlike, speechlike, 16000) == pytest.approx(0.0, abs=1e-6)
    small = mcd(speechlike + 0.001 * rng.standard_normal(16000).astype(np.float32), speechlike, 16000)
    large = mcd(speechlike + 0.1 * rng.standard_normal(16000).astype(np.float32), speechlike, 16000)
    assert 0 < small < large
    assert mel_cepstrum(speechlike, 16000).shape == (97, 24)  # (16000 - 512) // 160 + 1 frames, c1..c24
