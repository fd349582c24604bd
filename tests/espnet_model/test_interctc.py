"""Intermediate and self-conditioned CTC: taps, loss, conditioning, errors, inference.

Parity with ESPnet2 itself (outputs, losses, parameter names) is in test_espnet2.py
(the committed ``conformer_interctc`` fixture and the peer tests of every encoder).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from espnet_model import ASRModel, build_asr_model
from espnet_model.encoders import (
    ConformerEncoder,
    ContextualBlockConformerEncoder,
    EBranchformerEncoder,
    TransformerEncoder,
)
from espnet_model.encoders.interctc import interctc_layers
from espnet_model.packed import PackedFrames
from torch import nn

VOCAB = 10
SMALL: dict[str, Any] = dict(
    output_size=16, attention_heads=2, linear_units=32, num_blocks=3, dropout_rate=0.0,
    positional_dropout_rate=0.0,
)  # fmt: skip
EXTRA: dict[str, dict[str, Any]] = {
    "conformer": {"cnn_module_kernel": 5},
    "transformer": {},
    "e_branchformer": {"cgmlp_linear_units": 32, "cgmlp_conv_kernel": 5},
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(
    encoder: str = "conformer",
    *,
    taps: list[int] | None = None,
    conditioning: bool = True,
    interctc_weight: float = 0.4,
    ctc_weight: float = 0.3,
) -> ASRModel:
    conf = {**SMALL, **EXTRA[encoder], "interctc_use_conditioning": conditioning,
            "interctc_layer_idx": [1, 2] if taps is None else taps}  # fmt: skip
    model = build_asr_model(
        {
            "frontend_conf": {"n_mels": 20},
            "encoder": encoder,
            "encoder_conf": conf,
            "decoder": "transformer",
            "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1,
                             "dropout_rate": 0.0, "positional_dropout_rate": 0.0},
            "model_conf": {"ctc_weight": ctc_weight, "interctc_weight": interctc_weight},
        },
        vocab_size=VOCAB,
    )  # fmt: skip
    assert isinstance(model, ASRModel)
    return model


def _batch() -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    speech = torch.randn(2, 8000)
    text = torch.tensor([[2, 3, 4, 5], [6, 7, -1, -1]])
    return speech, torch.tensor([8000, 3000]), text, torch.tensor([4, 2])


@pytest.mark.parametrize("encoder", list(EXTRA))
def test_loss_is_espnet2s_mix_of_final_and_tap_ctc_losses(encoder: str) -> None:
    torch.manual_seed(0)
    model = _model(encoder).eval()
    speech, lengths, text, text_lengths = _batch()
    with torch.no_grad():
        loss, stats, weight = model(speech, lengths, text, text_lengths)
        feats, feat_lengths = model.features(speech, lengths)
        enc, enc_lengths, taps = model.encoder.forward_with_intermediates(
            feats, feat_lengths, model.ctc
        )
        tap_losses = [model.ctc(h, enc_lengths, text, text_lengths) for _, h in taps]
    assert [block for block, _ in taps] == [1, 2] and weight == 2
    for (block, _), value in zip(taps, tap_losses, strict=True):
        torch.testing.assert_close(stats[f"loss_interctc_layer{block}"], value)
    inter = sum(tap_losses) / 2
    torch.testing.assert_close(stats["loss_interctc"], inter)
    ctc = 0.6 * stats["loss_ctc"] + 0.4 * inter  # loss_ctc stays the final layer's alone
    torch.testing.assert_close(loss, 0.3 * ctc + 0.7 * stats["loss_att"])
    torch.testing.assert_close(enc, model.encode(speech, lengths)[0])


@pytest.mark.parametrize("encoder", list(EXTRA))
def test_gradients_reach_every_parameter_and_names_follow_espnet2(encoder: str) -> None:
    model = _model(encoder).train()
    loss, _, _ = model(*_batch())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    params = dict(model.named_parameters())
    assert params["encoder.conditioning_layer.weight"].shape == (16, VOCAB)
    assert params["encoder.conditioning_layer.bias"].shape == (16,)
    assert params["ctc.ctc_lo.weight"].shape == (VOCAB, 16)  # one CTC, shared by the taps
    assert not any(n.startswith("encoder.") and "ctc_lo" in n for n in params)


@pytest.mark.parametrize("encoder", list(EXTRA))
def test_conditioning_acts_in_inference_and_keeps_padding_invariance(encoder: str) -> None:
    torch.manual_seed(1)
    model = _model(encoder).eval()
    speech, lengths, _, _ = _batch()
    with torch.no_grad():
        batch, batch_lengths = model.encode(speech, lengths)
        alone, _ = model.encode(speech[1:, :3000], lengths[1:])
        n = int(batch_lengths[1])
        torch.testing.assert_close(batch[1, :n], alone[0], atol=1e-5, rtol=1e-4)
        assert model.encoder.conditioning_layer is not None
        model.encoder.conditioning_layer.weight.zero_()
        model.encoder.conditioning_layer.bias.zero_()
        unconditioned, _ = model.encode(speech, lengths)
    assert not torch.allclose(unconditioned, batch)


def test_conformer_ragged_batch_is_packed_with_the_same_taps() -> None:
    """A ragged CPU batch runs packed (espnet_model.packed); taps and output are the same."""
    torch.manual_seed(2)
    model = _model("conformer").eval()
    speech = torch.randn(3, 16000)
    lengths = torch.tensor([16000, 4000, 3000])  # > 20 % padding: packed
    with torch.no_grad():
        feats, feat_lengths = model.features(speech, lengths)
        enc, enc_lengths, taps = model.encoder.forward_with_intermediates(
            feats, feat_lengths, model.ctc
        )
        for i in range(3):
            n_in = int(feat_lengths[i])
            one, one_lengths, one_taps = model.encoder.forward_with_intermediates(
                feats[i : i + 1, :n_in], feat_lengths[i : i + 1], model.ctc
            )
            n = int(one_lengths[0])
            torch.testing.assert_close(enc[i, :n], one[0], atol=1e-5, rtol=1e-4)
            for (block, h), (one_block, one_h) in zip(taps, one_taps, strict=True):
                assert block == one_block
                torch.testing.assert_close(h[i, :n], one_h[0], atol=1e-5, rtol=1e-4)
    assert taps[0][1].shape == enc.shape
    assert PackedFrames.if_ragged(enc_lengths, enc.size(1)) is not None  # it ran packed


def test_taps_without_weight_or_conditioning_change_nothing() -> None:
    torch.manual_seed(3)
    plain = _model(taps=[], conditioning=False, interctc_weight=0.0).eval()
    torch.manual_seed(3)
    tapped = _model(taps=[1], conditioning=False, interctc_weight=0.0).eval()
    assert plain.state_dict().keys() == tapped.state_dict().keys()
    tapped.load_state_dict(plain.state_dict())
    with torch.no_grad():
        want_loss, want_stats, _ = plain(*_batch())
        got_loss, got_stats, _ = tapped(*_batch())
    assert got_stats.keys() == want_stats.keys()  # no loss_interctc without a weight
    torch.testing.assert_close(got_loss, want_loss)


def test_interctc_weight_is_read_at_each_step() -> None:
    """Curricula (espnet_train.anneal) may move ctc_weight / interctc_weight during training."""
    model = _model().eval()
    with torch.no_grad():
        _, stats, _ = model(*_batch())
        model.interctc_weight = 0.0
        loss, zero_stats, _ = model(*_batch())
    assert "loss_interctc" in stats and "loss_interctc" not in zero_stats
    torch.testing.assert_close(loss, 0.3 * zero_stats["loss_ctc"] + 0.7 * zero_stats["loss_att"])


def test_layer_indices_are_checked() -> None:
    assert interctc_layers([2, 1, 2], 3) == (1, 2)
    assert interctc_layers(None, 3) == ()
    for bad in ([0], [3], [1, 6]):
        with pytest.raises(ValueError, match=r"encoder_conf.interctc_layer_idx=.* outside 1..2"):
            ConformerEncoder(20, **SMALL, interctc_layer_idx=bad)
    with pytest.raises(ValueError, match="interctc_layer_idx is empty"):
        TransformerEncoder(20, **SMALL, interctc_use_conditioning=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interctc_weight": 1.0}, r"interctc_weight=1.0 must be in \[0, 1\)"),
        ({"interctc_weight": -0.1}, r"interctc_weight=-0.1 must be in \[0, 1\)"),
        ({"taps": [], "conditioning": False}, r"interctc_weight=0.4 .* has no taps"),
        ({"ctc_weight": 0.0}, r"ctc_weight=0.0 removes: set ctc_weight > 0"),
        ({"ctc_weight": 0.0, "interctc_weight": 0.0}, r"ctc_weight=0.0 removes"),
    ],
)
def test_model_errors_name_the_keys(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


def test_contextual_block_conformer_refuses_interctc_keys() -> None:
    block = {"output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 2,
             "cnn_module_kernel": 5, "block_size": 6, "hop_size": 2, "look_ahead": 2}  # fmt: skip
    base = {"frontend_conf": {"n_mels": 20}, "encoder": "contextual_block_conformer",
            "model_conf": {"ctc_weight": 1.0}}  # fmt: skip
    for key, value in (("interctc_layer_idx", [1]), ("interctc_use_conditioning", True)):
        with pytest.raises(ValueError, match=(
            rf"encoder_conf.{key}=.*'contextual_block_conformer' has no intermediate CTC.*"
            r"'conformer', 'transformer', 'e_branchformer'"
        )):
            build_asr_model({**base, "encoder_conf": {**block, key: value}}, vocab_size=VOCAB)
    # neutral values (as ESPnet2 writes them for other encoders) are accepted
    model = build_asr_model(
        {**base, "encoder_conf": {**block, "interctc_layer_idx": []}}, vocab_size=VOCAB
    )
    assert isinstance(model.encoder, ContextualBlockConformerEncoder)
    with pytest.raises(ValueError, match="has no taps"):
        build_asr_model(
            {**base, "encoder_conf": block, "model_conf": {"ctc_weight": 1.0, "interctc_weight": 0.3}},
            vocab_size=VOCAB,
        )


def test_conditioning_without_the_models_ctc_is_a_clear_error() -> None:
    encoder = EBranchformerEncoder(
        20, **SMALL, **EXTRA["e_branchformer"], interctc_layer_idx=[1], interctc_use_conditioning=True
    )
    encoder.conditioning_layer = nn.Linear(VOCAB, 16)
    with pytest.raises(ValueError, match="needs the model's CTC"):
        encoder(torch.randn(1, 40, 20), torch.tensor([40]))
