"""egs/hard/asr: every config parses with the system; a tiny copy makes its data."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from espnet_data.corpora import HardCorpus
from espnet_system import ASRSystem, load_system

RECIPE = Path(__file__).parents[2] / "egs" / "hard" / "asr"


@pytest.fixture(scope="module")
def system() -> ASRSystem:
    system = load_system(RECIPE)
    assert isinstance(system, ASRSystem)
    system.check([*system.resolve(["all"]), "upload_model", "upload_demo"])
    return system


def test_data_config_is_the_issue_preset(system: ASRSystem) -> None:
    data = system.config("data")
    corpus = data.corpus
    assert isinstance(corpus, HardCorpus)
    assert corpus.utterances == {"train": 3000, "dev": 300, "test": 300}
    assert (corpus.voice_groups, corpus.test_groups, corpus.dev_groups) == (20, 3, 3)
    assert (corpus.min_words, corpus.max_words) == (4, 25)
    assert data.tokenizer.type == "char"  # characters learn in the budget where BPE 300 did not


def test_training_fits_the_budget_and_reads_the_recipe_data(system: ASRSystem) -> None:
    training, data = system.config("training"), system.config("data")
    assert training.data.train == f"{data.out_dir}/train"
    assert training.data.valid == f"{data.out_dir}/dev"
    assert training.tokenizer == data.tokenizer.out_dir
    h, m, s = (int(x) for x in training.trainer.max_time.split(":")[1:])
    assert timedelta(hours=h, minutes=m, seconds=s) <= timedelta(minutes=25)
    assert training.optim.horizon == "time"  # the schedule ends with the budget


def test_inference_is_fast_and_scores_dev_and_test(system: ASRSystem) -> None:
    inference = system.config("inference")
    assert list(inference.test_sets) == ["dev", "test"]
    decode = inference.decode
    assert decode.method == "ctc_greedy" or decode.beam_size <= 5
    assert not decode.uses_lm
    assert system.config("metrics").inference_dir == inference.output_dir


def test_create_dataset_and_tokenizer_on_a_tiny_copy(tmp_path: Path) -> None:
    recipe = tmp_path / "asr"
    shutil.copytree(RECIPE / "conf", recipe / "conf")
    data_yaml = recipe / "conf" / "data.yaml"
    text = data_yaml.read_text()
    assert "utterances: {train: 3000, dev: 300, test: 300}" in text
    text = text.replace("utterances: {train: 3000, dev: 300, test: 300}",
                        "utterances: {train: 40, dev: 3, test: 3}")
    text = text.replace("num_workers: 2", "num_workers: 1")
    data_yaml.write_text(text)
    system = ASRSystem(recipe)
    assert system.run(["create_dataset", "train_tokenizer"]) == ["create_dataset", "train_tokenizer"]
    counts = {
        split: json.loads((recipe / "data" / split / "summary.json").read_text())["num_utterances"]
        for split in ("train", "dev", "test")
    }
    assert counts == {"train": 40, "dev": 3, "test": 3}
    assert (recipe / "exp" / "tokenizer" / "tokens.txt").is_file()
