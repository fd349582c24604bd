"""egs/TEMPLATE/asr: every config parses, and its example stage runs in a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from espnet_system import load_system
from espnet_system.cli import main

TEMPLATE = Path(__file__).parents[2] / "egs" / "TEMPLATE" / "asr"


def test_every_config_of_the_template_parses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(TEMPLATE), "--stages", "all", "data_report", "upload_model", "--dry_run"]) == 0
    out = capsys.readouterr().out
    for conf in ("data", "report", "training", "inference", "metrics", "publish"):
        assert f"conf/{conf}.yaml" in out
    assert not (TEMPLATE / "exp").exists()


def test_data_report_is_only_run_when_named(tmp_path: Path) -> None:
    recipe = tmp_path / "mycorpus" / "asr"
    shutil.copytree(TEMPLATE, recipe, ignore=shutil.ignore_patterns("__pycache__"))
    system = load_system(recipe)
    assert "data_report" not in system.resolve(["all"])
    assert system.resolve(["data_report", "create_dataset"]) == ["create_dataset", "data_report"]


def test_a_copy_creates_its_data_and_reports_it(tmp_path: Path) -> None:
    recipe = tmp_path / "mycorpus" / "asr"
    shutil.copytree(TEMPLATE, recipe, ignore=shutil.ignore_patterns("__pycache__"))
    data = yaml.safe_load((recipe / "conf" / "data.yaml").read_text())
    data["corpus"]["init_args"]["utterances"] = {"train": 4, "dev": 2, "test": 2}
    data["num_workers"] = 1
    (recipe / "conf" / "data.yaml").write_text(yaml.safe_dump(data))
    assert main([str(recipe), "--stages", "create_dataset", "data_report"]) == 0
    log = (recipe / "exp" / "logs" / "data_report.log").read_text()
    assert "train" in log and "4 utterances" in log
