"""The frozen conformer equals the module in eval mode, batch 1 and ragged batches."""

from __future__ import annotations

import pytest
import torch
from espnet_model import CTC, ConformerEncoder, EBranchformerEncoder, TransformerEncoder
from espnet_model.frozen import FrozenConformerEncoder, freeze_encoder


def _encoder(**overrides: object) -> ConformerEncoder:
    conf: dict = dict(output_size=32, attention_heads=4, linear_units=48, num_blocks=2,
                      cnn_module_kernel=7, input_layer="conv2d6")
    conf.update(overrides)
    encoder = ConformerEncoder(20, **conf).eval()
    for module in encoder.modules():  # BatchNorm statistics that folding must carry over
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(0.0, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0.0, 0.3)
    return encoder


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([90, 57, 11])
    xs = torch.randn(3, 90, 20)
    for i, n in enumerate(lengths.tolist()):
        xs[i, n:] = 0.0
    return xs, lengths


@pytest.mark.parametrize("overrides", [
    {},
    {"activation_type": "relu"},
    {"activation_type": "gelu"},
    {"macaron_style": False},
    {"use_cnn_module": False},
    {"input_layer": "conv2d"},
    {"input_layer": "conv2d8"},
])
def test_frozen_equals_the_module(overrides: dict) -> None:
    torch.manual_seed(0)
    encoder = _encoder(**overrides)
    frozen = freeze_encoder(encoder)
    assert isinstance(frozen, FrozenConformerEncoder)
    assert frozen.output_size() == 32
    xs, lengths = _batch()
    with torch.inference_mode():
        want, want_lengths = encoder(xs, lengths)
        got, got_lengths = frozen(xs, lengths)
        one, one_lengths = frozen(xs[:1], lengths[:1])  # batch 1: no padding at all
    assert torch.equal(got_lengths, want_lengths) and got.shape == want.shape
    for i, n in enumerate(want_lengths.tolist()):
        torch.testing.assert_close(got[i, :n], want[i, :n], atol=1e-5, rtol=1e-5)
        assert not got[i, n:].any()  # padded frames are zeros
    torch.testing.assert_close(one[0], want[0, : int(one_lengths[0])], atol=1e-5, rtol=1e-5)


def test_self_conditioned_conformer_freezes_with_the_models_ctc() -> None:
    """Self-conditioned CTC is part of the encoder's function: the frozen form keeps it."""
    torch.manual_seed(3)
    encoder = _encoder(num_blocks=3, interctc_layer_idx=[1, 2], interctc_use_conditioning=True)
    encoder.conditioning_layer = torch.nn.Linear(12, 32)  # as ASRModel makes it (vocab 12)
    ctc = CTC(12, 32).eval()
    assert freeze_encoder(encoder) is None  # without the CTC there is no frozen form
    frozen = freeze_encoder(encoder, ctc)
    assert isinstance(frozen, FrozenConformerEncoder)
    xs, lengths = _batch()
    with torch.inference_mode():
        want, want_lengths = encoder(xs, lengths, ctc)
        got, _ = frozen(xs, lengths)
        plain = encoder.forward_with_intermediates(xs, lengths, ctc)[0]
    torch.testing.assert_close(plain, want)
    for i, n in enumerate(want_lengths.tolist()):
        torch.testing.assert_close(got[i, :n], want[i, :n], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="freeze_encoder\\(model.encoder, model.ctc\\)"):
        FrozenConformerEncoder(encoder)


def test_position_keys_grow_with_the_longest_utterance() -> None:
    torch.manual_seed(1)
    encoder = _encoder()
    frozen = freeze_encoder(encoder)
    assert frozen is not None
    with torch.inference_mode():
        for frames in (30, 200, 45):  # the cache grows at 200 frames and serves 45 from it
            xs = torch.randn(1, frames, 20)
            lengths = torch.tensor([frames])
            torch.testing.assert_close(
                frozen(xs, lengths)[0], encoder(xs, lengths)[0], atol=1e-5, rtol=1e-5
            )


def test_weights_are_copied_at_freezing() -> None:
    torch.manual_seed(2)
    encoder = _encoder()
    frozen = freeze_encoder(encoder)
    assert frozen is not None
    xs, lengths = _batch()
    with torch.inference_mode():
        before = frozen(xs, lengths)[0]
        for p in encoder.parameters():
            p.add_(1.0)
        torch.testing.assert_close(frozen(xs, lengths)[0], before)


def test_only_float32_cpu_latest_conformers_freeze() -> None:
    assert freeze_encoder(TransformerEncoder(20, output_size=32, linear_units=48, num_blocks=1)) is None
    assert freeze_encoder(EBranchformerEncoder(20, output_size=32, linear_units=48,
                                               cgmlp_linear_units=48, num_blocks=1)) is None
    assert freeze_encoder(_encoder(rel_pos_type="legacy", pos_enc_layer_type="legacy_rel_pos",
                                   selfattention_layer_type="legacy_rel_selfattn")) is None
    assert freeze_encoder(_encoder().double()) is None


def test_too_short_input_names_the_fix() -> None:
    frozen = freeze_encoder(_encoder())
    assert frozen is not None
    with pytest.raises(ValueError, match="needs at least 11"):
        frozen(torch.zeros(1, 8, 20), torch.tensor([8]))
