from __future__ import annotations

import pytest
import torch
from espnet_model.frontend import Fbank


def test_shapes_and_lengths() -> None:
    fb = Fbank(n_mels=40)
    speech = torch.randn(3, 16000)
    lengths = torch.tensor([16000, 8000, 100])
    feats, flens = fb(speech, lengths)
    assert fb.output_size == 40
    assert feats.shape == (3, 1 + (16000 - 400) // 160, 40)
    assert flens.tolist() == [98, 48, 1]
    assert (feats[1, 48:] == 0).all()
    assert torch.isfinite(feats).all()


def test_padding_invariance() -> None:
    fb = Fbank()
    short = torch.randn(1, 5000)
    alone, n_alone = fb(short, torch.tensor([5000]))
    batch = torch.cat([short, torch.zeros(1, 5000)], dim=1).repeat(2, 1)
    batch[1] = torch.randn(10000)
    together, n_together = fb(batch, torch.tensor([5000, 10000]))
    assert n_together[0] == n_alone[0]
    torch.testing.assert_close(together[0, : n_alone[0]], alone[0])


def test_stft_frontend_alone_equals_batched() -> None:
    from espnet_model import StftFrontend

    # alone, an utterance is reflect-padded by F.pad; in a batch, at its own end by gather
    frontend = StftFrontend(n_fft=256, hop_length=80, n_mels=20)
    speech = torch.randn(2, 4000)
    speech[1, 2500:] = 0.0
    lengths = torch.tensor([4000, 2500])
    together, n_together = frontend(speech, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone, n_alone = frontend(speech[i : i + 1, :n], lengths[i : i + 1])
        assert n_alone[0] == n_together[i]
        torch.testing.assert_close(together[i, : n_alone[0]], alone[0])
        assert not together[i, n_alone[0] :].any()


def test_short_input_is_padded_to_one_window() -> None:
    feats, flens = Fbank()(torch.randn(2, 50), torch.tensor([50, 20]))
    assert feats.shape[1] == 1 and flens.tolist() == [1, 1]


def test_bad_arguments_name_the_key() -> None:
    with pytest.raises(ValueError, match="win_length"):
        Fbank(n_fft=256, win_length=400)
    with pytest.raises(ValueError, match="fmax"):
        Fbank(fmax=10000.0)
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        Fbank()(torch.randn(2, 1, 800), torch.tensor([800, 800]))


def test_stft_frontend_uncentred_lengths_and_bad_options() -> None:
    from espnet_model import StftFrontend

    frontend = StftFrontend(fs="8k", n_fft=256, hop_length=80, center=False, n_mels=10)
    feats, lengths = frontend(torch.randn(2, 800), torch.tensor([800, 500]))
    assert lengths.tolist() == [(800 - 256) // 80 + 1, (500 - 256) // 80 + 1]
    assert feats.shape == (2, lengths[0], 10) and frontend.fs == 8000
    assert feats[1, lengths[1] :].abs().sum() == 0
    with pytest.raises(ValueError, match="window='kaiser'"):
        StftFrontend(window="kaiser")
    with pytest.raises(ValueError, match="normalized=True"):
        StftFrontend(normalized=True)
    with pytest.raises(ValueError, match="win_length=600 exceeds n_fft=512"):
        StftFrontend(win_length=600)
