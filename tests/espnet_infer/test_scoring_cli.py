from __future__ import annotations

import json
from pathlib import Path

import pytest
from espnet_infer import score_cli


def test_prints_table_and_writes_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.jsonl"
    ref.write_text("u1 the cat sat\nu2 hello world\n")
    hyp.write_text('{"key": "u1", "text": "the bat sat"}\n')
    status = score_cli.main(["--ref", str(ref), "--hyp", str(hyp), "--out", str(tmp_path / "o"),
                             "--allow-incomplete"])
    out = capsys.readouterr().out
    assert status == 0
    assert "| WER" in out and "| CER" in out and "scored as deletions: u2" in out
    scores = json.loads((tmp_path / "o" / "scores.json").read_text())
    assert scores["wer"] == pytest.approx(3 / 5)
    assert (tmp_path / "o" / "result.txt").exists()


def test_incomplete_hypotheses_exit_2_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("u1 the cat sat\nu2 hello world\nu3 good bye\n")
    hyp.write_text("u1 the cat sat\n")
    assert score_cli.main([str(ref), str(hyp), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(hyp) in err and "2 of 3" in err and "u2, u3" in err and "--allow_incomplete" in err
    assert not (tmp_path / "o").exists()  # no scores of an incomplete set by default
    assert score_cli.main([str(ref), str(hyp), "--allow_incomplete"]) == 0
    assert "INCOMPLETE: 2 of 3" in capsys.readouterr().out


def test_bad_input_exits_2_with_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = tmp_path / "ref.txt"
    ref.write_text("u1 a\n")
    status = score_cli.main(["--ref", str(ref), "--hyp", str(tmp_path / "missing.txt")])
    assert status == 2
    assert "missing.txt" in capsys.readouterr().err


def test_help_and_usage_docstring(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        score_cli.main(["--help"])
    assert exc.value.code == 0
    assert "--strip_punctuation" in capsys.readouterr().out
    assert score_cli.__doc__ is not None and "Usage:" in score_cli.__doc__


def test_positional_ref_and_hyp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("u1 the cat sat\nu2 hello world\n")
    hyp.write_text("u1 the bat sat\nu2 hello world\n")
    assert score_cli.main([str(ref), str(hyp), "--out", str(tmp_path / "o"), "--worst", "1"]) == 0
    out = capsys.readouterr().out
    assert "| WER" in out and "worst utterances: u1 (1)" in out
    assert (tmp_path / "o" / "scores.md").read_text().startswith("# Scores: o")
    with pytest.raises(SystemExit):
        score_cli.main([str(ref), str(hyp), "--ref", str(ref)])
    assert "give REF once" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        score_cli.main([str(ref)])
    assert "missing HYP" in capsys.readouterr().err
