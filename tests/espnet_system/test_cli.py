"""espnet-run from its main function: --help, --list, errors without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from espnet_system.cli import main

from .test_recipe import RECIPE_SYSTEM


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        main(["--help"])
    assert err.value.code == 0
    assert "--stages" in capsys.readouterr().out


def test_list_shows_stages_and_their_configs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["create_dataset", "conf/data.yaml"]
    assert lines[2].split() == ["train_lm", "conf/lm.yaml", "(only", "when", "named)"]
    assert lines[4].split() == ["train", "conf/training.yaml"]
    assert "only when named" in lines[8] and lines[8].startswith("upload_model")
    assert len(lines) == 11


def test_list_of_an_lm_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "lm").mkdir()
    assert main([str(tmp_path / "lm"), "--list"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == [
        "create_dataset", "train", "measure", "pack_model", "upload_model"]


def test_list_of_a_recipe_system(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "system.py").write_text(RECIPE_SYSTEM)
    assert main([str(tmp_path), "--list"]) == 0
    assert "lm" in capsys.readouterr().out.split()


def test_unknown_stage_exits_2_with_the_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path), "--stages", "trian"]) == 2
    err = capsys.readouterr().err
    assert "unknown stage 'trian'" in err and "create_dataset" in err


def test_missing_recipe_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope"), "--stages", "train"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_missing_config_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), "--stages", "measure"]) == 2
    assert "metrics.yaml is missing" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()


def _recipe(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "metrics.yaml").write_text("inference_dir: out\n")
    (tmp_path / "out").mkdir()  # what measure reads (infer's output)
    return tmp_path


def test_dry_run_prints_the_plan_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = _recipe(tmp_path)
    assert main([str(recipe), "--stages", "measure", "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "1. measure" in out and "conf/metrics.yaml" in out and "exp/logs/measure.log" in out
    assert "out_file: exp/infer/scores.json" in out  # resolved: the default filled in
    assert "reads inference_dir = out (present)" in out
    assert not (recipe / "exp").exists()


def test_print_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _recipe(tmp_path)
    assert main([str(recipe), "--stages", "measure", "--print_config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("--- # conf/metrics.yaml (MetricsConfig)\n")
    assert "inference_dir: out" in out and "test_sets: null" in out


def test_misspelt_key_exits_2_with_the_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = _recipe(tmp_path)
    (recipe / "conf" / "metrics.yaml").write_text("inference_dirr: out\n")
    assert main([str(recipe), "--stages", "measure", "--dry_run"]) == 2
    err = capsys.readouterr().err
    assert "metrics.yaml: unknown key 'inference_dirr' (did you mean 'inference_dir'?)" in err
