"""Chunked features equal the frontend on the whole waveform, for any chunking."""

from __future__ import annotations

import random

import pytest
import torch
from espnet_model.frontend import Fbank, StftFrontend
from espnet_model.frontend_stream import FeatureStreamState, StreamingFeatures
from espnet_model.normalize import GlobalMVN, UtteranceMVN

FRONTENDS = {
    "fbank": lambda: Fbank(n_mels=20),
    "stft_centred": lambda: StftFrontend(n_fft=512, win_length=400, hop_length=160, n_mels=20),
    "stft_uncentred": lambda: StftFrontend(n_fft=512, hop_length=128, n_mels=20, center=False),
}


@pytest.mark.parametrize("name", list(FRONTENDS))
def test_any_chunking_gives_the_whole_utterance_features(name: str) -> None:
    frontend = FRONTENDS[name]()
    mvn = GlobalMVN(num_features=20)
    with torch.no_grad():
        mvn.mean.normal_()
        mvn.std.uniform_(0.5, 2.0)
    features = StreamingFeatures(frontend, mvn)
    rng = random.Random(0)
    for samples in [0, 1, 100, 255, 256, 257, 399, 400, 401, 513, 1600, 4000, 8123]:
        wave = torch.randn(samples) * 0.1
        if samples:
            ref, lengths = frontend(wave[None], torch.tensor([samples]))
            ref, _ = mvn(ref[:, : lengths[0]], lengths)
            ref = ref[0]
        else:  # no audio at all: no frames
            ref = torch.zeros(0, 20)
        for _ in range(3):
            state, outs, pos = FeatureStreamState(), [], 0
            while True:
                n = rng.choice([0, 1, 7, 160, 333, 1600, 5000])
                final = pos + n >= samples
                outs.append(features.step(state, wave[pos : pos + n], final))
                pos += n
                if final:
                    break
            got = torch.cat(outs)
            assert got.shape == ref.shape, (name, samples)
            torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
            assert state.samples == samples and state.finished


def test_refusals() -> None:
    with pytest.raises(ValueError, match="utterance_mvn"):
        StreamingFeatures(Fbank(n_mels=20), UtteranceMVN())
    features = StreamingFeatures(Fbank(n_mels=20))
    state = FeatureStreamState()
    features.step(state, torch.randn(500), True)
    with pytest.raises(ValueError, match="finished"):
        features.step(state, torch.randn(500), False)
