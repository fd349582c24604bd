"""TransformerLM: ESPnet2's names, cached scoring equal to the full forward."""

from __future__ import annotations

import pytest
import torch
from espnet_model.lm import LMState, TransformerLM
from espnet_model.lm.transformer import TransformerLMState

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


def path_kv(state: LMState) -> torch.Tensor:
    """Each row's keys and values in position order, ``(n, layers, 2, H, L, d_k)``."""
    assert isinstance(state, TransformerLMState) and state.store is not None
    paths = state.gathered()[0]
    nodes = paths.nonzero()[:, 1].view(paths.size(0), -1)  # row-major: positions in order
    kv = state.store.kv[:, :, :, : paths.size(1)]
    return torch.stack([kv[:, :, :, row] for row in nodes])


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
            # Which nodes of the shared store are on each row's prefix: one per position.
            paths = state.gathered()[0]
            assert paths.shape[0] == 5 and paths.sum(1).tolist() == [length] * 5


def test_a_whole_prefix_without_state_equals_stepping() -> None:
    lm, ys = tiny("sinusoidal"), prefixes()
    with torch.no_grad():
        logp_all, state_all = lm.batch_score(ys)
        _, state = lm.batch_score(ys[:, :4])
        logp_rest, state_rest = lm.batch_score(ys[:, :5], state)
        for length in (6, 7):
            logp_rest, state_rest = lm.batch_score(ys[:, :length], state_rest)
    torch.testing.assert_close(logp_all, logp_rest, atol=1e-5, rtol=0)
    # The same keys and values on every row's path.
    for a, b in ((state_all, state_rest),):
        assert isinstance(a, TransformerLMState) and isinstance(b, TransformerLMState)
    kv_all, kv_rest = (path_kv(s) for s in (state_all, state_rest))
    torch.testing.assert_close(kv_all, kv_rest, atol=1e-5, rtol=0)


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


@pytest.mark.parametrize("pos_enc", [None, "sinusoidal"])
def test_selections_over_many_steps_score_as_the_full_forward(pos_enc: str | None) -> None:
    """A beam search's pattern: one token per step, rows reordered (and repeated) after
    every step, some selections composed twice before the next step."""
    lm = tiny(pos_enc)
    torch.manual_seed(2)
    n, steps = 4, 9
    ys = torch.full((n, 1), SOS)
    state = None
    with torch.no_grad():
        for t in range(steps):
            logp, state = lm.batch_score(ys, state)
            full = torch.log_softmax(lm(ys), dim=-1)[:, -1]
            torch.testing.assert_close(logp, full, atol=1e-5, rtol=0)
            assert isinstance(state, TransformerLMState) and state.weights is not None
            parent = torch.randint(0, n, (n,))
            token = torch.randint(0 if t == 3 else 1, V - 1, (n,))  # a padding id at step 3
            ys = torch.cat([ys[parent], token[:, None]], dim=1)
            state = state.select(parent)
            if t % 3 == 1:  # two selections before a step compose
                twice = torch.randperm(n)
                ys, state = ys[twice], state.select(twice)
            assert len(state) == n and state.length == ys.size(1) - 1


def test_a_state_scored_twice_gives_independent_states() -> None:
    lm, ys = tiny(), prefixes()
    with torch.no_grad():
        _, state = lm.batch_score(ys[:, :4])
        picked = state.select(torch.tensor([1, 0, 3, 3, 2]))
        first, state_a = lm.batch_score(ys[[1, 0, 3, 3, 2], :5], picked)
        other = ys[[1, 0, 3, 3, 2], :5].clone()
        other[:, -1] = 3
        lm.batch_score(other, picked)  # the same state, another token
        again, state_b = lm.batch_score(ys[[1, 0, 3, 3, 2], :5], picked)
    # The second call attends over a compacted copy (other node order: float rounding).
    torch.testing.assert_close(first, again, atol=1e-5, rtol=0)
    torch.testing.assert_close(path_kv(state_a), path_kv(state_b), atol=1e-5, rtol=0)
    assert state_a.store is not state_b.store  # the second call could not append in place


def test_a_new_search_uses_the_current_weights() -> None:
    lm, ys = tiny(), prefixes()
    with torch.no_grad():
        _, state = lm.batch_score(ys[:, :1])
        lm.decoder.bias.add_(1.0)  # a new search (state None) lays the weights out again
        logp, _ = lm.batch_score(ys[:, :1])
        full = torch.log_softmax(lm(ys[:, :1]), dim=-1)[:, -1]
    torch.testing.assert_close(logp, full, atol=1e-5, rtol=0)


def test_training_mode_steps_through_the_modules_and_agrees() -> None:
    no_dropout = {"dropout_rate": 0.0, "positional_dropout_rate": 0.0, "attention_dropout_rate": 0.0}
    lm, ys = tiny("sinusoidal", **no_dropout), prefixes()
    with torch.no_grad():
        _, state = lm.eval().batch_score(ys[:, :5])
        stepped, _ = lm.batch_score(ys[:, :6], state)
        lm.train()
        trained, train_state = lm.batch_score(ys[:, :6], state)
    torch.testing.assert_close(path_kv(train_state)[:, :, :, :, :5], path_kv(state), atol=1e-5, rtol=0)
    torch.testing.assert_close(stepped, trained, atol=1e-5, rtol=0)


def test_training_forward_has_gradients_and_rejects_bad_heads() -> None:
    lm = tiny(dropout_rate=0.2).train()
    lm(prefixes()).logsumexp(-1).sum().backward()
    assert all(p.grad is not None for p in lm.parameters())
    with pytest.raises(ValueError, match="lm_conf.att_unit=16 must be divisible by lm_conf.head=3"):
        TransformerLM(V, att_unit=16, head=3)
    with pytest.raises(ValueError, match="lm_conf.pos_enc='learned'"):
        TransformerLM(V, pos_enc="learned")  # type: ignore[arg-type]
