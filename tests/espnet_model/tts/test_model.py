"""TTSModel: the training contract, duration fixing, a tiny overfit, inference lengths."""

from __future__ import annotations

import pytest
import torch
from espnet_model.tts import TTSModel, build_tts
from espnet_model.tts.model import fix_durations

HOP = 128
TINY = {
    "tts": "fastspeech2",
    "tts_conf": {"adim": 16, "aheads": 2, "elayers": 1, "eunits": 32, "dlayers": 1, "dunits": 32,
                 "postnet_layers": 2, "postnet_chans": 16, "duration_predictor_chans": 16,
                 "positionwise_conv_kernel_size": 3, "use_masking": True, "apply_ff_mask": True,
                 "transformer_enc_dropout_rate": 0.0, "transformer_dec_dropout_rate": 0.0,
                 "postnet_dropout_rate": 0.0, "duration_predictor_dropout_rate": 0.0},
    "feats_extract_conf": {"fs": 16000, "n_fft": 512, "hop_length": HOP, "n_mels": 16, "fmin": 0, "fmax": 8000},
    "normalize": None,
}  # fmt: skip


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    speech_lengths = torch.tensor([6400, 4480])
    speech = torch.randn(2, 6400, generator=g) * 0.1
    speech[1, 4480:] = 0
    text = torch.tensor([[3, 4, 5, 6], [7, 8, 2, 0]])
    frames = speech_lengths // HOP + 1  # 51, 36
    durations = torch.tensor([[10, 15, 12, 14], [12, 12, 12, 0]])
    assert durations.sum(1).tolist() == frames.tolist()
    return {"text": text, "text_lengths": torch.tensor([4, 3]), "speech": speech, "speech_lengths": speech_lengths,
            "durations": durations, "durations_lengths": torch.tensor([4, 3])}  # fmt: skip


def _model(**extra: object) -> TTSModel:
    torch.manual_seed(0)
    return build_tts({**TINY, **extra}, vocab_size=10)


def test_forward_follows_the_training_contract() -> None:
    model = _model()
    loss, stats, weight = model(**_batch())
    assert loss.dim() == 0 and weight == 2
    assert set(stats) == {"loss", "l1_loss", "duration_loss"}  # no pitch / energy: off
    assert all(not v.requires_grad for v in stats.values())
    assert model.sample_rate == 16000 and model.feats_extract_conf["hop_length"] == HOP
    assert model.eos == 9


def test_pitch_and_energy_losses_when_extractors_are_on() -> None:
    model = _model(pitch_extract="yin", energy_extract="energy", tts_conf={**TINY["tts_conf"],
                   "pitch_predictor_chans": 8, "energy_predictor_chans": 8})  # fmt: skip
    _, stats, _ = model(**_batch())
    assert {"pitch_loss", "energy_loss"} <= set(stats)
    collected = model.collect_feats(_batch()["speech"], _batch()["speech_lengths"], _batch()["durations"], torch.tensor([4, 3]))
    assert collected["pitch"].shape == (2, 5, 1) and collected["energy_lengths"].tolist() == [5, 4]


def test_loss_decreases_on_a_tiny_overfit() -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    batch = _batch()
    losses = []
    for _ in range(10):
        loss, _, _ = model(**batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0], losses


def test_durations_off_by_a_few_frames_are_fixed_on_the_last_token() -> None:
    d = torch.tensor([[5, 6, 1, 0], [4, 4, 4, 4]])
    fixed = fix_durations(d, torch.tensor([3, 4]), torch.tensor([11, 17]))
    assert fixed.tolist() == [[5, 6, 0, 0], [4, 4, 4, 5]]
    # a shortfall larger than the last token comes off the ones before it
    assert fix_durations(torch.tensor([[60, 1]]), torch.tensor([2]), torch.tensor([59])).tolist() == [[59, 0]]


def test_a_big_mismatch_is_refused_naming_the_utterance_count() -> None:
    batch = _batch()
    batch["durations"] = batch["durations"] * 2
    with pytest.raises(ValueError, match=r"2 of 2 utterances in this batch .*more than 5% apart.*rerun collect_stats"):
        _model()(**batch)
    batch = _batch()
    batch["durations_lengths"] = torch.tensor([4, 4])
    with pytest.raises(ValueError, match=r"durations_lengths != text_lengths for 1 of 2 utterances"):
        _model()(**batch)


def test_inference_lengths_follow_the_durations() -> None:
    model = _model().eval()
    text = torch.tensor([3, 4, 5])
    out = model.inference(text, durations=torch.tensor([4, 0, 7]))
    assert out["feat_gen"].shape == (11, 16) and out["duration"].tolist() == [4, 0, 7]
    predicted = model.inference(text)
    assert predicted["duration"].shape == (3,) and predicted["feat_gen"].size(0) == int(predicted["duration"].sum()) > 0
    slow = model.inference(text, durations=torch.tensor([4, 0, 7]), alpha=2.0)
    assert slow["feat_gen"].size(0) == 11  # alpha scales predicted durations only


def test_alpha_scales_predicted_durations() -> None:
    model = _model().eval()
    with torch.no_grad():
        model.tts.duration_predictor.linear.bias.fill_(2.0)  # exp(2) - 1 = 6.4 -> 6 frames a token
        model.tts.duration_predictor.linear.weight.zero_()
    text = torch.tensor([3, 4, 5])
    assert model.inference(text)["duration"].tolist() == [6, 6, 6]
    assert model.inference(text, alpha=1.5)["duration"].tolist() == [9, 9, 9]


def test_batched_inference_equals_one_at_a_time() -> None:
    model = _model().eval()
    text = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    lengths = torch.tensor([4, 2])
    durations = torch.tensor([[3, 2, 4, 1], [5, 2, 0, 0]])
    batch = model.inference_batch(text, lengths, durations=durations)
    for i in range(2):
        alone = model.inference(text[i, : lengths[i]], durations=durations[i, : lengths[i]])
        torch.testing.assert_close(batch[i]["feat_gen"], alone["feat_gen"], atol=1e-4, rtol=1e-4)
        assert batch[i]["duration"].tolist() == alone["duration"].tolist()


def test_feat_gen_is_denormalised(tmp_path) -> None:
    import numpy as np

    stats = tmp_path / "feats_stats.npz"
    np.savez(stats, count=np.array(10), sum=np.full(16, -30.0), sum_square=np.full(16, 90.0 + 40.0))
    model = _model(normalize="global_mvn", normalize_conf={"stats_file": str(stats)}).eval()
    assert model.normalize is not None and model.normalize.mean[0] == -3.0 and model.normalize.std[0] == 2.0
    out = model.inference(torch.tensor([3, 4]), durations=torch.tensor([2, 2]))
    raw, _ = model.tts.inference(torch.tensor([[3, 4, 9]]), torch.tensor([3]), torch.tensor([[2, 2, 0]]))
    torch.testing.assert_close(out["feat_gen"], raw[0] * 2.0 - 3.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.inference(torch.tensor([], dtype=torch.long)), "cannot synthesise empty text"),
        (lambda m: m.inference(torch.tensor([[3]])), "text must be a 1-D tensor"),
        (lambda m: m.inference(torch.tensor([3, 12])), r"token ids must be in \[0, 10\)"),
        (lambda m: m.inference(torch.tensor([3]), alpha=0.0), "alpha=0.0 must be > 0"),
    ],
)
def test_bad_inference_input(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(_model().eval())
