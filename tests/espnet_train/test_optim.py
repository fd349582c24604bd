"""Optimizers and schedules from OptimConfig; routing parameters to named optimizers."""

from __future__ import annotations

import pytest
import torch
from espnet_train import OptimConfig
from espnet_train.optim import build_optimizer, build_scheduler, lr_lambda, split_parameters


def _params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.ones(2))]


@pytest.mark.parametrize(("name", "cls"), [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam),
                                            ("sgd", torch.optim.SGD)])
def test_optimizer_by_name(name: str, cls: type) -> None:
    opt = build_optimizer(OptimConfig(name=name, lr=0.05, momentum=0.5, nesterov=True), _params())
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == 0.05
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.5 and opt.param_groups[0]["nesterov"]


def test_noam_follows_its_formula() -> None:
    f = lr_lambda(OptimConfig(scheduler="noam", model_size=256, warmup_steps=25), None)
    assert f(0) == pytest.approx(256**-0.5 * 1 * 25**-1.5)
    assert f(24) == pytest.approx(256**-0.5 * 25**-0.5)  # the peak, at the end of warmup
    assert f(99) == pytest.approx(256**-0.5 * 100**-0.5)


def test_reduce_on_plateau_follows_the_metric() -> None:
    conf = OptimConfig(scheduler="reduce_on_plateau", lr=1.0, plateau_factor=0.5, plateau_patience=0, min_lr=0.0)
    opt = build_optimizer(conf, _params())
    sched = build_scheduler(conf, opt, None, mode="max")
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    sched.step(0.5)
    sched.step(0.6)  # better (max): unchanged
    assert opt.param_groups[0]["lr"] == 1.0
    sched.step(0.4)  # worse: halved
    assert opt.param_groups[0]["lr"] == 0.5


def test_step_schedules_are_lambdalr() -> None:
    for scheduler in ("warmuplr", "noam", "cosine", "constant"):
        conf = OptimConfig(scheduler=scheduler)
        opt = build_optimizer(conf, _params())
        assert isinstance(build_scheduler(conf, opt, 100), torch.optim.lr_scheduler.LambdaLR)


class _GAN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.generator = torch.nn.Linear(2, 2)
        self.discriminator = torch.nn.Linear(2, 1)


def test_split_parameters_by_prefix() -> None:
    model = _GAN()
    groups = split_parameters(model, {"g": OptimConfig(params="generator."),
                                      "d": OptimConfig(params="discriminator.")})
    assert [len(v) for v in groups.values()] == [2, 2]
    assert groups["g"][0] is model.generator.weight


@pytest.mark.parametrize(
    ("optims", "named"),
    [
        ({"g": OptimConfig(params="generator."), "d": OptimConfig()}, "optims.d.params"),
        ({"g": OptimConfig(params="generator.")}, "discriminator.weight"),
        ({"g": OptimConfig(params="generator."), "w": OptimConfig(params="generator.weight"),
          "d": OptimConfig(params="discriminator.")}, "'generator.weight' matches 2"),
        ({"g": OptimConfig(params="generator."), "d": OptimConfig(params="discriminator."),
          "x": OptimConfig(params="nothing.")}, "optims.x.params 'nothing.' matches no parameter"),
    ],
)
def test_split_parameters_errors_name_the_problem(optims: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        split_parameters(_GAN(), optims)


def test_any_torch_optimizer_by_class_path() -> None:
    optim = OptimConfig(optimizer={"class_path": "torch.optim.RMSprop", "init_args": {"lr": 0.01, "alpha": 0.9}},
                        scheduler="cosine", warmup_steps=2)
    opt = build_optimizer(optim, _params())
    assert isinstance(opt, torch.optim.RMSprop)
    assert opt.defaults["lr"] == 0.01 == optim.lr and opt.defaults["alpha"] == 0.9
    sched = build_scheduler(optim, opt, total_steps=10)
    assert isinstance(sched, torch.optim.lr_scheduler.LambdaLR)  # the schedule keys still apply
