"""Tests for espnet_data.corpora.hf: Hugging Face datasets as a corpus (datasets made here)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, Dataset, DatasetDict
from espnet_data import Corpus, read_index, write_split
from espnet_data.corpora import HFDatasetCorpus
from espnet_data.testing import tone
from huggingface_hub import constants


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    sf.write(tmp_path / "a.flac", tone(1.0, 16000, 300.0), 16000, subtype="PCM_16")
    sf.write(tmp_path / "b.wav", tone(0.5, 8000, 500.0), 8000, subtype="PCM_16")
    stereo = np.stack([tone(1.0, 16000, 200.0), tone(1.0, 16000, 900.0)], axis=1)
    sf.write(tmp_path / "c.flac", stereo, 16000, subtype="PCM_16")
    return {p.stem: p for p in tmp_path.iterdir()}


@pytest.fixture
def saved(tmp_path: Path, files: dict[str, Path]) -> Path:
    """A DatasetDict saved to disk: train (Audio, embedded) with bad rows, validation."""
    train = Dataset.from_dict({
        "audio": [str(files["a"]), str(files["b"]), str(files["c"]), str(files["a"]), None],
        "text": ["hello  world", "eight kilo", "stereo", None, "no audio"],
        "speaker_id": [7, 8, 9, 7, None],
        "id": ["u.1", "u.2", "u.3", "u.4", "u.5"],
    }).cast_column("audio", Audio())
    junk = Dataset.from_dict({
        "audio": [{"bytes": b"not audio", "path": "junk.wav"}], "text": ["junk"],
        "speaker_id": [1], "id": ["u.6"],
    }).cast_column("audio", Audio(decode=False)).cast(train.features)
    validation = Dataset.from_dict({"audio": [str(files["a"])], "text": ["dev"],
                                    "speaker_id": [1], "id": ["v1"]}).cast_column("audio", Audio())
    folder = tmp_path / "saved"
    DatasetDict({"train": datasets.concatenate_datasets([train, junk]),
                 "validation": validation}).save_to_disk(str(folder))
    return folder


def test_entries_from_columns_only(saved: Path) -> None:
    corpus = HFDatasetCorpus(path=str(saved), key_column="id", speaker_column="speaker_id",
                             split_map={"train": "train", "dev": ["validation"]})
    assert isinstance(corpus, Corpus) and corpus.splits() == ["train", "dev"]
    entries = corpus.entries("train")
    assert [e.key for e in entries] == ["u_1", "u_2", "u_3", "u_4", "u_5", "u_6"]
    assert [e.speaker for e in entries] == ["7", "8", "9", "7", "", "1"]
    assert entries[3].text is None
    restored = pickle.loads(pickle.dumps(corpus))
    assert restored._data is None and restored.entries("dev")[0].key == "v1"
    audio, rate = restored.load_audio(entries[0])
    np.testing.assert_array_equal(audio, sf.read(saved.parent / "a.flac", dtype="float32")[0])


def test_write_split_keeps_good_rows_and_rejects_bad_ones(tmp_path: Path, saved: Path) -> None:
    corpus = HFDatasetCorpus(path=str(saved), key_column="id", speaker_column="speaker_id")
    assert corpus.splits() == ["train", "validation"]
    summary = write_split(corpus, "train", tmp_path / "train", utterances_per_shard=2, num_workers=2)
    codes = {r["key"]: r["code"] for r in summary["rejected"]}
    reasons = {r["key"]: r["reason"] for r in summary["rejected"]}
    assert codes == {"u_4": "missing_transcript", "u_5": "unreadable_audio",
                     "u_6": "unreadable_audio"}
    assert "audio of u_5: the audio column is empty in this row" in reasons["u_5"]
    assert "cannot decode audio u_6 (junk.wav)" in reasons["u_6"]
    rows = {r["key"]: r for r in read_index(tmp_path / "train")}
    assert set(rows) == {"u_1", "u_2", "u_3"}
    assert rows["u_1"]["text"] == "hello world" and rows["u_1"]["speaker"] == "7"
    assert rows["u_2"]["duration"] == pytest.approx(0.5)  # resampled from 8 kHz


def test_default_keys_and_a_channel(saved: Path) -> None:
    corpus = HFDatasetCorpus(path=str(saved), channel=1)
    entries = corpus.entries("train")
    assert entries[0].key == "train-0000000" and entries[0].speaker == ""
    stereo, _ = sf.read(saved.parent / "c.flac", dtype="float32")
    np.testing.assert_array_equal(corpus.load_audio(entries[2])[0], stereo[:, 1])


def test_path_and_array_columns(tmp_path: Path, files: dict[str, Path]) -> None:
    """A local data folder for load_dataset: paths as strings, arrays as lists."""
    data = tmp_path / "folder" / "data"
    data.mkdir(parents=True)
    Dataset.from_dict({
        "file": [str(files["a"]), str(tmp_path / "gone.wav")],
        "sentence": ["a path", "a lost path"],
    }).to_parquet(str(data / "train-00000-of-00001.parquet"))
    corpus = HFDatasetCorpus(name=str(tmp_path / "folder"), cache_dir=str(tmp_path / "cache"),
                             audio_column="file", text_column="sentence")
    summary = write_split(corpus, "train", tmp_path / "out", progress=False)
    assert summary["num_utterances"] == 1
    assert "gone.wav does not exist" in summary["rejected"][0]["reason"]
    arrays = tmp_path / "arrays"
    Dataset.from_dict({"audio": [{"array": tone(0.5, 8000).tolist(), "sampling_rate": 8000}],
                       "text": ["an array"]}).save_to_disk(str(arrays))
    corpus = HFDatasetCorpus(path=str(arrays))
    assert corpus.splits() == ["train"]
    audio, rate = corpus.load_audio(corpus.entries("train")[0])
    assert rate == 8000 and len(audio) == 4000


def test_a_hub_dataset_is_read_from_the_cache_offline(tmp_path: Path, files: dict[str, Path]) -> None:
    """The cache load_dataset leaves, laid out as a Hub dataset's (someone/tiny)."""
    repo = tmp_path / "repo" / "data"
    repo.mkdir(parents=True)
    Dataset.from_dict({"audio": [str(files["a"])], "text": ["from the hub"]}).cast_column(
        "audio", Audio(decode=False)
    ).to_parquet(str(repo / "train-00000-of-00001.parquet"))
    cache = tmp_path / "cache"
    datasets.load_dataset(str(repo.parent), cache_dir=str(cache))
    built = next((cache / "repo").glob("*/*/*/dataset_info.json")).parent
    hub = cache / "someone___tiny" / built.relative_to(cache / "repo")
    shutil.copytree(built, hub)
    (hub / "repo-train.arrow").rename(hub / "tiny-train.arrow")
    before = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    corpus = HFDatasetCorpus(name="someone/tiny", cache_dir=str(cache))
    summary = write_split(corpus, "train", tmp_path / "out")
    assert summary["num_utterances"] == 1
    assert (datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE) == before
    missing = HFDatasetCorpus(name="someone/absent", cache_dir=str(cache))
    with pytest.raises(FileNotFoundError, match="'someone/absent' .* is not in the local cache"):
        missing.splits()


def test_configuration_errors(saved: Path) -> None:
    with pytest.raises(ValueError, match="needs path .* or name"):
        HFDatasetCorpus()
    with pytest.raises(ValueError, match="has no column 'transcript'; its columns are"):
        HFDatasetCorpus(path=str(saved), text_column="transcript").entries("train")
    with pytest.raises(ValueError, match=r"names \['test'\], which the dataset does not have"):
        HFDatasetCorpus(path=str(saved), split_map={"test": "test"}).entries("test")
