from __future__ import annotations

import torch
from espnet_model.ctc import CTC


def test_loss_finite_and_shapes() -> None:
    ctc = CTC(7, 16)
    hs = torch.randn(2, 12, 16, requires_grad=True)
    ys = torch.tensor([[2, 3, 4], [5, -1, -1]])
    loss = ctc(hs, torch.tensor([12, 8]), ys, torch.tensor([3, 1]))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert hs.grad is not None
    assert ctc.log_softmax(hs).shape == (2, 12, 7)
    assert ctc.argmax(hs).shape == (2, 12)


def test_impossible_alignment_is_zeroed() -> None:
    ctc = CTC(7, 4)
    loss = ctc(
        torch.randn(1, 2, 4), torch.tensor([2]), torch.tensor([[2, 2, 2]]), torch.tensor([3])
    )
    assert loss.item() == 0.0
