"""espnet_data.text.sources: text files (plain, gzip, Kaldi), split folders, the mini generator."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from espnet_data.synth import available_voices
from espnet_data.synth.plan import plan_utterance
from espnet_data.text import MiniLMText, SplitText, TextFile, TextSource, write_text_split
from espnet_data.text.sources import key_prefix_of


def test_text_file_plain_and_gzip_give_the_same_keyed_lines(tmp_path: Path) -> None:
    data = b"FIRST LINE\n\nTHIRD \xff LINE\r\nLAST"
    (tmp_path / "corpus.txt").write_bytes(data)
    (tmp_path / "corpus.txt.gz").write_bytes(gzip.compress(data))
    plain = list(TextFile(str(tmp_path / "corpus.txt")).sentences())
    assert plain == [("corpus_00000001", b"FIRST LINE"), ("corpus_00000002", b""),
                     ("corpus_00000003", b"THIRD \xff LINE"), ("corpus_00000004", b"LAST")]
    assert list(TextFile(str(tmp_path / "corpus.txt.gz")).sentences()) == plain
    assert list(TextFile(str(tmp_path / "corpus.txt"), key_prefix="x", max_lines=1).sentences()) == [
        ("x_00000001", b"FIRST LINE")]
    assert isinstance(TextFile("x"), TextSource)
    assert key_prefix_of("librispeech-lm-norm.txt.gz") == "librispeech_lm_norm"


def test_text_file_with_kaldi_keys(tmp_path: Path) -> None:
    (tmp_path / "text").write_bytes(b"utt1 HELLO WORLD\nutt2\n")
    assert list(TextFile(str(tmp_path / "text"), has_keys=True).sentences()) == [
        ("utt1", b"HELLO WORLD"), ("utt2", b"")]
    with pytest.raises(FileNotFoundError, match="missing.txt does not exist"):
        list(TextFile(str(tmp_path / "missing.txt")).sentences())


def test_split_text_reads_asr_transcripts_and_text_splits(tmp_path, tiny_shards) -> None:
    index = [json.loads(line) for line in (tiny_shards / "index.jsonl").read_text().splitlines()]
    asr = list(SplitText(str(tiny_shards)).sentences())
    assert asr == [(r["key"], r["text"]) for r in index]
    write_text_split(asr, tmp_path / "text")
    assert list(SplitText(str(tmp_path / "text")).sentences()) == asr
    assert SplitText("data/train").input_paths() == {"split_dir": "data/train"}
    with pytest.raises(FileNotFoundError, match="create_dataset"):
        list(SplitText(str(tmp_path)).sentences())


def test_mini_lm_text_draws_like_the_corpus_and_leaves_out_dev_and_test(tmp_path) -> None:
    voice = available_voices()[0]
    first = [plan_utterance("lm", i, 3, voice).text for i in range(40)]
    got = list(MiniLMText(num_sentences=40, seed=3).sentences())
    assert [t for _, t in got] == first  # the corpus's own draw, under the split name "lm"
    assert got[0][0] == "mini-lm-0000000"
    # a dev split that holds draws 0 and 5: both are left out, 40 sentences all the same
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "index.jsonl").write_text("".join(
        json.dumps({"key": f"d{i}", "text": first[i], "shard": "x", "duration": 1.0}) + "\n"
        for i in (0, 5)))
    kept = list(MiniLMText(num_sentences=40, seed=3, exclude_splits=[str(dev)]).sentences())
    assert len(kept) == 40 and not {first[0], first[5]} & {t for _, t in kept}
    assert len({k for k, _ in kept}) == 40
    assert MiniLMText(exclude_splits=["a"]).input_paths() == {"exclude_splits[0]": "a"}
    with pytest.raises(ValueError, match="repeat the mini corpus's test split"):
        MiniLMText(stream="test")
