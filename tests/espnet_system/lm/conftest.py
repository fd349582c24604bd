"""A tiny ASR recipe and its LM recipe (``<root>/asr``, ``<root>/lm``), the LM run once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from espnet_data import read_index, save_tokenizer
from espnet_data.tokenizer import CharTokenizer

TINY_LM = {"lm": "transformer", "lm_conf": {"embed_unit": 16, "att_unit": 16, "head": 2,
                                            "unit": 32, "layer": 1, "dropout_rate": 0.0}}


def write_lm_recipe(root: Path, split: Path, tokenizer: Path | None = None) -> Path:
    """``root/asr`` (a data split and a tokenizer: a copy of ``tokenizer``, else characters)
    and ``root/lm`` (its four configs)."""
    asr = root / "asr"
    shutil.copytree(split, asr / "data" / "train")
    if tokenizer is not None:
        shutil.copytree(tokenizer, asr / "exp" / "tokenizer")
    else:
        texts = [r["text"] for r in read_index(split)]
        save_tokenizer(CharTokenizer.from_texts(texts + ["ABCDEFGHIJKLMNOPQRSTUVWXYZ"]),
                       asr / "exp" / "tokenizer")
    conf = root / "lm" / "conf"
    conf.mkdir(parents=True)
    sets = {
        "train": [{"class_path": "espnet_data.text.SplitText",
                   "init_args": {"split_dir": "../asr/data/train"}},
                  {"class_path": "espnet_data.text.MiniLMText",
                   "init_args": {"num_sentences": 300, "exclude_splits": ["../asr/data/train"]}}],
        "dev": [{"class_path": "espnet_data.text.SplitText",
                 "init_args": {"split_dir": "../asr/data/train"}}],
    }
    files = {
        "data": {"sets": sets, "sentences_per_shard": 100},
        "training": {"task": "lm", "exp_dir": "exp/lm", "tokenizer": "../asr/exp/tokenizer",
                     "data": {"train": "data/train", "valid": "data/dev", "max_tokens": 2000,
                              "num_workers": 0},
                     "model": TINY_LM, "optim": {"lr": 0.005, "scheduler": "constant"},
                     "trainer": {"max_epochs": 2, "accelerator": "cpu", "num_threads": 1,
                                 "enable_progress_bar": False},
                     "best_n": 2},
        "metrics": {"model_dir": "exp/lm/model", "test_sets": {"dev": "data/dev"},
                    "out_file": "exp/lm/scores.json"},
        "publish": {"model_dir": "exp/lm/model", "model_name": "tiny-lm",
                    "packed_dir": "exp/lm/packed"},
    }
    for role, doc in files.items():
        (conf / f"{role}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root / "lm"


@pytest.fixture(scope="session")
def lm_recipe(tmp_path_factory: pytest.TempPathFactory, tiny_shards: Path) -> Path:
    """``<root>/lm`` after ``espnet-run <root>/lm --stages all`` (read-only: copy to change)."""
    from espnet_system.cli import main

    recipe = write_lm_recipe(tmp_path_factory.mktemp("recipes"), tiny_shards)
    assert main([str(recipe), "--stages", "all"]) == 0
    return recipe
