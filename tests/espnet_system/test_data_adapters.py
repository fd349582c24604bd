"""The data adapters (JSONL, Hugging Face datasets, lhotse) from a data.yaml by class_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from espnet_data import read_index, write_split
from espnet_data.corpora import HFDatasetCorpus, JsonlManifestCorpus, LhotseCorpus
from espnet_data.testing import tone
from espnet_system import DataPrepConfig, StageError, parse_config


@pytest.fixture
def flac(tmp_path: Path) -> Path:
    path = tmp_path / "utt.1.flac"
    sf.write(path, tone(1.0), 16000, subtype="PCM_16")
    return path


def _data_yaml(tmp_path: Path, class_path: str, init_args: str) -> Path:
    path = tmp_path / "data.yaml"
    path.write_text(f"corpus:\n  class_path: {class_path}\n  init_args:\n{init_args}num_workers: 1\n")
    return path


def _shards(tmp_path: Path, config: DataPrepConfig, split: str) -> list[dict]:
    write_split(config.corpus, split, tmp_path / "data" / split)
    return read_index(tmp_path / "data" / split)


def test_jsonl_manifest_from_data_yaml(tmp_path: Path, flac: Path) -> None:
    manifest = tmp_path / "train.json"
    manifest.write_text(json.dumps({"audio_filepath": flac.name, "duration": 1.0, "text": "one"}) + "\n")
    path = _data_yaml(tmp_path, "espnet_data.corpora.JsonlManifestCorpus",
                      f"    manifests: {{train: {manifest}, dev: [{manifest}]}}\n    channel: 0\n")
    config = parse_config(DataPrepConfig, path)
    assert isinstance(config.corpus, JsonlManifestCorpus) and config.corpus.channel == 0
    assert [(r["key"], r["text"]) for r in _shards(tmp_path, config, "dev")] == [("utt_1", "one")]


def test_hf_dataset_from_data_yaml(tmp_path: Path, flac: Path) -> None:
    from datasets import Audio, Dataset

    Dataset.from_dict({"audio": [str(flac)], "sentence": ["two"], "id": ["a.b"]}).cast_column(
        "audio", Audio()
    ).save_to_disk(str(tmp_path / "hf"))
    path = _data_yaml(tmp_path, "espnet_data.corpora.HFDatasetCorpus",
                      f"    path: {tmp_path / 'hf'}\n    text_column: sentence\n    key_column: id\n"
                      "    split_map: {dev: train}\n")
    config = parse_config(DataPrepConfig, path)
    assert isinstance(config.corpus, HFDatasetCorpus)
    assert [(r["key"], r["text"]) for r in _shards(tmp_path, config, "dev")] == [("a_b", "two")]


def test_lhotse_cuts_from_data_yaml(tmp_path: Path, flac: Path) -> None:
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    rec = Recording.from_file(flac, recording_id="r1")
    sup = SupervisionSegment(id="r1.s1", recording_id="r1", start=0.25, duration=0.5, text="three")
    cuts = tmp_path / "cuts.jsonl.gz"
    CutSet.from_manifests(recordings=RecordingSet.from_recordings([rec]),
                          supervisions=SupervisionSet.from_segments([sup])).to_file(cuts)
    path = _data_yaml(tmp_path, "espnet_data.corpora.LhotseCorpus",
                      f"    cuts: {{test: {cuts}}}\n    unit: supervision\n")
    config = parse_config(DataPrepConfig, path)
    assert isinstance(config.corpus, LhotseCorpus)
    rows = _shards(tmp_path, config, "test")
    assert [(r["key"], r["text"], r["duration"]) for r in rows] == [("r1_s1", "three", 0.5)]


def test_a_misspelt_adapter_argument_is_named(tmp_path: Path) -> None:
    path = _data_yaml(tmp_path, "espnet_data.corpora.LhotseCorpus", "    cutz: x.jsonl.gz\n")
    with pytest.raises(StageError, match=r"'corpus.init_args.cutz' \(did you mean 'corpus.init_args.cuts'"):
        parse_config(DataPrepConfig, path)
