"""export_model_folder: the model folder espnet-infer and espnet-publish read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from espnet_data import CharTokenizer
from espnet_infer import load_model_folder
from espnet_model import build_asr_model
from espnet_train import export_model_folder

from tests._fixtures import Pipeline, tiny_model


@pytest.fixture
def exported(pipeline: Pipeline, tmp_path: Path) -> tuple[Path, dict, CharTokenizer]:
    tokenizer = CharTokenizer.from_texts(["HELLO WORLD", "ONE TWO"])
    block = tiny_model(normalize_conf={"stats_file": str(pipeline.stats)})
    model = build_asr_model(block, vocab_size=tokenizer.vocab_size)
    state = model.state_dict()
    out = export_model_folder(
        tmp_path / "model", state_dict=state, model_config=block, tokenizer=tokenizer,
        sample_rate=16000, stats_file=str(pipeline.stats), training={"epochs": 1},
    )
    return out, state, tokenizer


def test_layout_and_config(exported: tuple[Path, dict, CharTokenizer]) -> None:
    out, _, tokenizer = exported
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "model.pt", "stats.npz", "tokenizer"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["vocab_size"] == tokenizer.vocab_size
    assert config["sample_rate"] == 16000
    assert config["training"] == {"epochs": 1}
    assert config["tokenizer"] == {"type": "char", "token_list": "tokenizer/tokens.txt"}
    assert (out / config["tokenizer"]["token_list"]).is_file()
    # the statistics live in model.pt: no path to the training machine's file
    assert "stats_file" not in config["model"].get("normalize_conf", {})
    assert not list(out.parent.glob(".model.*"))  # no staging or old folder left


def test_the_caller_model_config_is_not_changed(pipeline: Pipeline, tmp_path: Path) -> None:
    tokenizer = CharTokenizer.from_texts(["AB"])
    block = tiny_model(normalize_conf={"stats_file": str(pipeline.stats)})
    model = build_asr_model(block, vocab_size=tokenizer.vocab_size)
    export_model_folder(tmp_path / "m", state_dict=model.state_dict(), model_config=block,
                        tokenizer=tokenizer, sample_rate=16000)
    assert block["normalize_conf"]["stats_file"] == str(pipeline.stats)


def test_round_trip_through_load_model_folder(exported: tuple[Path, dict, CharTokenizer]) -> None:
    out, state, tokenizer = exported
    loaded = load_model_folder(out)
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, state[key])
    assert loaded.tokenizer.encode("HELLO") == tokenizer.encode("HELLO")


def test_export_again_replaces_the_folder(exported: tuple[Path, dict, CharTokenizer]) -> None:
    out, state, tokenizer = exported
    (out / "stale.txt").write_text("x")
    config = yaml.safe_load((out / "config.yaml").read_text())
    export_model_folder(out, state_dict=state, model_config=config["model"], tokenizer=tokenizer,
                        sample_rate=8000)
    assert not (out / "stale.txt").exists()
    assert not (out / "stats.npz").exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["sample_rate"] == 8000
    assert not list(out.parent.glob(".model.*"))
