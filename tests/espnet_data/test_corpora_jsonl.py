"""Tests for espnet_data.corpora.jsonl: NeMo-style JSONL manifests as a corpus."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from espnet_data import Corpus, read_index, write_split
from espnet_data.corpora import JsonlManifestCorpus
from espnet_data.corpora._spans import Span, read_span, safe_key
from espnet_data.testing import tone


def _lines(path: Path, rows: list[dict | str | bytes]) -> Path:
    out = b""
    for row in rows:
        data = row if isinstance(row, bytes) else (row if isinstance(row, str) else json.dumps(row)).encode()
        out += data + b"\n"
    path.write_bytes(out)
    return path


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """spk1/a{1,2,3}.flac (1 s), spk2/a1.flac (1 s, 8 kHz), long.flac (3 s, stereo), a
    train manifest with good and bad rows, a dev manifest with an absolute path."""
    (tmp_path / "wavs" / "spk1").mkdir(parents=True)
    (tmp_path / "wavs" / "spk2").mkdir()
    for name in ("a1", "a2", "a3"):
        sf.write(tmp_path / f"wavs/spk1/{name}.flac", tone(1.0, 16000, 300.0), 16000, subtype="PCM_16")
    sf.write(tmp_path / "wavs/spk2/a1.flac", tone(1.0, 8000, 500.0), 8000, subtype="PCM_16")
    stereo = np.stack([tone(3.0, 16000, 200.0), tone(3.0, 16000, 900.0)], axis=1)
    sf.write(tmp_path / "wavs/long.flac", stereo, 16000, subtype="PCM_16")
    _lines(tmp_path / "train.json", [
        {"audio_filepath": "wavs/spk1/a1.flac", "duration": 1.0, "text": "hello  world", "speaker": "s1"},
        {"audio_filepath": "wavs/spk2/a1.flac", "duration": 1.0, "text": "eight kilo", "spk": 2},
        {"audio_filepath": "wavs/long.flac", "offset": 0.5, "duration": 1.0, "text": "first part"},
        {"audio_filepath": "wavs/long.flac", "offset": 2.0, "duration": 0.75, "text": "second part"},
        {"audio_filepath": "wavs/long.flac", "offset": 2.8, "duration": 0.5, "text": "overshoot"},
        {"audio_filepath": "wavs/long.flac", "offset": 5.0, "duration": 1.0, "text": "too late"},
        {"audio_filepath": "wavs/gone.flac", "duration": 1.0, "text": "no file"},
        {"audio_filepath": "wavs/spk1/a2.flac", "duration": 1.0},
        {"duration": 1.0, "text": "no path"},
        {"audio_filepath": "wavs/long.flac", "offset": "x", "duration": 1.0, "text": "bad offset"},
        "{not json",
        b'{"audio_filepath": "wavs/spk1/a3.flac", "offset": 0.1, "duration": 0.5, "text": "caf\xe9"}',
    ])
    _lines(tmp_path / "dev.json", [
        {"audio_filepath": str(tmp_path / "wavs/spk1/a1.flac"), "duration": 1.0001, "text": "whole"},
    ])
    return tmp_path


def _corpus(folder: Path, **kwargs: object) -> JsonlManifestCorpus:
    return JsonlManifestCorpus(
        manifests={"train": str(folder / "train.json"), "dev": str(folder / "dev.json")}, **kwargs
    )


def test_entries_keys_speakers_and_segments(corpus_dir: Path) -> None:
    corpus = _corpus(corpus_dir)
    assert isinstance(corpus, Corpus) and corpus.splits() == ["train", "dev"]
    entries = corpus.entries("train")
    keys = [e.key for e in entries]
    # relative to the folder the files share; a file with several rows adds its offset (ms)
    assert keys == ["spk1-a1", "spk2-a1", "long-00000500", "long-00002000", "long-00002800",
                    "long-00005000", "gone", "spk1-a2", "train-line000009", "long-line10",
                    "train-line000011", "spk1-a3"]
    assert all("." not in k for k in keys)
    by_key = {e.key: e for e in entries}
    assert by_key["spk1-a1"].speaker == "s1" and by_key["spk2-a1"].speaker == "2"
    assert by_key["long-00002000"].source == Span(str(corpus_dir / "wavs/long.flac"), 2.0, 0.75)
    assert pickle.loads(pickle.dumps(corpus)) == corpus
    # one file in the split: its stem is the key
    assert [e.key for e in corpus.entries("dev")] == ["a1"]


def test_segments_read_only_their_frames(corpus_dir: Path) -> None:
    corpus = _corpus(corpus_dir)
    by_key = {e.key: e for e in corpus.entries("train")}
    stereo, _ = sf.read(corpus_dir / "wavs/long.flac", dtype="float32")
    audio, rate = corpus.load_audio(by_key["long-00000500"])
    assert rate == 16000
    np.testing.assert_array_equal(audio, stereo[8000:24000].mean(axis=1, dtype=np.float32))
    picked = _corpus(corpus_dir, channel=1)
    audio, _ = picked.load_audio(by_key["long-00002000"])
    np.testing.assert_array_equal(audio, stereo[32000:44000, 1])
    # ends 0.3 s past the file: clipped, as Kaldi's --max-overshoot
    audio, _ = corpus.load_audio(by_key["long-00002800"])
    assert len(audio) == 48000 - 44800


def test_write_split_keeps_good_rows_and_rejects_bad_ones(tmp_path: Path, corpus_dir: Path) -> None:
    corpus = _corpus(corpus_dir)
    summary = write_split(corpus, "train", tmp_path / "data/train", utterances_per_shard=3,
                          num_workers=2)
    codes = {r["key"]: r["code"] for r in summary["rejected"]}
    reasons = {r["key"]: r["reason"] for r in summary["rejected"]}
    assert codes == {
        "long-00005000": "unreadable_audio", "gone": "unreadable_audio",
        "spk1-a2": "missing_transcript", "train-line000009": "unreadable_audio",
        "long-line10": "unreadable_audio", "train-line000011": "unreadable_audio",
        "spk1-a3": "bad_text_encoding",
    }
    assert "starts at 5.00 s, after the end of" in reasons["long-00005000"]
    assert "gone.flac does not exist" in reasons["gone"]
    assert "train.json line 9 has no audio_filepath" in reasons["train-line000009"]
    assert "offset 'x' is not a number of seconds" in reasons["long-line10"]
    assert "train.json line 11 is not JSON" in reasons["train-line000011"]
    rows = {r["key"]: r for r in read_index(tmp_path / "data/train")}
    assert set(rows) == {"spk1-a1", "spk2-a1", "long-00000500", "long-00002000", "long-00002800"}
    assert rows["spk1-a1"]["text"] == "hello world" and rows["spk1-a1"]["speaker"] == "s1"
    assert rows["spk2-a1"]["duration"] == pytest.approx(1.0)  # resampled from 8 kHz
    assert rows["long-00002000"]["duration"] == pytest.approx(0.75)
    assert summary["num_utterances"] == 5 and summary["num_rejected"] == 7


def test_a_whole_file_is_stored_as_it_is(tmp_path: Path, corpus_dir: Path) -> None:
    corpus = _corpus(corpus_dir)
    summary = write_split(corpus, "dev", tmp_path / "dev")  # duration 1.0001: the whole file
    assert summary["num_utterances"] == 1 and summary["stored_original"] == 1


def test_key_field(tmp_path: Path, corpus_dir: Path) -> None:
    manifest = _lines(tmp_path / "ids.jsonl", [
        {"id": "utt.1", "audio_filepath": "wavs/spk1/a1.flac", "text": "a"},
        {"audio_filepath": "wavs/spk1/a1.flac", "text": "b"},
    ])
    corpus = JsonlManifestCorpus(manifests={"test": [str(manifest)]}, key_field="id")
    first, second = corpus.entries("test")
    assert first.key == "utt_1" and second.key == "ids-line000002"
    with pytest.raises(ValueError, match="has no 'id'"):
        corpus.load_audio(second)


def test_a_missing_manifest_is_an_error(tmp_path: Path) -> None:
    corpus = JsonlManifestCorpus(manifests={"train": str(tmp_path / "nope.json")})
    with pytest.raises(FileNotFoundError, match="nope.json .manifests\\['train'\\]. does not exist"):
        corpus.entries("train")


def test_safe_key_and_read_span(tmp_path: Path) -> None:
    assert safe_key("a.b/c d\\e") == "a_b_c_d_e"
    path = tmp_path / "x.wav"
    sf.write(path, tone(1.0), 16000, subtype="PCM_16")
    whole, _ = sf.read(path, dtype="float32")
    audio, rate = read_span(path.read_bytes(), 0.25, 0.5)
    np.testing.assert_array_equal(audio, whole[4000:12000])
    with pytest.raises(ValueError, match="past the end"):
        read_span(str(path), 0.0, 2.0)
