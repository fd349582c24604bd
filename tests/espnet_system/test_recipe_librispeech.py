"""egs/librispeech/asr: every config parses with the system; nothing is trained or fetched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from espnet_data.corpora import LibriSpeechCorpus
from espnet_model import build_asr_model
from espnet_system import ASRSystem, load_system
from espnet_system.cli import main

from tests.espnet_data.test_corpora_librispeech import LAYOUT, write_tree

RECIPE = Path(__file__).parents[2] / "egs" / "librispeech" / "asr"
EVAL_SETS = ["dev-clean", "dev-other", "test-clean", "test-other"]


@pytest.fixture(scope="module")
def system() -> ASRSystem:
    system = load_system(RECIPE)
    assert isinstance(system, ASRSystem)
    # every stage of `all` (and the uploads) parses its config before anything runs
    system.check([*system.resolve(["all"]), "upload_model", "upload_demo"])
    return system


def test_train_infer_resolve_and_parse(system: ASRSystem) -> None:
    """`just asr librispeech train infer` runs these two stages with these configs."""
    assert system.resolve(["infer", "train"]) == ["train", "infer"]
    system.check(["train", "infer"])


def test_data_config_reads_librispeech_100_and_all_eval_sets(system: ASRSystem) -> None:
    data = system.config("data")
    corpus = data.corpus
    assert isinstance(corpus, LibriSpeechCorpus)
    assert corpus.train_set == "train-clean-100" and corpus.parts("train") == ("train-clean-100",)
    assert corpus.download and corpus.base_url == "https://www.openslr.org/resources/12"
    assert data.splits == ["train", "dev", *EVAL_SETS]
    assert set(data.splits) <= set(corpus.splits())
    assert data.shard.sample_rate == 16000 and data.shard.max_duration >= 35.0
    assert data.tokenizer.vocab_size == 5000 and data.tokenizer.model_type == "unigram"


def test_960_hours_is_one_config_switch(tmp_path: Path) -> None:
    recipe = tmp_path / "asr"
    shutil.copytree(RECIPE / "conf", recipe / "conf")
    data_yaml = recipe / "conf" / "data.yaml"
    text = data_yaml.read_text()
    assert "train_set: train-clean-100" in text
    data_yaml.write_text(text.replace("train_set: train-clean-100", "train_set: train-960"))
    corpus = ASRSystem(recipe).config("data").corpus
    assert corpus.parts("train") == ("train-clean-100", "train-clean-360", "train-other-500")


def test_training_config_builds_the_espnet2_conformer(system: ASRSystem) -> None:
    training = system.config("training")
    data = system.config("data")
    assert training.data.train == f"{data.out_dir}/train"
    assert training.data.valid == f"{data.out_dir}/dev"
    assert training.tokenizer == data.tokenizer.out_dir
    assert (training.optim.name, training.optim.lr, training.optim.warmup_steps) == ("adam", 0.002, 15000)
    assert training.trainer.max_epochs == 70 and training.best_n == 10
    model = build_asr_model(training.model, vocab_size=data.tokenizer.vocab_size)
    assert len(model.encoder.encoders) == 12 and model.encoder.output_size() == 256
    assert len(model.decoder.decoders) == 6
    params = sum(p.numel() for p in model.parameters())
    # ESPnet2's own count of this model with 5000 tokens, measured in the peer venv
    # (tests/espnet_model/test_espnet2*.py: LIBRISPEECH100_PARAMS)
    assert params == 34_229_520


def test_inference_and_metrics_cover_the_four_eval_sets(system: ASRSystem) -> None:
    inference = system.config("inference")
    assert list(inference.test_sets) == EVAL_SETS
    assert all(inference.test_sets[name] == f"data/{name}" for name in EVAL_SETS)
    assert inference.model_dir == system.config("publish").model_dir
    metrics = system.config("metrics")
    assert metrics.test_sets == EVAL_SETS and metrics.inference_dir == inference.output_dir


def test_espnet_run_lists_the_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(RECIPE), "--list"]) == 0
    out = capsys.readouterr().out
    assert "create_dataset" in out and "conf/data.yaml" in out


def test_create_dataset_on_a_local_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """data.yaml as shipped, with $LIBRISPEECH_ROOT at a small synthesised copy: every split
    is written and nothing is downloaded (download: true only fetches missing parts)."""
    corpus_root = tmp_path / "corpus"
    write_tree(corpus_root, LAYOUT)
    monkeypatch.setenv("LIBRISPEECH_ROOT", str(corpus_root))
    recipe = tmp_path / "asr"
    shutil.copytree(RECIPE / "conf", recipe / "conf")
    data_yaml = recipe / "conf" / "data.yaml"
    data_yaml.write_text(data_yaml.read_text().replace("num_workers: 2", "num_workers: 1"))
    assert ASRSystem(recipe).run(["create_dataset"]) == ["create_dataset"]
    counts = {
        split: json.loads((recipe / "data" / split / "summary.json").read_text())["num_utterances"]
        for split in ["train", "dev", *EVAL_SETS]
    }
    assert counts == {"train": 8, "dev": 3, "dev-clean": 2, "dev-other": 1, "test-clean": 1, "test-other": 1}
    assert not (corpus_root / "archives").exists() and not (recipe / "downloads").exists()
