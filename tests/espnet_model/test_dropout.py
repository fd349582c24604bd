from __future__ import annotations

import pytest
import torch
from espnet_model.dropout import Dropout, dropout


def test_drops_the_asked_fraction_and_keeps_the_mean() -> None:
    torch.manual_seed(0)
    y = dropout(torch.ones(400_000), 0.1)
    assert abs(float((y == 0).float().mean()) - 0.1) < 0.003
    assert abs(float(y.mean()) - 1.0) < 0.005
    values = torch.unique(y).tolist()
    assert values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - 0.1), abs=1e-4) and len(values) == 2


def test_seeded_and_differentiable() -> None:
    x = torch.randn(3, 50, requires_grad=True)
    torch.manual_seed(1)
    a = dropout(x, 0.3)
    torch.manual_seed(1)
    b = dropout(x, 0.3)
    assert torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None
    kept = a.detach() != 0
    scale = x.grad[kept]
    torch.testing.assert_close(scale, torch.full_like(scale, float(scale[0])))
    assert float(scale[0]) == pytest.approx(1 / 0.7, abs=1e-4)
    assert torch.all(x.grad[~kept] == 0)


def test_eval_zero_and_odd_sizes() -> None:
    layer = Dropout(0.5)
    x = torch.randn(7, 3)  # 21 elements: not a multiple of the four lanes per draw
    assert dropout(x, 0.5).shape == x.shape
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(dropout(x, 0.0), x)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
