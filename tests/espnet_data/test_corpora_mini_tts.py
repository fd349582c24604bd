"""espnet_data.corpora.MiniTTSCorpus and the synth preset behind it (plan_single_voice)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from espnet_data import Corpus, ShardOptions, read_index, write_splits
from espnet_data.corpora import MiniTTSCorpus
from espnet_data.synth import split_voices, vocabulary
from espnet_data.synth.plan import plan_corpus, plan_single_voice
from espnet_data.synth.voices import UnknownVoiceError
from espnet_data.tts import Phonemizer


def test_one_voice_one_rate_and_pitch_no_noise() -> None:
    plan = plan_single_voice("train", 30, seed=0, voice="m3", rate=170, pitch=45)
    assert {(u.speaker, u.rate, u.pitch, u.speed, u.snr_db) for u in plan} == {
        ("m3", 170, 45, 1.0, None)
    }
    assert [u.key for u in plan[:2]] == ["minitts-train-000000", "minitts-train-000001"]
    assert plan == plan_single_voice("train", 30, seed=0, voice="m3", rate=170, pitch=45)
    assert plan != plan_single_voice("train", 30, seed=1, voice="m3", rate=170, pitch=45)
    # drawn from streams of their own: not the mini ASR corpus's sentences by index
    asr = plan_corpus("train", 30, seed=0, voices=["m3"])
    assert sum(a.text == b.text for a, b in zip(plan, asr, strict=True)) < 5


def test_excluded_sentences_are_replaced() -> None:
    first = plan_single_voice("train", 20, seed=0, voice="m3")
    held = {first[3].text, first[7].text}
    plan = plan_single_voice("train", 20, seed=0, voice="m3", exclude=held)
    assert len(plan) == 20 and not held & {u.text for u in plan}
    with pytest.raises(ValueError, match="were not excluded"):
        plan_single_voice("train", 2, seed=0, voice="m3",
                          exclude={u.text for u in plan_single_voice("train", 1100, 0, "m3")})


def test_bad_settings_are_refused() -> None:
    with pytest.raises(UnknownVoiceError, match="'nobody'"):
        MiniTTSCorpus(voice="nobody")
    with pytest.raises(ValueError, match="rate=20"):
        plan_single_voice("train", 1, seed=0, voice="m3", rate=20)
    with pytest.raises(ValueError, match="split='a-b'"):
        plan_single_voice("a-b", 1, seed=0, voice="m3")
    with pytest.raises(ValueError, match=">= 0"):
        MiniTTSCorpus(utterances={"train": -1})


def test_the_default_voice_is_one_the_mini_asr_pack_was_trained_on() -> None:
    corpus = MiniTTSCorpus()
    assert corpus.voice in split_voices(0, test_groups=8, dev_groups=4)["train"]
    assert corpus.utterances == {"train": 2800, "dev": 100, "test": 100}


def test_entries_speak_the_text_and_keep_the_asr_transcript() -> None:
    corpus = MiniTTSCorpus(utterances={"train": 200, "dev": 20, "test": 20})
    assert isinstance(corpus, Corpus) and corpus.splits() == ["train", "dev", "test"]
    assert pickle.loads(pickle.dumps(corpus)).entries("test") == corpus.entries("test")
    words = vocabulary()
    g2p = Phonemizer()
    for entry in corpus.entries("dev"):
        assert entry.speaker == "m3"
        assert set(entry.extra["transcript"].split()) <= words
        assert g2p(entry.text)  # every spoken text is phonemised
    held = {e.extra["transcript"] for split in ("dev", "test") for e in corpus.entries(split)}
    train = corpus.entries("train")
    assert len(train) == 200 and not held & {e.extra["transcript"] for e in train}
    with pytest.raises(ValueError, match="'eval'"):
        corpus.entries("eval")


def test_shards_are_the_same_for_one_or_two_workers(tmp_path) -> None:
    corpus = MiniTTSCorpus(utterances={"train": 6, "test": 2})
    options = ShardOptions(sample_rate=16000, min_duration=0.3)
    for workers in (1, 2):
        write_splits(corpus, corpus.splits(), tmp_path / str(workers), options=options,
                     utterances_per_shard=4, num_workers=workers, progress=False)
    for name in ("train/shard-000000.tar", "train/shard-000001.tar", "test/shard-000000.tar"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()
    rows = read_index(tmp_path / "1" / "test")
    assert rows[0]["transcript"] == corpus.entries("test")[0].extra["transcript"]
    audio, rate = corpus.load_audio(corpus.entries("test")[0])
    assert rate == 16000 and audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
