"""Contextual block conformer: ESPnet2 parity (committed fixture and live peer) and the
block arithmetic.

The fixture ``tests/data/espnet2_tiny/contextual_block_conformer`` was written by ESPnet2
(``make_espnet2_fixture.py --encoders contextual_block_conformer`` in the peer venv): a
tiny experiment with blocks of 6 frames every 2 (look-ahead 2), so its 12 encoder frames
make 5 blocks. Besides the offline outputs it holds ESPnet2's streaming encoder
(``forward_infer``) on the first utterance, at once and fed 9 feature frames at a time.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import torch
from espnet_model import build_asr_model
from espnet_model.encoders import ContextualBlockConformerEncoder
from espnet_model.espnet2 import load_espnet2, translate_espnet2_config

from tests.espnet_model.test_espnet2 import PEER, SCRIPT, check_outputs

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "data" / "espnet2_tiny" / "contextual_block_conformer"
ATOL = 1e-5


def tiny_encoder(**kwargs: object) -> ContextualBlockConformerEncoder:
    """A random encoder in eval mode with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    conf: dict[str, object] = {
        "output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 2,
        "macaron_style": True, "cnn_module_kernel": 5, "block_size": 8, "hop_size": 3,
        "look_ahead": 2, **kwargs,
    }  # fmt: skip
    encoder = ContextualBlockConformerEncoder(20, **conf)  # type: ignore[arg-type]
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(0.0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return encoder.eval()


def test_fixture_offline_outputs_match_espnet2() -> None:
    check_outputs(FIXTURE)


def test_fixture_matches_espnet2_streaming_encoder() -> None:
    """Our whole-utterance forward equals ESPnet2's ``forward_infer`` at once and chunked."""
    model = load_espnet2(FIXTURE).model
    exp = torch.load(FIXTURE / "expected.pt")
    feats = exp["stream_feats"]
    with torch.no_grad():
        ours, lengths = model.encoder(feats, torch.tensor([feats.size(1)]))
    assert lengths.tolist() == [exp["enc_infer"].size(1)] == [exp["enc_stream"].size(1)]
    torch.testing.assert_close(ours, exp["enc_infer"], atol=ATOL, rtol=0)
    torch.testing.assert_close(ours, exp["enc_stream"], atol=ATOL, rtol=0)


def test_state_dict_keys_match_espnet2() -> None:
    espnet2_state = torch.load(FIXTURE / "valid.acc.ave.pth", weights_only=True)
    ours = load_espnet2(FIXTURE).model.state_dict()
    assert sorted(ours) == sorted(espnet2_state)
    assert "encoder.encoders.0.norm_ff_macaron.weight" in ours
    assert "encoder.embed.out.weight" in ours


def test_translation_fills_espnet2_defaults_and_builds() -> None:
    cfg = translate_espnet2_config({"encoder": "contextual_block_conformer"})
    enc = cfg["encoder_conf"]
    assert (enc["block_size"], enc["hop_size"], enc["look_ahead"]) == (40, 16, 16)
    assert enc["init_average"] is True and enc["ctx_pos_enc"] is True
    assert enc["macaron_style"] is False and enc["linear_units"] == 2048
    cfg["decoder"] = None
    cfg["model_conf"]["ctc_weight"] = 1.0
    model = build_asr_model(cfg, vocab_size=5)
    assert isinstance(model.encoder, ContextualBlockConformerEncoder)


@pytest.mark.parametrize("frames", [7, 30, 35, 40, 41, 42, 43, 44, 90])
def test_batch_equals_each_utterance_alone(frames: int) -> None:
    """Each utterance is cut into blocks at its own length (batch invariance)."""
    encoder = tiny_encoder()
    xs = torch.randn(2, 90, 20)
    with torch.no_grad():
        out, lengths = encoder(xs, torch.tensor([90, frames]))
        alone, alone_len = encoder(xs[1:, :frames], torch.tensor([frames]))
    assert lengths[1] == alone_len[0]
    torch.testing.assert_close(out[1, : lengths[1]], alone[0], atol=1e-5, rtol=0)
    assert out[1, lengths[1] :].abs().sum() == 0


def test_only_the_look_ahead_is_seen() -> None:
    """Changing frames after ``t`` leaves outputs long enough before ``t`` unchanged."""
    encoder = tiny_encoder()
    x = torch.randn(1, 120, 20)
    y = x.clone()
    y[:, 80:] += 1.0  # subsampled frame 19 and later differ
    with torch.no_grad():
        a, _ = encoder(x, torch.tensor([120]))
        b, _ = encoder(y, torch.tensor([120]))
    # output frame 14 is emitted by block 3 (frames 9..16, emitting 12..14): unchanged
    torch.testing.assert_close(a[:, :15], b[:, :15], atol=1e-6, rtol=0)
    assert not torch.allclose(a[:, 20:], b[:, 20:])


def test_gradients_flow_in_training() -> None:
    encoder = tiny_encoder().train()
    x = torch.randn(2, 60, 20, requires_grad=True)
    out, lengths = encoder(x, torch.tensor([60, 45]))
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)


