"""Tests for espnet_data.corpora.mini: the embedded synthesised corpus."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from espnet_data import Corpus, ShardDataset, read_index, shard_paths, write_split
from espnet_data.corpora import MiniCorpus
from espnet_data.synth import voice_group

SIZES = {"train": 40, "dev": 8, "test": 8}


def test_is_a_picklable_corpus() -> None:
    corpus = MiniCorpus(utterances=SIZES)
    assert isinstance(corpus, Corpus)
    assert corpus.splits() == ["train", "dev", "test"]
    assert pickle.loads(pickle.dumps(corpus)).entries("dev") == corpus.entries("dev")


def test_entries_are_deterministic_and_follow_the_seed() -> None:
    first = MiniCorpus(utterances=SIZES).entries("train")
    assert first == MiniCorpus(utterances=SIZES).entries("train")
    assert first != MiniCorpus(utterances=SIZES, seed=1).entries("train")
    assert len(first) == 40
    keys = [e.key for e in first]
    assert len(set(keys)) == len(keys) and not any("." in k for k in keys)
    assert all(e.text.strip() and e.text == e.text.upper() for e in first)
    # a bigger split starts with the same utterances
    bigger = MiniCorpus(utterances={**SIZES, "train": 60}).entries("train")
    assert [e.key for e in bigger[:40]] == keys


def test_splits_have_disjoint_speakers_and_voice_groups() -> None:
    corpus = MiniCorpus(utterances=SIZES)
    speakers = {s: {e.speaker for e in corpus.entries(s)} for s in SIZES}
    groups = {s: {voice_group(v) for v in vs} for s, vs in speakers.items()}
    for a, b in (("train", "test"), ("train", "dev"), ("dev", "test")):
        assert not speakers[a] & speakers[b]
        assert not groups[a] & groups[b]
    assert len(groups["test"]) > 1


def test_unknown_split_is_a_clear_error() -> None:
    corpus = MiniCorpus(utterances=SIZES)
    with pytest.raises(ValueError, match=r"'valid'.*\['train', 'dev', 'test'\]"):
        corpus.entries("valid")
    with pytest.raises(ValueError, match="not for split 'extra'"):
        MiniCorpus(utterances={**SIZES, "extra": 2}).entries("extra")


def test_load_audio_is_16k_float32_speech() -> None:
    corpus = MiniCorpus(utterances=SIZES)
    entry = corpus.entries("test")[0]
    audio, rate = corpus.load_audio(entry)
    assert rate == 16000 and audio.dtype == np.float32 and audio.ndim == 1
    assert 0.3 < len(audio) / rate < 10.0
    assert np.isfinite(audio).all() and 0.05 < np.abs(audio).max() <= 1.0
    again, _ = corpus.load_audio(entry)
    np.testing.assert_array_equal(audio, again)


def test_writes_a_split_that_reads_back(tmp_path) -> None:
    corpus = MiniCorpus(utterances={"train": 4, "dev": 2, "test": 2})
    summary = write_split(corpus, "dev", tmp_path)
    assert summary["num_utterances"] == 2 and summary["num_rejected"] == 0
    samples = list(ShardDataset(shard_paths(tmp_path)))
    assert [s["key"] for s in samples] == [e.key for e in corpus.entries("dev")]
    assert [s["text"] for s in samples] == [r["text"] for r in read_index(tmp_path)]
