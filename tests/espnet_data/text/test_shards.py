"""espnet_data.text.shards: text splits, bad lines counted with key and reason, resuming."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest
from espnet_data.text import check_text_split, read_text_split, write_text_split
from espnet_data.text.shards import MAX_LISTED, clean_sentence

OLD = 1_000_000_000  # an mtime (2001) that a rewritten file cannot keep


def _sentences(n: int) -> list[tuple[str, str]]:
    return [(f"s{i:04d}", f"WORD {i}  AND\tMORE ") for i in range(n)]


def test_layout_index_and_summary(tmp_path: Path) -> None:
    summary = write_text_split(_sentences(7), tmp_path / "train", sentences_per_shard=3,
                               sentences_per_block=2, sources=["test"])
    out = tmp_path / "train"
    assert sorted(p.name for p in out.glob("shard-*")) == [
        f"shard-00000{i}.{ext}" for i in range(3) for ext in ("json", "tar")]
    with tarfile.open(out / "shard-000000.tar") as tar:
        assert tar.getnames() == ["block000000.txt", "block000000.json",
                                  "block000001.txt", "block000001.json"]
        assert tar.extractfile("block000000.txt").read() == b"WORD 0 AND MORE\nWORD 1 AND MORE\n"
        assert json.loads(tar.extractfile("block000001.json").read()) == {"keys": ["s0002"]}
    rows = check_text_split(out)
    assert [r["num_sentences"] for r in rows] == [3, 3, 1]
    assert rows[0] == {"shard": "shard-000000.tar", "num_sentences": 3, "num_words": 12,
                       "num_chars": 45, "first_key": "s0000", "last_key": "s0002"}
    assert summary["kind"] == "text" and summary["split"] == "train"
    assert (summary["num_lines"], summary["num_sentences"], summary["num_shards"]) == (7, 7, 3)
    assert summary["sources"] == ["test"] and summary["num_rejected"] == 0
    assert json.loads((out / "summary.json").read_text()) == summary
    assert list(read_text_split(out)) == [(f"s{i:04d}", f"WORD {i} AND MORE") for i in range(7)]


def test_empty_and_non_utf8_lines_are_skipped_and_counted_with_key_and_reason(tmp_path) -> None:
    lines = [("good-1", b"HELLO WORLD"), ("blank", b""), ("spaces", "  \t "),
             ("latin1", "CAF\xc9".encode("latin-1")), ("good-2", "CAFÉ OK"),
             ("cut", "Ü".encode()[:1] + b" TAIL")]
    summary = write_text_split(lines, tmp_path / "dev")
    assert summary["num_lines"] == 6 and summary["num_sentences"] == 2
    assert summary["num_rejected"] == 4
    assert summary["rejected_counts"] == {"empty": 2, "not_utf8": 2}
    reasons = {r["key"]: (r["code"], r["reason"]) for r in summary["rejected"]}
    assert reasons["blank"][0] == reasons["spaces"][0] == "empty"
    assert reasons["latin1"] == ("not_utf8", "not UTF-8: unexpected end of data at byte 3 (b'\\xc9')")
    assert reasons["cut"][0] == "not_utf8" and "at byte 0" in reasons["cut"][1]
    assert list(read_text_split(tmp_path / "dev")) == [("good-1", "HELLO WORLD"), ("good-2", "CAFÉ OK")]


def test_rejected_lines_past_the_listing_cap_are_still_counted(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("espnet_data.text.shards.MAX_LISTED", 2)
    summary = write_text_split([(f"e{i}", "") for i in range(5)] + [("ok", "FINE")], tmp_path / "t")
    assert summary["num_rejected"] == 5 and summary["rejected_listed"] == 2
    assert [r["key"] for r in summary["rejected"]] == ["e0", "e1"]
    assert MAX_LISTED >= 1000


def test_nothing_usable_is_an_error_that_names_the_summary(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"no usable sentence out of 2 lines .*summary.json"):
        write_text_split([("a", ""), ("b", b"\xff")], tmp_path / "t")
    assert json.loads((tmp_path / "t" / "summary.json").read_text())["num_rejected"] == 2


def test_rerun_keeps_finished_shards_and_rewrites_changed_ones(tmp_path) -> None:
    out = tmp_path / "train"
    write_text_split(_sentences(6), out, sentences_per_shard=2)
    for path in out.glob("shard-*"):
        os.utime(path, (OLD, OLD))
    changed = _sentences(5)
    changed[3] = ("s0003", "CHANGED")
    summary = write_text_split(changed, out, sentences_per_shard=2)
    assert summary["num_shards"] == 3
    mtimes = {p.name: p.stat().st_mtime for p in out.glob("shard-*.tar")}
    assert mtimes["shard-000000.tar"] == OLD  # same sentences: kept
    assert mtimes["shard-000001.tar"] != OLD and mtimes["shard-000002.tar"] != OLD
    assert not (out / "shard-000003.tar").exists()
    assert dict(read_text_split(out))["s0003"] == "CHANGED"
    (out / "shard-000000.tar").write_bytes(b"truncated")  # damaged: rewritten
    write_text_split(changed, out, sentences_per_shard=2)
    assert len(list(read_text_split(out))) == 5


def test_audio_splits_and_missing_splits_are_told_apart(tmp_path, tiny_shards) -> None:
    with pytest.raises(ValueError, match="split of audio shards"):
        check_text_split(tiny_shards)
    with pytest.raises(FileNotFoundError, match="not a text split"):
        check_text_split(tmp_path)


def test_clean_sentence() -> None:
    assert clean_sentence(b" A\t B \r") == "A B"
    with pytest.raises(ValueError, match="empty"):
        clean_sentence("\n")
