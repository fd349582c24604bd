"""Tests for espnet_data.samples: multi-channel and non-finite audio on the way into a
shard (issue 21). A stereo file whose speech is on one channel only is kept (mixed down
to mono), not rejected as silence; a file with NaN/Inf samples is skipped and counted
with its key, the file and how many samples are bad."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from espnet_data import Entry, ShardDataset, shard_paths, write_split
from espnet_data.samples import SampleOptions, prepare_sample
from espnet_data.testing import ListCorpus, tone


def _right_only(path: Path, seconds: float = 0.5) -> np.ndarray:
    right = tone(seconds, freq=440.0)
    sf.write(path, np.stack([np.zeros_like(right), right], axis=1), 16000, subtype="PCM_16")
    return sf.read(path, dtype="float32")[0][:, 1]


def test_right_only_stereo_file_is_mixed_down_not_rejected_as_silence(tmp_path: Path) -> None:
    right = _right_only(tmp_path / "stereo.wav")
    corpus = ListCorpus({"train": [Entry("st", "HELLO", source=str(tmp_path / "stereo.wav"))]})
    summary = write_split(corpus, "train", tmp_path / "out")
    assert summary["rejected"] == [] and summary["num_utterances"] == 1
    (sample,) = list(ShardDataset(shard_paths(tmp_path / "out")))
    np.testing.assert_allclose(sample["audio"], right / 2, atol=1 / 32768)


def test_stereo_array_from_a_corpus_is_mixed_down(tmp_path: Path) -> None:
    right = tone(0.5)
    stereo = np.stack([np.zeros_like(right), right], axis=1)  # (frames, channels)
    corpus = ListCorpus({"train": [Entry("st", "HELLO", source=(stereo, 16000))]})
    prepared = prepare_sample(corpus, corpus.entries("train")[0], SampleOptions())
    decoded, rate = sf.read(__import__("io").BytesIO(prepared.audio), dtype="float32")
    assert decoded.ndim == 1 and rate == 16000
    np.testing.assert_allclose(decoded, right / 2, atol=1 / 32768)
    assert prepared.meta["duration"] == 0.5


def test_non_finite_file_is_skipped_and_counted_with_its_key_and_file(tmp_path: Path) -> None:
    bad = tone(0.5)
    bad[10:13] = [np.nan, np.inf, -np.inf]
    sf.write(tmp_path / "nan.wav", bad, 16000, subtype="FLOAT")
    entries = [
        Entry("good", "HELLO", source=(tone(0.5), 16000)),
        Entry("nan", "HELLO", source=str(tmp_path / "nan.wav")),
    ]
    summary = write_split(ListCorpus({"train": entries}), "train", tmp_path / "out")
    assert summary["num_utterances"] == 1
    (row,) = summary["rejected"]
    assert row["key"] == "nan" and row["code"] == "bad_audio"
    assert "nan.wav" in row["reason"] and "3 of 8000 samples" in row["reason"]
