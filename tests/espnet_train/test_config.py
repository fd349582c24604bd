"""TrainingConfig: the typed schema of training.yaml, as espnet-train parses it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from espnet_train import DataConfig, OptimConfig, TrainerConfig, TrainingConfig
from espnet_train.cli import parse_training_config

from tests._fixtures import tiny_model


def _write(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _body(**extra: object) -> dict:
    body = {
        "exp_dir": "exp/train",
        "tokenizer": "exp/tokenizer",
        "data": {"train": "data/train", "valid": "data/dev"},
        "model": tiny_model(),
    }
    body.update(extra)
    return body


def test_defaults() -> None:
    cfg = TrainingConfig(exp_dir="e", tokenizer="t", data=DataConfig(train="a", valid="b"))
    assert cfg.optim == OptimConfig()
    assert cfg.trainer == TrainerConfig()
    assert cfg.resume is True
    assert cfg.nan_policy == "skip"
    assert cfg.monitor == "valid/loss"


def test_yaml_becomes_typed_dataclasses(tmp_path: Path) -> None:
    path = _write(tmp_path, _body(trainer={"max_epochs": 3}, optim={"scheduler": "cosine"}))
    cfg = parse_training_config(["--config", str(path)])
    assert isinstance(cfg, TrainingConfig)
    assert isinstance(cfg.data, DataConfig) and cfg.data.train == "data/train"
    assert isinstance(cfg.trainer, TrainerConfig) and cfg.trainer.max_epochs == 3
    assert isinstance(cfg.optim, OptimConfig) and cfg.optim.scheduler == "cosine"
    assert cfg.model == tiny_model()  # the ESPnet2-style block is passed through untouched


def test_command_line_overrides_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, _body())
    cfg = parse_training_config(["--config", str(path), "--trainer.max_epochs", "7", "--exp_dir", "x"])
    assert cfg.trainer.max_epochs == 7
    assert cfg.exp_dir == "x"


def test_recipe_training_yaml_parses() -> None:
    recipe = Path(__file__).parents[2] / "egs" / "mini" / "asr" / "conf" / "training.yaml"
    cfg = parse_training_config(["--config", str(recipe)])
    assert cfg.model["encoder"] == "conformer"
    assert cfg.stats_file


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"trainer": {"max_epoch": 3}}, "max_epoch"),
        ({"optim": {"scheduler": "exponential"}}, "scheduler"),
        ({"nan_polcy": "skip"}, "nan_polcy"),
    ],
)
def test_bad_keys_and_values_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: dict, named: str
) -> None:
    path = _write(tmp_path, _body(**extra))
    with pytest.raises(ValueError) as err:  # ConfigError: one line naming the file and key
        parse_training_config(["--config", str(path)])
    assert named in str(err.value) and str(path) in str(err.value)


def test_length_curriculum_key_parses_and_is_checked(tmp_path: Path) -> None:
    body = _body()
    body["data"]["shortest_first_epochs"] = 2
    cfg = parse_training_config(["--config", str(_write(tmp_path, body))])
    assert cfg.data.shortest_first_epochs == 2
    assert DataConfig(train="a", valid="b").shortest_first_epochs == 0
    with pytest.raises(ValueError, match=r"data.shortest_first_epochs: -1 must be >= 0"):
        DataConfig(train="a", valid="b", shortest_first_epochs=-1)
    body["data"]["shortest_first_epochs"] = -1
    with pytest.raises(ValueError, match=r"data.shortest_first_epochs: -1 must be >= 0"):
        parse_training_config(["--config", str(_write(tmp_path, body))])
    with pytest.raises(ValueError, match=r"shortest_first_epochs: 1 orders the batches of task: asr only"):
        TrainingConfig(exp_dir="e", tokenizer="t", task="lm",
                       data=DataConfig(train="a", valid="b", shortest_first_epochs=1))
