"""The training contract: (loss, stats, weight) or OptimizationSteps; clear errors otherwise."""

from __future__ import annotations

import pytest
import torch
from espnet_train import OptimizationStep
from espnet_train.contract import unpack_output


class MyModel(torch.nn.Module):
    pass


def test_loss_stats_weight() -> None:
    loss = torch.tensor(2.0, requires_grad=True)
    steps, out_loss, stats, weight = unpack_output(MyModel(), (loss, {"loss": loss.detach()}, torch.tensor(4)))
    assert steps is None and out_loss is not None and out_loss.item() == 2.0
    assert stats == {"loss": loss.detach()} and weight == 4


def test_optimization_steps() -> None:
    g, d = torch.tensor(1.0), torch.tensor(2.0)
    out = [OptimizationStep(loss=g, name="generator"), OptimizationStep(loss=d, name="discriminator")]
    steps, loss, _, weight = unpack_output(MyModel(), (out, {}, None))
    assert loss is None and weight is None
    assert [s.name for s in steps or []] == ["generator", "discriminator"]


@pytest.mark.parametrize(
    ("out", "message"),
    [
        (torch.tensor(1.0), r"MyModel.forward must return \(loss, stats, weight\)"),
        ((torch.tensor(1.0), {}), "tuple of length 2"),
        ((torch.ones(3), {}, 1), "loss must be a scalar"),
        ((torch.tensor(1.0), [1], 1), "stats must be a dict"),
        ((torch.tensor(1.0), {}, "8"), "weight must be"),
        (("loss", {}, 1), "OptimizationStep"),
        (([OptimizationStep(torch.tensor(1.0), "a"), OptimizationStep(torch.tensor(1.0), "a")], {}, 1),
         "same name"),
    ],
)
def test_wrong_returns_name_the_model(out: object, message: str) -> None:
    with pytest.raises(TypeError, match=message) as err:
        unpack_output(MyModel(), out)
    assert "MyModel" in str(err.value)
