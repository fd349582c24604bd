"""Builders behind the session fixtures of the train, infer, system and e2e tests.

Plain functions (no pytest here) so each test folder's ``conftest.py`` can wrap them in
session-scoped fixtures: data, tokenizer, stats and a trained model folder are made once.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

#: a model that trains a couple of epochs on ~24 short utterances in seconds
TINY_MODEL: dict[str, Any] = {
    "frontend": "default",
    "frontend_conf": {"n_mels": 40},
    "specaug": None,
    "normalize": "global_mvn",
    "encoder": "conformer",
    "encoder_conf": {
        "output_size": 32,
        "attention_heads": 2,
        "linear_units": 64,
        "num_blocks": 1,
        "cnn_module_kernel": 7,
        "input_layer": "conv2d",
        "dropout_rate": 0.0,
    },
    "decoder": "transformer",
    "decoder_conf": {"attention_heads": 2, "linear_units": 64, "num_blocks": 1, "dropout_rate": 0.0},
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1},
}

SPLITS = {"train": 24, "dev": 6, "test": 6}


def tiny_model(**overrides: Any) -> dict[str, Any]:
    model = copy.deepcopy(TINY_MODEL)
    model.update(overrides)
    return model


def make_data(root: Path) -> Path:
    """The mini corpus, 24/6/6 utterances; train in 3 shards, dev and test in 2 each."""
    from espnet_data import write_split
    from espnet_data.corpora import MiniCorpus

    corpus = MiniCorpus(utterances=dict(SPLITS), seed=0)
    data = root / "data"
    for split in SPLITS:
        write_split(corpus, split, data / split, utterances_per_shard=8 if split == "train" else 3)
    return data


def make_tokenizer(data: Path, out_dir: Path) -> Path:
    from espnet_data import CharTokenizer, read_index, save_tokenizer

    texts = [row["text"] for row in read_index(data / "train")]
    save_tokenizer(CharTokenizer.from_texts(texts), out_dir)
    return out_dir


def make_stats(data: Path, out_file: Path) -> Path:
    from espnet_model import Fbank
    from espnet_train import collect_stats

    out_file.parent.mkdir(parents=True, exist_ok=True)
    collect_stats(data / "train", Fbank(n_mels=TINY_MODEL["frontend_conf"]["n_mels"]), out_file)
    return out_file


def training_dict(
    data: Path, tokenizer: Path, stats: Path, exp_dir: Path, *, max_epochs: int = 2, **extra: Any
) -> dict[str, Any]:
    """A ``training.yaml`` body (plain dict) for the tiny model."""
    cfg: dict[str, Any] = {
        "exp_dir": str(exp_dir),
        "tokenizer": str(tokenizer),
        "stats_file": str(stats),
        "seed": 0,
        "data": {
            "train": str(data / "train"),
            "valid": str(data / "dev"),
            "max_seconds": 30,
            "max_batch_size": 8,
            "buffer_size": 100,
            "num_workers": 0,
        },
        "model": tiny_model(),
        "optim": {"lr": 0.002, "scheduler": "constant", "warmup_steps": 1},
        "trainer": {
            "max_epochs": max_epochs,
            "num_threads": 1,
            "log_every_n_steps": 1,
            "accelerator": "cpu",
            "devices": 1,
        },
        "best_n": 2,
    }
    cfg.update(extra)
    return cfg


def training_config(*args: Any, **kwargs: Any) -> Any:
    from espnet_train import DataConfig, OptimConfig, TrainerConfig, TrainingConfig

    d = training_dict(*args, **kwargs)
    return TrainingConfig(
        **{
            **d,
            "data": DataConfig(**d["data"]),
            "optim": OptimConfig(**d["optim"]),
            "trainer": TrainerConfig(**d["trainer"]),
        }
    )


class Pipeline:
    """Paths of the shared, read-only tiny pipeline (data, tokenizer, stats, model)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = make_data(root)
        self.tokenizer = make_tokenizer(self.data, root / "tokenizer")
        self.stats = make_stats(self.data, root / "stats" / "feats_stats.npz")
        self.exp_dir = root / "exp_train"
        from espnet_train import train

        self.model_dir = train(
            training_config(self.data, self.tokenizer, self.stats, self.exp_dir, max_epochs=2)
        )


_PIPELINE: Pipeline | None = None


def shared_pipeline(factory: Any) -> Pipeline:
    """One :class:`Pipeline` per test process, whichever folder's fixture asks first.

    ``factory`` is pytest's ``tmp_path_factory``. Fixtures of the same name in two
    ``conftest.py`` files are cached separately, so the cache lives here.
    """
    global _PIPELINE
    if _PIPELINE is None:
        _PIPELINE = Pipeline(factory.mktemp("pipeline"))
    return _PIPELINE


def read_samples(split_dir: Path) -> list[dict[str, Any]]:
    """Every sample (key, text, audio) of a split, sorted by key."""
    from espnet_data import ShardDataset, shard_paths

    return sorted(ShardDataset(shard_paths(split_dir)), key=lambda s: s["key"])
