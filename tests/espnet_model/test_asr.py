from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from espnet_model import (
    ASRModel,
    ConformerEncoder,
    Fbank,
    SpecAug,
    TransformerDecoder,
    count_parameters,
)
from espnet_model.asr import add_sos_eos, label_smoothing_loss
from espnet_model.normalize import UtteranceMVN

VOCAB = 10


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run faster single-threaded, especially on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(ctc_weight: float = 0.3) -> ASRModel:
    encoder = ConformerEncoder(
        20,
        output_size=32,
        attention_heads=2,
        linear_units=64,
        num_blocks=2,
        cnn_module_kernel=5,
        dropout_rate=0.0,
        positional_dropout_rate=0.0,
    )
    decoder = (
        TransformerDecoder(
            VOCAB,
            32,
            attention_heads=2,
            linear_units=64,
            num_blocks=1,
            dropout_rate=0.0,
            positional_dropout_rate=0.0,
        )
        if ctc_weight < 1.0
        else None
    )
    return ASRModel(
        VOCAB,
        Fbank(n_mels=20),
        encoder,
        decoder,
        specaug=SpecAug(),
        normalize=UtteranceMVN(),
        ctc_weight=ctc_weight,
    )


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    speech = torch.randn(2, 8000)
    text = torch.tensor([[2, 3, 4, 5], [6, 7, -1, -1]])
    return speech, torch.tensor([8000, 6000]), text, torch.tensor([4, 2])


def test_forward_backward_and_stats() -> None:
    model = _model().train()
    assert (model.blank_id, model.sos_eos_id, model.ignore_id) == (0, VOCAB - 1, -1)
    loss, stats, weight = model(*_batch())
    assert torch.isfinite(loss) and weight == 2
    assert set(stats) == {"loss", "loss_ctc", "loss_att", "acc"}
    assert all(not v.requires_grad for v in stats.values())
    loss.backward()
    assert count_parameters(model) > 0


def test_ctc_only_needs_no_decoder() -> None:
    model = _model(ctc_weight=1.0)
    assert model.decoder is None
    loss, stats, _ = model(*_batch())
    assert set(stats) == {"loss", "loss_ctc"} and torch.isfinite(loss)
    with pytest.raises(ValueError, match="ctc_weight"):
        ASRModel(VOCAB, Fbank(), model.encoder, None, ctc_weight=0.5)


def test_encode_and_collect_feats() -> None:
    model = _model().eval()
    speech, lengths, _, _ = _batch()
    feats, flens = model.collect_feats(speech, lengths)
    assert feats.shape == (2, 48, 20) and flens.tolist() == [48, 36]
    enc, elens = model.encode(speech, lengths)
    assert enc.shape == (2, 11, 32) and elens.tolist() == [11, 8]


def test_features_stay_float32_under_bf16_autocast() -> None:
    """As ESPnet2's ``autocast_frontend: false``: bf16-mixed training keeps fp32 features."""
    model = _model().eval()
    speech, lengths, _, _ = _batch()
    ref, ref_lengths = model.features(speech, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats, flens = model.features(speech, lengths)
        enc, _ = model.encode(speech, lengths)
    assert feats.dtype == torch.float32 and torch.equal(feats, ref) and torch.equal(flens, ref_lengths)
    assert torch.isfinite(enc.float()).all()


def test_add_sos_eos() -> None:
    ys_in, ys_out = add_sos_eos(torch.tensor([[2, 3], [4, -1]]), torch.tensor([2, 1]), 9, -1)
    assert ys_in.tolist() == [[9, 2, 3], [9, 4, 9]]
    assert ys_out.tolist() == [[2, 3, 9], [4, 9, -1]]


def test_label_smoothing_matches_kl_definition() -> None:
    logits = torch.randn(2, 3, 5)
    target = torch.tensor([[1, 2, -1], [0, 4, 3]])
    smoothing = 0.1
    got = label_smoothing_loss(logits, target, smoothing, -1, normalize_length=False)
    true = torch.full((2, 3, 5), smoothing / 4)
    true.scatter_(-1, target.clamp(min=0).unsqueeze(-1), 1 - smoothing)
    kl = torch.nn.functional.kl_div(logits.log_softmax(-1), true, reduction="none").sum(-1)
    ref = kl.masked_fill(target == -1, 0).sum() / 2
    torch.testing.assert_close(got, ref)


def test_tiny_model_overfits_two_utterances() -> None:
    torch.manual_seed(0)
    model = _model(ctc_weight=0.5)
    model.specaug = None
    model.train()
    batch = _batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss, _, _ = model(*batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses


def test_checkpoints_with_the_old_parameter_names_still_load() -> None:
    """Keys written before the ESPnet2 names (feed_forward.0/3, decoder.embed, Linear pointwise)."""
    from espnet_model import build_asr_model

    config = {
        "encoder": "e_branchformer",
        "encoder_conf": {"output_size": 16, "attention_heads": 2, "linear_units": 32,
                         "cgmlp_linear_units": 32, "num_blocks": 1},
        "decoder": "transformer",
        "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
        "frontend_conf": {"n_mels": 20},
    }  # fmt: skip
    for encoder in ("e_branchformer", "conformer"):
        config["encoder"] = encoder
        if encoder == "conformer":
            config["encoder_conf"] = {"output_size": 16, "attention_heads": 2,
                                      "linear_units": 32, "num_blocks": 1, "cnn_module_kernel": 5}  # fmt: skip
        source = build_asr_model(config, vocab_size=VOCAB)
        old = {}
        for key, value in source.state_dict().items():
            key = key.replace(".w_1.", ".0.").replace(".w_2.", ".3.").replace(".csgu.", ".")
            key = key.replace("decoder.embed.0.weight", "decoder.embed.weight")
            old[key] = value.squeeze(-1) if ".pointwise_conv" in key else value
        assert "decoder.embed.weight" in old
        target = build_asr_model(config, vocab_size=VOCAB)
        target.load_state_dict(old, strict=True)
        for key, value in source.state_dict().items():
            assert torch.equal(target.state_dict()[key], value), key
