"""espnet-train alone (no recipe): --help, a run from one YAML, resume with more epochs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from espnet_train.cli import main

from tests._fixtures import Pipeline, training_dict


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        main(["--help"])
    assert err.value.code == 0
    out = capsys.readouterr().out
    assert "--config" in out and "--trainer.max_epochs" in out


@pytest.mark.slow
def test_train_alone_then_resume_with_more_epochs(
    pipeline: Pipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exp = tmp_path / "exp"
    conf = tmp_path / "training.yaml"
    conf.write_text(yaml.safe_dump(
        training_dict(pipeline.data, pipeline.tokenizer, pipeline.stats, exp, max_epochs=1)
    ))
    assert main(["--config", str(conf)]) == 0
    assert (exp / "model" / "model.pt").is_file()
    assert json.loads((exp / "train_summary.json").read_text())["epochs"] == 1
    first_last = (exp / "checkpoints" / "last.ckpt").stat().st_mtime_ns

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="espnet_train"):
        assert main(["--config", str(conf), "--trainer.max_epochs", "2"]) == 0
    assert f"resuming from {exp / 'checkpoints' / 'last.ckpt'}" in caplog.text
    summary = json.loads((exp / "train_summary.json").read_text())
    assert summary["epochs"] == 2
    assert (exp / "checkpoints" / "epoch001.ckpt").is_file()
    assert (exp / "checkpoints" / "last.ckpt").stat().st_mtime_ns != first_last
    # the first run's resolved config is kept, the new one records the override
    assert yaml.safe_load((exp / "config.1.yaml").read_text())["trainer"]["max_epochs"] == 1
    assert yaml.safe_load((exp / "config.yaml").read_text())["trainer"]["max_epochs"] == 2
    # the first run's metrics are kept too (Lightning's CSVLogger would delete them)
    assert "valid/loss" in (exp / "csv" / "metrics.1.csv").read_text()
    assert (exp / "csv" / "metrics.csv").is_file()


def test_unknown_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "training.yaml"
    conf.write_text(yaml.safe_dump({"exp_dir": "e", "tokenizer": "t",
                                    "data": {"train": "a", "valid": "b"}, "epochs": 3}))
    assert main(["--config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert f"espnet-train: {conf}: unknown key 'epochs'" in err and "usage:" not in err


def test_print_config_lists_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        main(["--print_config"])
    assert err.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["name"] == "adamw" and printed["optim"]["scheduler"] == "warmuplr"
    assert printed["checkpoint_every_n_steps"] == 1000
    assert printed["max_consecutive_bad_batches"] == 100
    assert printed["trainer"]["precision"] == "auto"  # bf16-mixed on a bf16 GPU, else 32-true


def test_dotted_overrides(tmp_path: Path) -> None:
    from espnet_train.cli import parse_training_config

    conf = tmp_path / "training.yaml"
    conf.write_text(yaml.safe_dump({"exp_dir": "e", "tokenizer": "t", "data": {"train": "a", "valid": "b"}}))
    cfg = parse_training_config([
        "--config", str(conf), "--optim.lr", "0.002", "--optim.name", "sgd",
        "--optim.scheduler", "noam", "--trainer.precision", "bf16-mixed",
        "--trainer.accumulate_grad_batches", "4", "--checkpoint_every_n_steps", "50",
    ])
    assert cfg.optim.lr == 0.002 and cfg.optim.name == "sgd" and cfg.optim.scheduler == "noam"
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.accumulate_grad_batches == 4
    assert cfg.checkpoint_every_n_steps == 50


def test_named_optimizers_from_yaml(tmp_path: Path) -> None:
    from espnet_train.cli import parse_training_config

    conf = tmp_path / "training.yaml"
    conf.write_text(yaml.safe_dump({
        "exp_dir": "e", "tokenizer": "t", "data": {"train": "a", "valid": "b"},
        "optims": {"generator": {"params": "generator.", "lr": 2e-4},
                   "discriminator": {"params": "discriminator.", "name": "sgd", "grad_clip": 1.0}},
    }))
    cfg = parse_training_config(["--config", str(conf)])
    assert cfg.optims["generator"].lr == 2e-4 and cfg.optims["generator"].name == "adamw"
    assert cfg.optims["discriminator"].name == "sgd" and cfg.optims["discriminator"].grad_clip == 1.0
