"""Tests for espnet_data.corpora.hard: the embedded book-sentence corpus preset."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from espnet_data import Corpus, read_index, write_split
from espnet_data.corpora import HardCorpus
from espnet_data.synth import voice_group
from espnet_data.synth.books import sentence_pool
from espnet_data.synth.voices import sample_voice_groups, voice_groups

SIZES = {"train": 30, "dev": 6, "test": 6}


def test_is_a_picklable_corpus_with_the_issue_sizes_by_default() -> None:
    corpus = HardCorpus(utterances=SIZES)
    assert isinstance(corpus, Corpus)
    assert corpus.splits() == ["train", "dev", "test"]
    assert pickle.loads(pickle.dumps(corpus)).entries("dev") == corpus.entries("dev")
    default = HardCorpus()
    assert default.utterances == {"train": 3000, "dev": 300, "test": 300}
    assert default.voice_groups == 20


def test_entries_are_deterministic_and_follow_the_seed() -> None:
    first = HardCorpus(utterances=SIZES).entries("train")
    assert first == HardCorpus(utterances=SIZES).entries("train")
    assert [(e.key, e.text) for e in first] != [
        (e.key, e.text) for e in HardCorpus(utterances=SIZES, seed=1).entries("train")
    ]
    keys = [e.key for e in first]
    assert len(set(keys)) == len(keys) and all(k.startswith("hard-train-") for k in keys)
    assert len({e.text for e in first}) == len(first)  # no sentence twice in a small split
    bigger = HardCorpus(utterances={**SIZES, "train": 45}).entries("train")
    assert [e.key for e in bigger[:30]] == keys


def test_twenty_voice_groups_and_test_voices_never_heard_in_training() -> None:
    corpus = HardCorpus(utterances=SIZES)
    voices = corpus.voices()
    groups = {s: {voice_group(v) for v in vs} for s, vs in voices.items()}
    assert sum(len(g) for g in groups.values()) == 20
    assert (len(groups["test"]), len(groups["dev"]), len(groups["train"])) == (3, 3, 14)
    for a, b in (("train", "test"), ("train", "dev"), ("dev", "test")):
        assert not groups[a] & groups[b]
    for split in SIZES:
        assert {e.speaker for e in corpus.entries(split)} <= set(voices[split])
    assert sample_voice_groups(20, seed=0) == sample_voice_groups(20, seed=0)
    assert sample_voice_groups(20, seed=0) != sample_voice_groups(20, seed=1)
    with pytest.raises(ValueError, match=r"num_groups=999: espeak-ng ships \d+ voice groups"):
        sample_voice_groups(999)
    assert len(voice_groups(sample_voice_groups(5))) == 5


def test_dev_and_test_sentences_are_held_out_from_the_training_text() -> None:
    corpus = HardCorpus(utterances=SIZES)
    pools = sentence_pool(seed=0)
    train_text = {t for t, _ in pools["train"]}
    for split in ("dev", "test"):
        assert not {e.text for e in corpus.entries(split)} & train_text
    assert {e.text for e in corpus.entries("train")} <= train_text


def test_about_half_of_the_utterances_are_noisy() -> None:
    plan = [e.source for e in HardCorpus(utterances={"train": 200}).entries("train")]
    noisy = sum(u.snr_db is not None for u in plan)
    assert 70 < noisy < 130


def test_unknown_split_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"splits \['valid'\].*rename them"):
        HardCorpus(utterances={"train": 2, "valid": 2})
    with pytest.raises(ValueError, match=r"'extra'"):
        HardCorpus(utterances=SIZES).entries("extra")


def test_same_seed_writes_byte_identical_index_and_text(tmp_path) -> None:
    sizes = {"train": 2, "dev": 2, "test": 2}
    a = write_split(HardCorpus(utterances=sizes), "test", tmp_path / "a")
    write_split(HardCorpus(utterances=sizes), "test", tmp_path / "b")
    write_split(HardCorpus(utterances=sizes, seed=1), "test", tmp_path / "c")
    assert a["num_utterances"] == 2 and a["num_rejected"] == 0
    index = (tmp_path / "a" / "index.jsonl").read_bytes()
    assert index == (tmp_path / "b" / "index.jsonl").read_bytes()
    assert index != (tmp_path / "c" / "index.jsonl").read_bytes()
    texts = [r["text"] for r in read_index(tmp_path / "a")]
    assert texts == [e.text for e in HardCorpus(utterances=sizes).entries("test")]
    assert texts != [r["text"] for r in read_index(tmp_path / "c")]


def test_load_audio_is_16k_float32_speech_and_repeatable() -> None:
    corpus = HardCorpus(utterances=SIZES)
    entry = corpus.entries("test")[0]
    audio, rate = corpus.load_audio(entry)
    assert rate == 16000 and audio.dtype == np.float32 and audio.ndim == 1
    assert 0.5 < len(audio) / rate < 15.0
    np.testing.assert_array_equal(audio, corpus.load_audio(entry)[0])
