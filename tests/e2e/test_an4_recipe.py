"""The AN4 recipe's configs: all five parse, and its data stages run on the AN4 fixture.

Training on AN4 is not run here (it needs the real corpus); ``tests/data/mini_an4.tar.gz``
holds 8 real AN4 utterances in the original layout, enough for create_dataset and
train_tokenizer with the recipe's own ``data.yaml`` (only ``root`` and the number of dev
speakers changed: the fixture has 3 training speakers).
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml
from espnet_data.corpora import AN4Corpus
from espnet_system import ASRSystem
from espnet_system.cli import main

ROOT = Path(__file__).parents[2]
RECIPE_CONF = ROOT / "egs" / "an4" / "asr" / "conf"
FIXTURE = ROOT / "tests" / "data" / "mini_an4.tar.gz"


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    recipe = tmp_path / "an4_asr"
    shutil.copytree(RECIPE_CONF, recipe / "conf")
    return recipe


@pytest.fixture
def an4_root(tmp_path: Path) -> Path:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path / "corpus", filter="data")
    return tmp_path / "corpus" / "downloads"


def test_every_config_parses(recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AN4_ROOT", raising=False)
    system = ASRSystem(recipe)
    system.check(system.resolve(["all"]))  # parses every config; touches no corpus
    data = system.config("data")
    assert isinstance(data.corpus, AN4Corpus) and data.corpus.root is None
    assert data.corpus.splits() == ["train", "dev", "test"]
    assert set(system.config("inference").test_sets) == {"dev", "test"}
    assert system.config("training").data.valid == "data/dev"


def test_create_dataset_without_a_root_names_the_fix(
    recipe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AN4_ROOT", raising=False)
    with pytest.raises(ValueError, match="corpus.init_args.root in data.yaml or the AN4_ROOT"):
        ASRSystem(recipe).run(["create_dataset"])


def test_data_stages_on_the_fixture(
    recipe: Path, an4_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_yaml = recipe / "conf" / "data.yaml"
    doc = yaml.safe_load(data_yaml.read_text())
    doc["corpus"]["init_args"]["dev_speakers"] = 1
    doc["num_workers"] = 1
    data_yaml.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("AN4_ROOT", str(an4_root))
    assert main([str(recipe), "--stages", "create_dataset", "train_tokenizer"]) == 0
    counts = {}
    for split in ("train", "dev", "test"):
        summary = json.loads((recipe / "data" / split / "summary.json").read_text())
        counts[split] = summary["num_utterances"]
        assert list((recipe / "data" / split).glob("shard-*.tar"))
    assert counts == {"train": 4, "dev": 1, "test": 2}
    spec = yaml.safe_load((recipe / "exp" / "tokenizer" / "tokenizer.yaml").read_text())
    assert spec["type"] == "char"
