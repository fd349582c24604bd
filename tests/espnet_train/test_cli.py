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


def test_unknown_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "training.yaml"
    conf.write_text(yaml.safe_dump({"exp_dir": "e", "tokenizer": "t",
                                    "data": {"train": "a", "valid": "b"}, "epochs": 3}))
    with pytest.raises(SystemExit) as err:
        main(["--config", str(conf)])
    assert err.value.code != 0
    assert "epochs" in capsys.readouterr().err
