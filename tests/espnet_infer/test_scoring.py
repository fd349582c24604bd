from __future__ import annotations

import json
from pathlib import Path

import pytest
from espnet_infer.scoring import (
    ErrorCounts,
    format_markdown,
    format_summary,
    normalize_text,
    read_text_file,
    score_texts,
    worst_utterances,
    write_scores,
)


def test_counts_match_hand_alignment() -> None:
    result = score_texts(
        {"u1": "the cat sat", "u2": "hello world"},
        {"u1": "the bat sat on", "u2": "hello world"},
    )
    assert result.words == ErrorCounts(hits=4, substitutions=1, deletions=0, insertions=1)
    assert result.wer == pytest.approx(2 / 5)
    assert result.num_sentences == 2 and result.num_sentence_errors == 1
    assert result.ser == 0.5
    u1 = result.utterances[0]
    assert u1.alignment == [
        ("the", "the", "C"),
        ("cat", "bat", "S"),
        ("sat", "sat", "C"),
        ("", "on", "I"),
    ]
    # characters: "the cat sat" (11) vs "the bat sat on": 1 sub, 3 insertions
    assert result.chars == ErrorCounts(hits=10 + 11, substitutions=1, deletions=0, insertions=3)
    assert result.cer == pytest.approx(4 / 22)


def test_missing_and_extra_keys() -> None:
    result = score_texts({"a": "one two", "b": "three"}, {"a": "one two", "z": "extra"},
                         allow_incomplete=True)
    assert result.missing_keys == ["b"] and result.extra_keys == ["z"]
    assert result.words == ErrorCounts(hits=2, deletions=1)
    assert result.utterances[1].missing and result.utterances[1].hyp == ""


def test_incomplete_hypotheses_are_refused_unless_allowed() -> None:
    refs = {f"u{i}": "one two" for i in range(8)}
    hyps = {"u0": "one two", "u1": "one"}
    with pytest.raises(ValueError, match=r"6 of 8 reference utterances have no hypothesis") as info:
        score_texts(refs, hyps)
    message = str(info.value)
    assert "u2, u3, u4, u5, u6 ..." in message and "u7" not in message  # a few keys named
    assert "allow_incomplete=True" in message and "--allow_incomplete" in message
    result = score_texts(refs, hyps, allow_incomplete=True)  # scored as deletions, flagged
    assert not result.complete and len(result.missing_keys) == 6
    assert result.words == ErrorCounts(hits=3, deletions=13)
    assert result.to_dict()["complete"] is False
    assert "INCOMPLETE: 6 of 8 reference(s) without hypothesis" in format_summary(result)
    assert score_texts({"a": "x"}, {"a": "x"}).complete


def test_empty_reference_and_no_refs() -> None:
    result = score_texts({"a": ""}, {"a": "noise"})
    assert result.words.insertions == 1 and result.wer == float("inf")
    assert result.to_dict()["wer"] is None
    assert score_texts({"a": ""}, {"a": ""}).wer == 0.0
    with pytest.raises(ValueError, match="--ref"):
        score_texts({}, {"a": "x"})


def test_normalisation_is_explicit() -> None:
    refs, hyps = {"a": "Don't stop, now."}, {"a": "don't STOP now"}
    assert score_texts(refs, hyps).wer == 1.0
    assert score_texts(refs, hyps, uppercase=True, strip_punctuation=True).wer == 0.0
    assert normalize_text(" a\t 'b'  c-d ", strip_punctuation=True) == "a b c d"


def test_write_scores_is_readable_and_leaves_no_temp_files(tmp_path: Path) -> None:
    result = score_texts({"a": "x y", "b": "z"}, {"a": "x q y"}, allow_incomplete=True)
    json_path, txt_path = write_scores(result, tmp_path / "score")
    data = json.loads(json_path.read_text())
    assert data["words"]["insertions"] == 1 and data["missing_keys"] == ["b"]
    assert data["utterances"][0]["key"] == "a"
    text = txt_path.read_text()
    assert "id: (a)" in text and "Scores: (#C #S #D #I) 2 0 0 1" in text
    assert "REF:  x * y\nHYP:  x q y\nEval:   I" in text
    write_scores(result, tmp_path / "score")  # rerun overwrites cleanly
    assert sorted(p.name for p in (tmp_path / "score").iterdir()) == [
        "result.txt", "scores.json", "scores.md"]
    assert data["utterances"][0]["alignment"] == [["x", "x", "C"], ["", "q", "I"], ["y", "y", "C"]]
    assert data["worst_utterances"] == ["b", "a"]  # 1 error each; b has the higher rate


def test_read_kaldi_and_jsonl(tmp_path: Path) -> None:
    kaldi = tmp_path / "text"
    kaldi.write_text("utt1 hello  world\n\nutt2\nutt3 a b\n", encoding="utf-8")
    assert read_text_file(kaldi) == {"utt1": "hello  world", "utt2": "", "utt3": "a b"}
    jsonl = tmp_path / "hyp.jsonl"
    jsonl.write_text('{"key": "u1", "text": "hi"}\n{"key": "u2", "text": ""}\n')
    assert read_text_file(jsonl) == {"u1": "hi", "u2": ""}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"key": "u1", "text": "hi"}\n{"key": "u2"\n', r"hyp.jsonl:2: invalid JSON"),
        ('{"key": "u1", "text": "hi"}\n[1, 2]\n', r"hyp.jsonl:2: got list"),
        ('{"key": "u1", "text": 3}\n', r"hyp.jsonl:1: needs a non-empty string 'key'"),
        (
            '{"key": "u1", "text": "a"}\n{"key": "u1", "text": "b"}\n',
            r"hyp.jsonl:2: duplicate key 'u1' \(first on line 1\)",
        ),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "hyp.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        read_text_file(path)


def test_kaldi_duplicate_and_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "text"
    path.write_text("a x\nb y\na z\n")
    with pytest.raises(ValueError, match=r"text:3: duplicate key 'a'"):
        read_text_file(path)
    path.write_bytes(b"a \xff\xfe\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_text_file(path)


def test_worst_utterances_and_markdown_table(tmp_path: Path) -> None:
    refs = {"a": "one two three", "b": "four five", "c": "six", "d": "a|b"}
    hyps = {"a": "one two three", "b": "for", "c": "sax", "d": "a|c"}
    result = score_texts(refs, hyps)
    assert [u.key for u in worst_utterances(result, 2)] == ["b", "c"]  # 2 errors, then rate
    assert [u.key for u in worst_utterances(result)] == ["b", "c", "d"]  # no error-free ones
    table = format_markdown({"dev": result, "test": score_texts({"x": "y"}, {"x": "y"})})
    lines = table.splitlines()
    assert lines[0].startswith("| test set | #Snt | #Wrd | WER (%)")
    assert lines[2].startswith("| dev | 4 | 7 | 57.14 | 3 | 1 | 0 |")
    assert lines[3].startswith("| test | 1 | 1 | 0.00 |")
    write_scores(result, tmp_path / "dev", worst=2)
    md = (tmp_path / "dev" / "scores.md").read_text()
    assert md.startswith("# Scores: dev") and "## 2 worst utterances" in md
    assert "| b | 2 | 100.00 | four five | for |" in md
