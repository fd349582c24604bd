"""Curricula (anneal:): settings that move to their configured values during a run."""

from __future__ import annotations

import pytest
import torch
from espnet_train.anneal import Anneal
from espnet_train.budget import TrainingBudget
from espnet_train.config import AnnealConfig


def test_anneal_config_checks_its_fractions() -> None:
    with pytest.raises(ValueError, match="0 <= begin < until <= 1"):
        AnnealConfig(start=0.5, begin=0.6, until=0.4)
    conf = AnnealConfig(start=0.9, begin=0.2, until=0.6)
    assert conf.value(0.3, 0.0) == 0.9
    assert conf.value(0.3, 0.4) == pytest.approx(0.6)
    assert conf.value(0.3, 0.9) == pytest.approx(0.3)
    assert AnnealConfig(start=0.0, shape="cosine").value(1.0, 0.25) == pytest.approx(0.1464, abs=1e-4)


class _Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ctc_weight = 0.3
        self.ctc = torch.nn.Linear(2, 2)
        self.decoder = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.2))
        self.drop = torch.nn.Dropout(0.1)
        self.masks = 2


class _Module:
    def __init__(self) -> None:
        self.model = _Model()
        self.optimizer_steps = 0
        self.logged: dict[str, float] = {}

    def log(self, name: str, value: float, **kwargs: object) -> None:
        self.logged[name] = value


class _Trainer:
    log_every_n_steps = 1
    global_step = 0


def test_anneal_moves_settings_and_validates_at_the_configured_values() -> None:
    module = _Module()
    budget = TrainingBudget(total_steps=100)
    anneal = Anneal({"ctc_weight": AnnealConfig(start=0.9, until=0.5), "dropout": AnnealConfig(start=0.0),
                     "masks": AnnealConfig(start=0.0)}, budget)
    anneal.setup(_Trainer(), module, "fit")  # type: ignore[arg-type]
    anneal.on_train_batch_start(_Trainer(), module, None, 0)  # type: ignore[arg-type]
    model = module.model
    assert model.ctc_weight == pytest.approx(0.9)
    assert model.drop.p == 0.0 and model.decoder[1].p == 0.0
    assert model.masks == 0 and isinstance(model.masks, int)
    assert module.logged["anneal/ctc_weight"] == pytest.approx(0.9)
    module.optimizer_steps = 25
    anneal.on_train_batch_start(_Trainer(), module, None, 0)  # type: ignore[arg-type]
    assert model.ctc_weight == pytest.approx(0.6)
    assert model.drop.p == pytest.approx(0.025) and model.decoder[1].p == pytest.approx(0.05)
    anneal.on_validation_start(_Trainer(), module)  # type: ignore[arg-type]
    assert model.ctc_weight == pytest.approx(0.3) and model.drop.p == pytest.approx(0.1)
    assert model.masks == 2


@pytest.mark.parametrize(("name", "match"), [
    ("no_such", "no number attribute 'no_such'"),
    ("decoder", "no number attribute 'decoder'"),
    ("ctc.missing", "no number attribute 'ctc.missing'"),
])
def test_anneal_names_a_missing_setting(name: str, match: str) -> None:
    anneal = Anneal({name: AnnealConfig(start=0.0)}, TrainingBudget(10))
    with pytest.raises(ValueError, match=match):
        anneal.setup(_Trainer(), _Module(), "fit")  # type: ignore[arg-type]


def test_anneal_ctc_weight_needs_both_branches() -> None:
    module = _Module()
    module.model.decoder = None  # type: ignore[assignment]
    anneal = Anneal({"ctc_weight": AnnealConfig(start=0.9)}, TrainingBudget(10))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        anneal.setup(_Trainer(), module, "fit")  # type: ignore[arg-type]
