"""espnet_train with ``task: lm``: a language model trained by the same trainer, from one YAML."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from espnet_data import load_tokenizer_dir, save_tokenizer
from espnet_data.text import write_text_split
from espnet_data.tokenizer import CharTokenizer
from espnet_model.lm import build_lm
from espnet_train import DataConfig, TrainingConfig
from espnet_train.cli import main, parse_training_config

WORDS = ["ONE", "TWO", "THREE", "FOUR", "FIVE"]
LM_BLOCK = {"lm": "transformer", "lm_conf": {"embed_unit": 16, "att_unit": 16, "head": 2,
                                             "unit": 32, "layer": 1, "dropout_rate": 0.0}}


def _counting(rng: random.Random) -> str:
    """A tiny language: counting up from a random word (easy to learn in a few steps)."""
    start = rng.randrange(3)
    return " ".join(WORDS[start : start + 2 + rng.randrange(3 - start + 1)])


@pytest.fixture(scope="module")
def lm_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lm")
    rng = random.Random(0)
    texts = [_counting(rng) for _ in range(300)]
    write_text_split([(f"t{i}", t) for i, t in enumerate(texts)], root / "train", sentences_per_shard=100)
    write_text_split([(f"d{i}", _counting(rng)) for i in range(20)], root / "dev")
    save_tokenizer(CharTokenizer.from_texts(texts), root / "tokenizer")
    return root


def _config(root: Path, exp: Path, **extra: object) -> dict:
    return {
        "task": "lm",
        "exp_dir": str(exp),
        "tokenizer": str(root / "tokenizer"),
        "data": {"train": str(root / "train"), "valid": str(root / "dev"), "max_tokens": 400,
                 "num_workers": 0},
        "model": LM_BLOCK,
        "optim": {"lr": 0.01, "scheduler": "constant"},
        "trainer": {"max_epochs": 2, "accelerator": "cpu", "enable_progress_bar": False,
                    "num_threads": 1},
        "best_n": 2,
        **extra,
    }


def test_espnet_train_trains_and_exports_a_language_model(lm_data: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    conf = tmp_path / "lm_training.yaml"
    conf.write_text(yaml.safe_dump(_config(lm_data, exp)))
    assert main(["--config", str(conf)]) == 0
    model_dir = exp / "model"
    config = yaml.safe_load((model_dir / "config.yaml").read_text())
    assert list(config)[:2] == ["task", "model"] and config["task"] == "lm"
    assert config["model"] == LM_BLOCK and "sample_rate" not in config
    tokenizer = load_tokenizer_dir(lm_data / "tokenizer")
    assert config["vocab_size"] == tokenizer.vocab_size
    assert config["tokenizer"] == {"type": "char", "token_list": "tokenizer/tokens.txt"}
    assert (model_dir / config["tokenizer"]["token_list"]).read_text().split() == tokenizer.token_list
    assert sorted(config["training"]["averaged"]) == ["epoch000.ckpt", "epoch001.ckpt"]
    model = build_lm(config["model"], config["vocab_size"])
    model.load_state_dict(torch.load(model_dir / "model.pt", weights_only=True))  # strict
    model.eval()
    # it learnt the language: counting on is far likelier than counting back
    @torch.no_grad()
    def nll(text: str) -> float:
        ids = torch.tensor([tokenizer.encode(text)])
        return float(model.nll(ids, torch.tensor([ids.size(1)]))[0][0])
    assert nll("ONE TWO THREE") < nll("THREE TWO ONE")
    summary = json.loads((exp / "train_summary.json").read_text())
    assert summary["epochs"] == 2 and summary["trained_batches"] > 0
    # the weight of a batch is its token count: valid/loss is a per-token mean
    assert "valid/loss" in (exp / "csv" / "metrics.csv").read_text()


def test_lm_config_refuses_speech_keys_and_asr_configs_refuse_lm_blocks(lm_data, tmp_path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump(_config(lm_data, tmp_path / "e", stats_file="stats.npz")))
    with pytest.raises(ValueError, match="stats_file applies to speech only: remove it"):
        parse_training_config(["--config", str(conf)])
    with pytest.raises(ValueError, match="stats_file, data.noise apply to speech only"):
        TrainingConfig(exp_dir="e", tokenizer="t", task="lm", stats_file="s.npz",
                       data=DataConfig(train="a", valid="b", noise="n.txt"))
    with pytest.raises(ValueError, match="data.reverb applies to speech only"):
        TrainingConfig(exp_dir="e", tokenizer="t", task="lm", data=DataConfig(train="a", valid="b", reverb=True))
    with pytest.raises(ValueError, match="set task: lm"):
        TrainingConfig(exp_dir="e", tokenizer="t", data=DataConfig(train="a", valid="b"),
                       model=LM_BLOCK)
    with pytest.raises(ValueError, match="max_tokens"):
        TrainingConfig(exp_dir="e", tokenizer="t", task="lm",
                       data=DataConfig(train="a", valid="b", max_tokens=1))


def test_an_audio_split_is_refused_for_an_lm(lm_data, tmp_path, tiny_shards) -> None:
    from espnet_train import train

    raw = _config(lm_data, tmp_path / "e")
    raw["data"]["train"] = str(tiny_shards)
    config = parse_training_config_from(raw, tmp_path)
    with pytest.raises(ValueError, match="split of audio shards"):
        train(config)


def test_a_bad_lm_block_names_the_key(lm_data, tmp_path) -> None:
    raw = _config(lm_data, tmp_path / "e")
    raw["model"] = {"lm": "transformer", "lm_conf": {"layers": 2}}
    with pytest.raises(ValueError, match=r"model: lm_conf.layers is not an argument .*did you mean 'layer'"):
        parse_training_config_from(raw, tmp_path)  # caught when parsed, before training


def parse_training_config_from(raw: dict, folder: Path) -> TrainingConfig:
    conf = folder / "training.yaml"
    conf.write_text(yaml.safe_dump(raw))
    return parse_training_config(["--config", str(conf)])
