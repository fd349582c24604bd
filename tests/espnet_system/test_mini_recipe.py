"""egs/mini/asr/src/system.py: the recipe-local ``analyze_errors`` stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from espnet_system import ASRSystem, load_system
from espnet_system.cli import main
from espnet_system.stages import StageError

MINI = Path(__file__).parents[2] / "egs" / "mini" / "asr"


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    shutil.copytree(MINI / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "conf").mkdir()
    shutil.copy(MINI / "conf" / "analysis.yaml", tmp_path / "conf")
    infer = tmp_path / "exp" / "infer"
    for name, hyp in (("dev", "u1 the cat sat\nu2 a dog ran far\n"),
                      ("test", "u1 the bat sat on\nu2 dog ran fur\n")):
        (infer / name).mkdir(parents=True)
        (infer / name / "ref.txt").write_text("u1 the cat sat\nu2 a dog ran far\nu3 \n")
        (infer / name / "hyp.txt").write_text(hyp)
        split = tmp_path / "data" / name
        split.mkdir(parents=True)
        rows = [{"key": "u1", "speaker": "ann", "duration": 1.0}, {"key": "u2", "speaker": "bob"},
                {"key": "u3", "speaker": "ann"}]
        (split / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_stage_sits_after_measure_and_runs_in_all(recipe: Path) -> None:
    system = load_system(recipe)
    assert isinstance(system, ASRSystem)
    stages = list(system.stages)
    assert stages.index("analyze_errors") == stages.index("measure") + 1
    assert "analyze_errors" in system.resolve(["all"])
    assert system.resolve(["analyze_errors", "infer"]) == ["infer", "analyze_errors"]


def test_all_trains_the_lm_after_the_tokenizer() -> None:
    system = load_system(MINI)
    stages = system.resolve(["all"])
    assert stages[:4] == ["create_dataset", "train_tokenizer", "train_lm", "collect_stats"]
    assert system.config("lm").recipe == "../lm"


def test_analyze_errors_writes_tables_per_set(recipe: Path) -> None:
    assert main([str(recipe), "--stages", "analyze_errors"]) == 0
    test = json.loads((recipe / "exp" / "infer" / "test" / "errors.json").read_text())
    assert test["substitutions"] == [{"ref": "cat", "hyp": "bat", "count": 1},
                                     {"ref": "far", "hyp": "fur", "count": 1}]
    assert test["deletions"] == [{"word": "a", "count": 1}]
    assert test["insertions"] == [{"word": "on", "count": 1}]
    assert test["wer"] == pytest.approx(100 * 4 / 7, abs=0.01)
    assert test["skipped_empty_reference"] == ["u3"]
    dev = json.loads((recipe / "exp" / "infer" / "dev" / "errors.json").read_text())
    assert dev["wer"] == 0.0 and dev["substitutions"] == []
    assert test["by_speaker"] == [  # worst first; u3 (empty reference) is not scored
        {"speaker": "ann", "utterances": 1, "ref_words": 3, "errors": 2, "wer": 66.67},
        {"speaker": "bob", "utterances": 1, "ref_words": 4, "errors": 2, "wer": 50.0},
    ]
    text = (recipe / "exp" / "infer" / "test" / "errors.txt").read_text()
    assert "cat -> bat" in text and "4 errors" not in text
    assert "66.67       2      3  ann" in text and "speaker (worst first)" in text
    log = (recipe / "exp" / "logs" / "analyze_errors.log").read_text()
    assert "conf/analysis.yaml" in log and "cat -> bat" in log


def test_speaker_table_needs_the_split_index(recipe: Path) -> None:
    (recipe / "data" / "test" / "index.jsonl").unlink()
    with pytest.raises(StageError, match="data/test"):  # checked before it runs
        load_system(recipe).run(["analyze_errors"])
    conf = recipe / "conf" / "analysis.yaml"
    conf.write_text(conf.read_text().split("splits:")[0])  # no splits: no speaker table
    assert main([str(recipe), "--stages", "analyze_errors"]) == 0
    assert "by_speaker" not in json.loads((recipe / "exp" / "infer" / "test" / "errors.json").read_text())


def test_without_inference_it_says_what_to_run(recipe: Path) -> None:
    shutil.rmtree(recipe / "exp" / "infer")
    with pytest.raises(StageError, match="infer stage writes it"):  # checked before it runs
        load_system(recipe).run(["analyze_errors"])


def test_mini_recipe_dry_run_parses_every_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(MINI), "--stages", "all", "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "analyze_errors   conf/analysis.yaml" in out and "top_n: 20" in out
    assert "train_lm         conf/lm.yaml" in out and "recipe: ../lm" in out
