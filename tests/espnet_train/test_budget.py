"""Schedules sized by the time budget (optim.horizon: time), and a run with a curriculum."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from espnet_train import OptimConfig
from espnet_train.budget import TrainingBudget
from espnet_train.config import AnnealConfig
from espnet_train.optim import lr_lambda

from tests._fixtures import Pipeline, training_config


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_fraction_is_the_larger_of_steps_and_time() -> None:
    clock = _Clock()
    budget = TrainingBudget(total_steps=100, max_seconds=60.0)
    assert budget.fraction(50) == 0.5  # no clock yet: steps only
    budget.follow(clock)
    clock.now = 45.0
    assert budget.fraction(50) == 0.75
    assert budget.fraction(90) == 0.9
    clock.now = 600.0
    assert budget.fraction(10) == 1.0
    assert TrainingBudget(total_steps=None, max_seconds=None).fraction(10**6) == 0.0


@pytest.mark.parametrize("scheduler", ["cosine", "linear"])
def test_time_horizon_decays_to_the_floor_when_time_is_up(scheduler: str) -> None:
    clock = _Clock()
    budget = TrainingBudget(total_steps=10_000, max_seconds=100.0)
    budget.follow(clock)
    optim = OptimConfig(lr=1e-3, min_lr=1e-5, scheduler=scheduler, warmup_steps=10, horizon="time")
    f = lr_lambda(optim, 10_000, budget)
    assert f(4) == pytest.approx(0.5)  # warmup is by steps
    clock.now = 50.0  # half the time, 1% of the steps: the decay follows the time
    half = f(100)
    assert half == pytest.approx(0.01 + 0.99 * 0.5, rel=1e-6)  # both shapes are at 1/2 at mid-run
    clock.now = 100.0
    assert f(120) == pytest.approx(0.01)
    by_steps = lr_lambda(OptimConfig(lr=1e-3, min_lr=1e-5, scheduler=scheduler, warmup_steps=10), 10_000)
    assert by_steps(100) > 0.99  # horizon: steps ignores the clock


def test_time_horizon_needs_a_schedule_that_ends() -> None:
    with pytest.raises(ValueError, match="warmuplr has no end"):
        lr_lambda(OptimConfig(scheduler="warmuplr", horizon="time"), 100, TrainingBudget(100, 60.0))


def test_time_horizon_needs_max_time(pipeline: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="trainer.max_time"):
        training_config(pipeline.data, pipeline.tokenizer, pipeline.stats, tmp_path,
                        optim={"scheduler": "cosine", "horizon": "time"})


def test_a_time_sized_run_with_a_curriculum(pipeline: Pipeline, tmp_path: Path) -> None:
    from espnet_train import train

    cfg = training_config(
        pipeline.data, pipeline.tokenizer, pipeline.stats, tmp_path, max_epochs=2,
        optim={"lr": 0.002, "scheduler": "cosine", "warmup_steps": 1, "horizon": "time", "min_lr": 1e-5},
        anneal={"ctc_weight": AnnealConfig(start=0.9, until=0.5)},
        trainer={"max_epochs": 2, "max_time": "00:01:00:00", "num_threads": 1, "log_every_n_steps": 1,
                 "accelerator": "cpu", "devices": 1},
    )
    train(cfg)
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    weights = [float(r["anneal/ctc_weight"]) for r in rows if r.get("anneal/ctc_weight")]
    assert weights and weights[0] == pytest.approx(0.9, abs=0.05)
    assert all(a >= b for a, b in zip(weights, weights[1:], strict=False))  # moves towards 0.3
    assert weights[-1] < 0.9
