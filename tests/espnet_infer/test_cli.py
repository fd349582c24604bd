"""espnet-infer and espnet-score from their main functions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from espnet_infer.cli import main, parse_inference_config
from espnet_infer.score_cli import main as score_main

from tests._fixtures import Pipeline


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        main(["--help"])
    assert err.value.code == 0
    out = capsys.readouterr().out
    assert "--parallel.backend" in out and "--decode.method" in out


def test_score_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        score_main(["--help"])
    assert err.value.code == 0
    assert "--hyp" in capsys.readouterr().out


def test_recipe_inference_yaml_parses() -> None:
    recipe = Path(__file__).parents[2] / "egs" / "mini" / "asr" / "conf" / "inference.yaml"
    cfg = parse_inference_config(["--config", str(recipe), "--parallel.backend", "processes"])
    assert cfg.parallel.backend == "processes"
    assert cfg.decode.method == "beam_search"
    assert set(cfg.test_sets) == {"dev", "test"}


def test_bad_backend_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "inference.yaml"
    conf.write_text(yaml.safe_dump({"model_dir": "m", "test_sets": {}, "output_dir": "o",
                                    "parallel": {"backend": "slurm"}}))
    assert main(["--config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"espnet-infer: {conf}: ") and "backend" in err and "usage:" not in err


def test_unknown_key_names_the_closest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "inference.yaml"
    conf.write_text(yaml.safe_dump({"model_dir": "m", "test_sets": {}, "output_dir": "o",
                                    "decode": {"beam_sise": 4}}))
    assert main(["--config", str(conf)]) == 2
    assert (f"espnet-infer: {conf}: unknown key 'decode.beam_sise' (did you mean 'decode.beam_size'?); "
            "valid keys under 'decode': ") in capsys.readouterr().err


def test_help_keeps_the_usage_layout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "\n    espnet-infer --config inference.yaml\n    espnet-infer --config" in capsys.readouterr().out


def test_decode_then_score(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "inference.yaml"
    conf.write_text(yaml.safe_dump({
        "model_dir": str(pipeline.model_dir),
        "test_sets": {"test": str(pipeline.data / "test")},
        "output_dir": str(tmp_path / "out"),
        "decode": {"method": "beam_search", "beam_size": 2},
    }))
    assert main(["--config", str(conf), "--decode.method", "ctc_greedy"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["decode"]["method"] == "ctc_greedy"
    test = tmp_path / "out" / "test"
    assert score_main(["--ref", str(test / "ref.txt"), "--hyp", str(test / "hyp.txt"),
                       "--out", str(test / "score")]) == 0
    scores = json.loads((test / "score" / "scores.json").read_text())
    assert {"wer", "cer"} <= set(scores)


def test_trust_remote_code_is_off_unless_asked() -> None:
    base = ["--model_dir", "m", "--test_sets", '{"t": "d"}', "--output_dir", "o"]
    assert parse_inference_config(base).trust_remote_code is False
    assert parse_inference_config([*base, "--trust_remote_code", "true"]).trust_remote_code is True


def test_a_locked_output_dir_exits_2_naming_the_lock(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from espnet_infer.runner import output_lock

    args = ["--model_dir", str(pipeline.model_dir), "--output_dir", str(tmp_path / "out"),
            "--test_sets", json.dumps({"test": str(pipeline.data / "test")}),
            "--decode.method", "ctc_greedy"]
    with output_lock(tmp_path / "out"):  # another run (here: this process) holds it
        assert main(args) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "out" / ".espnet-infer.lock") in err and f"pid {os.getpid()}" in err
    assert not (tmp_path / "out" / "test").exists()  # nothing reset, nothing decoded
    assert main(args) == 0  # released at the end of the block
