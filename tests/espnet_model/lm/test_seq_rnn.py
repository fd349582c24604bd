"""SequentialRNNLM: ESPnet2's names, cached scoring equal to the full forward."""

from __future__ import annotations

import pytest
import torch
from espnet_model.lm import SequentialRNNLM

V = 9


def prefixes() -> torch.Tensor:
    torch.manual_seed(1)
    ys = torch.randint(0, V - 1, (4, 6))
    ys[:, 0] = V - 1
    return ys


@pytest.mark.parametrize("rnn_type", ["lstm", "GRU", "rnn_tanh", "rnn_relu"])
def test_step_by_step_and_batched_scores_equal_the_full_forward(rnn_type: str) -> None:
    torch.manual_seed(0)
    lm = SequentialRNNLM(V, unit=8, nhid=6, nlayers=2, rnn_type=rnn_type).eval()  # type: ignore[arg-type]
    ys = prefixes()
    with torch.no_grad():
        full = torch.log_softmax(lm(ys), dim=-1)
        state = None
        for length in range(1, ys.size(1) + 1):
            logp, state = lm.batch_score(ys[:, :length], state)
            torch.testing.assert_close(logp, full[:, length - 1], atol=1e-5, rtol=0)
        assert len(state.tensors) == (2 if rnn_type == "lstm" else 1)
        assert state.tensors[0].shape == (2, 4, 6) and state.length == ys.size(1)
        perm = torch.tensor([3, 3, 1])
        logp, _ = lm.batch_score(ys[perm, :4], lm.batch_score(ys[:, :3])[1].select(perm))
        torch.testing.assert_close(logp, full[perm, 3], atol=1e-5, rtol=0)
        alone, _ = lm.batch_score(ys[2:3])
        torch.testing.assert_close(alone[0], full[2, -1], atol=1e-5, rtol=0)


def test_names_tied_weights_and_checks() -> None:
    lm = SequentialRNNLM(V, unit=8, nlayers=2, tie_weights=True)
    assert set(lm.state_dict()) == {
        "encoder.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0",
        "rnn.bias_hh_l0", "rnn.weight_ih_l1", "rnn.weight_hh_l1", "rnn.bias_ih_l1",
        "rnn.bias_hh_l1", "decoder.weight", "decoder.bias",
    }  # fmt: skip
    assert lm.decoder.weight is lm.encoder.weight
    assert lm.encoder.padding_idx == 0
    with pytest.raises(ValueError, match="tie_weights=true needs nhid == unit"):
        SequentialRNNLM(V, unit=8, nhid=6, tie_weights=True)
    with pytest.raises(ValueError, match="lm_conf.rnn_type='transformer'"):
        SequentialRNNLM(V, rnn_type="transformer")  # type: ignore[arg-type]
