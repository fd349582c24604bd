"""TransformerLM: ESPnet2's names, cached scoring equal to the full forward."""

from __future__ import annotations

import pytest
import torch
from espnet_model.lm import LMState, TransformerLM

V = 11
SOS = V - 1


def tiny(pos_enc: str | None = None, **kwargs: object) -> TransformerLM:
    torch.manual_seed(0)
    conf = {"embed_unit": 8, "att_unit": 16, "head": 4, "unit": 24, "layer": 3, **kwargs}
    lm = TransformerLM(V, pos_enc=pos_enc, **conf).eval()  # type: ignore[arg-type]
    with torch.no_grad():  # LayerNorms off their identity initialisation
        for p in lm.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return lm


def prefixes(n: int = 5, length: int = 7) -> torch.Tensor:
    torch.manual_seed(1)
    ys = torch.randint(1, V - 1, (n, length))
    ys[:, 0] = SOS
    ys[1, 3] = 0  # a key ESPnet2 masks (padding id)
    return ys


def test_state_dict_names_are_espnet2s() -> None:
    names = set(tiny("sinusoidal").state_dict())
    assert {
        "embed.weight", "encoder.embed.0.weight", "encoder.embed.1.bias",
        "encoder.encoders.2.self_attn.linear_q.weight", "encoder.encoders.0.feed_forward.w_1.bias",
        "encoder.encoders.0.norm1.weight", "encoder.encoders.0.norm2.bias",
        "encoder.after_norm.weight", "decoder.weight", "decoder.bias",
    } <= names  # fmt: skip
    assert len(names) == 1 + 4 + 3 * 16 + 2 + 2
    assert tiny().encoder.embed[1].eps == 1e-5  # torch's LayerNorm in the input layer, as ESPnet


@pytest.mark.parametrize("pos_enc", [None, "sinusoidal"])
def test_step_by_step_scores_equal_the_full_forward(pos_enc: str | None) -> None:
    lm, ys = tiny(pos_enc), prefixes()
    with torch.no_grad():
        full = torch.log_softmax(lm(ys), dim=-1)
        state = None
        for length in range(1, ys.size(1) + 1):
            logp, state = lm.batch_score(ys[:, :length], state)
            torch.testing.assert_close(logp, full[:, length - 1], atol=1e-5, rtol=0)
            assert isinstance(state, LMState) and state.length == length
            assert state.tensors[0].shape == (5, 3, 2, 4, length, 4)


def test_a_whole_prefix_without_state_equals_stepping() -> None:
    lm, ys = tiny("sinusoidal"), prefixes()
    with torch.no_grad():
        logp_all, state_all = lm.batch_score(ys)
        _, state = lm.batch_score(ys[:, :4])
        logp_rest, state_rest = lm.batch_score(ys[:, :5], state)
        for length in (6, 7):
            logp_rest, state_rest = lm.batch_score(ys[:, :length], state_rest)
    torch.testing.assert_close(logp_all, logp_rest, atol=1e-5, rtol=0)
    torch.testing.assert_close(state_all.tensors[0], state_rest.tensors[0], atol=1e-5, rtol=0)


def test_batched_scores_equal_one_prefix_at_a_time() -> None:
    lm, ys = tiny("sinusoidal"), prefixes()
    with torch.no_grad():
        batched, state = lm.batch_score(ys[:, :-1])
        batched, _ = lm.batch_score(ys, state)
        for row in range(ys.size(0)):
            alone, state_1 = lm.batch_score(ys[row : row + 1, :-1])
            alone, _ = lm.batch_score(ys[row : row + 1], state_1)
            torch.testing.assert_close(batched[row], alone[0], atol=1e-5, rtol=0)


def test_selected_states_continue_the_reordered_prefixes() -> None:
    lm, ys = tiny(), prefixes()
    perm = torch.tensor([4, 4, 0, 2])
    with torch.no_grad():
        _, state = lm.batch_score(ys[:, :3])
        logp, _ = lm.batch_score(ys[perm, :4], state.select(perm))
        full = torch.log_softmax(lm(ys[perm, :4]), dim=-1)[:, -1]
    torch.testing.assert_close(logp, full, atol=1e-5, rtol=0)


def test_training_forward_has_gradients_and_rejects_bad_heads() -> None:
    lm = tiny(dropout_rate=0.2).train()
    lm(prefixes()).logsumexp(-1).sum().backward()
    assert all(p.grad is not None for p in lm.parameters())
    with pytest.raises(ValueError, match="lm_conf.att_unit=16 must be divisible by lm_conf.head=3"):
        TransformerLM(V, att_unit=16, head=3)
    with pytest.raises(ValueError, match="lm_conf.pos_enc='learned'"):
        TransformerLM(V, pos_enc="learned")  # type: ignore[arg-type]
