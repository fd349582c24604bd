"""espnet_data.tts.samples: a split written by create_dataset, read as TTS samples."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from espnet_data import ShardOptions, write_splits
from espnet_data.corpora import MiniTTSCorpus
from espnet_data.tts.samples import (
    TTSSample,
    read_texts,
    read_transcripts,
    read_tts_samples,
    to_tts_samples,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    corpus = MiniTTSCorpus(utterances={"train": 5, "test": 3})
    write_splits(corpus, corpus.splits(), out, options=ShardOptions(sample_rate=16000),
                 utterances_per_shard=2, progress=False)
    return out


def test_samples_carry_text_transcript_audio_and_speaker(data) -> None:
    samples = list(read_tts_samples(data / "train"))
    corpus = MiniTTSCorpus(utterances={"train": 5, "test": 3})
    entries = corpus.entries("train")
    assert [s.key for s in samples] == [e.key for e in entries]  # shard order = entry order
    for sample, entry in zip(samples, entries, strict=True):
        assert isinstance(sample, TTSSample)
        assert sample.text == entry.text and sample.transcript == entry.extra["transcript"]
        assert sample.speaker == "m3" and sample.sample_rate == 16000
        assert sample.audio.dtype == np.float32 and sample.audio.ndim == 1
        assert 0.3 < sample.duration < 10
    assert samples[0].text.endswith(".") and samples[0].transcript.isupper()


def test_keys_select_utterances_and_their_shards_only(data) -> None:
    wanted = ["minitts-train-000004", "minitts-train-000001", "nowhere"]
    keys = [s.key for s in read_tts_samples(data / "train", keys=wanted)]
    assert keys == ["minitts-train-000001", "minitts-train-000004"]
    assert list(read_tts_samples(data / "train", keys=["nowhere"])) == []


def test_texts_and_transcripts_come_from_the_index(data) -> None:
    texts = read_texts(data / "test")
    transcripts = read_transcripts(data / "test")
    assert list(texts) == list(transcripts) == [f"minitts-test-{i:06d}" for i in range(3)]
    assert all(t.endswith(".") for t in texts.values())
    assert all(t == t.upper() and "." not in t for t in transcripts.values())


def test_without_a_stored_transcript_the_text_is_the_reference() -> None:
    raw = [{"key": "LJ1", "text": "Hello there.", "audio": [0.0, 0.1], "sample_rate": 22050}]
    (sample,) = to_tts_samples(raw)
    assert sample.transcript == "Hello there." and sample.speaker == ""
    assert sample.audio.dtype == np.float32


def test_a_split_never_written_says_which_stage_makes_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="create_dataset"):
        list(read_tts_samples(tmp_path / "train"))
    with pytest.raises(FileNotFoundError, match="create_dataset"):
        read_texts(tmp_path / "train")


def test_a_broken_sample_follows_the_error_policy(data, tmp_path) -> None:
    split = tmp_path / "test"
    shutil.copytree(data / "test", split)
    shard = split / "shard-000000.tar"
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(shard, "w") as tar:
        for member, blob in members:
            if member.name.endswith(".flac") and "000000" in member.name:
                blob = b"not audio"
                member.size = len(blob)
            tar.addfile(member, io.BytesIO(blob))
    keys = [s.key for s in read_tts_samples(split)]  # default: warn and skip
    assert keys == ["minitts-test-000001", "minitts-test-000002"]

    def reraise(err: Exception) -> bool:
        raise err

    with pytest.raises(Exception, match="minitts-test-000000"):
        list(read_tts_samples(split, handler=reraise))
