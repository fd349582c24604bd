"""LMState row selection and the argument checks of BaseLM.batch_score."""

from __future__ import annotations

import pytest
import torch
from espnet_model.lm import LMState, TransformerLM


def test_select_reorders_and_repeats_rows_along_the_batch_dim() -> None:
    h = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)  # (layers, n, hidden)
    state = LMState((h, h + 100), batch_dim=1, length=5)
    assert len(state) == 3
    picked = state.select(torch.tensor([2, 0, 0, 1]))
    assert len(picked) == 4 and picked.length == 5 and picked.batch_dim == 1
    gathered = picked.gathered()
    torch.testing.assert_close(gathered[0], h[:, [2, 0, 0, 1]])
    torch.testing.assert_close(gathered[1], h[:, [2, 0, 0, 1]] + 100)
    # Selections compose; nothing is copied until gathered.
    again = picked.select(torch.tensor([3, 0]))
    assert len(again) == 2 and again.tensors[0] is h
    torch.testing.assert_close(again.gathered()[0], h[:, [1, 2]])
    # The original is untouched (states are never written in place).
    torch.testing.assert_close(state.tensors[0], h)
    assert state.gathered()[0] is h


def test_batch_score_rejects_a_state_that_does_not_fit_ys() -> None:
    lm = TransformerLM(6, embed_unit=4, att_unit=8, head=2, unit=8, layer=1).eval()
    ys = torch.tensor([[5, 2], [5, 3]])
    _, state = lm.batch_score(ys)
    with pytest.raises(ValueError, match="state has 2 rows but ys has 1"):
        lm.batch_score(torch.tensor([[5, 2, 1]]), state)
    with pytest.raises(ValueError, match="prefixes of 2 tokens but ys has 2"):
        lm.batch_score(ys, state)
    with pytest.raises(ValueError, match=r"ys must be \(n, L\)"):
        lm.batch_score(torch.tensor([5, 2]))