def test_max_context_and_no_ctx_pos_enc() -> None:
    for kwargs in ({"init_average": False}, {"ctx_pos_enc": False}):
        encoder = tiny_encoder(**kwargs)
        with torch.no_grad():
            out, _ = encoder(torch.randn(1, 80, 20), torch.tensor([80]))
        assert torch.isfinite(out).all()


def test_block_size_zero_is_one_segment_and_bad_sizes_raise() -> None:
    encoder = tiny_encoder(block_size=0)
    with torch.no_grad():
        out, lengths = encoder(torch.randn(1, 80, 20), torch.tensor([80]))
    assert out.shape[1] == lengths[0] == 19
    with pytest.raises(ValueError, match="hop_size=6 \\+ look_ahead=4 exceeds block_size=8"):
        tiny_encoder(hop_size=6, look_ahead=4)


peer = pytest.mark.skipif(not PEER.exists(), reason="ESPnet2 peer venv benchmarks/.peer absent")


@peer
@pytest.mark.slow
def test_peer_regenerates_the_fixture(tmp_path: Path) -> None:
    """ESPnet2 writes the same checkpoint and config today, and we match its outputs."""
    out = subprocess.run(
        [str(PEER), str(SCRIPT), str(tmp_path), "--encoders", "contextual_block_conformer"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    folder = tmp_path / "contextual_block_conformer"
    check_outputs(folder)
    for file in ("valid.acc.ave.pth", "config.yaml"):
        assert (folder / file).read_bytes() == (FIXTURE / file).read_bytes(), (
            f"regenerate tests/data/espnet2_tiny/contextual_block_conformer ({file} differs)"
        )


def test_with_blocks_shares_parameters_and_leaves_the_encoder_alone() -> None:
    encoder = tiny_encoder()
    other = encoder.with_blocks(12, 4, 4)
    assert (other.block_size, other.hop_size, other.look_ahead) == (12, 4, 4)
    assert (encoder.block_size, encoder.block_mask.shape) == (8, (10, 10))
    assert other.block_mask.shape == (14, 14)
    assert (
        other.encoders[0].self_attn.linear_q.weight is encoder.encoders[0].self_attn.linear_q.weight
    )
    x = torch.randn(1, 90, 20)
    with torch.no_grad():
        a, _ = encoder(x, torch.tensor([90]))
        b, _ = other(x, torch.tensor([90]))
        c, _ = tiny_encoder(block_size=12, hop_size=4, look_ahead=4)(x, torch.tensor([90]))
    assert not torch.allclose(a, b)
    torch.testing.assert_close(b, c)  # the same as a model built with those blocks


def test_dynamic_blocks_draw_a_shape_per_training_batch() -> None:
    shapes = [[6, 2, 2], [12, 4, 4], [20, 8, 8]]
    encoder = tiny_encoder(dynamic_blocks=shapes).train()
    x = torch.randn(1, 90, 20)
    for module in encoder.modules():  # no dropout: compare outputs exactly
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    torch.manual_seed(3)
    drawn = set()
    with torch.no_grad():
        for _ in range(12):
            state = torch.random.get_rng_state()
            pick = int(torch.randint(3, ()))
            drawn.add(pick)
            torch.random.set_rng_state(state)
            out, _ = encoder(x, torch.tensor([90]))
            ref, _ = encoder.with_blocks(*shapes[pick]).train()(x, torch.tensor([90]))
            torch.testing.assert_close(out, ref)
    assert drawn == {0, 1, 2}
    encoder.eval()  # evaluation uses the configured block shape
    plain = copy.deepcopy(encoder)
    plain.dynamic_blocks = []
    with torch.no_grad():
        out, _ = encoder(x, torch.tensor([90]))
        ref, _ = plain(x, torch.tensor([90]))
    torch.testing.assert_close(out, ref)
    with pytest.raises(ValueError, match="hop_size=8 \\+ look_ahead=8 exceeds block_size=12"):
        tiny_encoder(dynamic_blocks=[[12, 8, 8]])
