"""load_model_folder: a trained model folder back into an eval-mode model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from espnet_infer import LoadedModel, load_model_folder

from tests._fixtures import Pipeline


@pytest.fixture
def model_copy(pipeline: Pipeline, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pipeline.model_dir, tmp_path / "model"))


def test_loads_in_eval_mode_with_the_saved_weights(pipeline: Pipeline) -> None:
    loaded = load_model_folder(pipeline.model_dir)
    assert isinstance(loaded, LoadedModel)
    assert not loaded.model.training
    assert loaded.path == pipeline.model_dir
    assert loaded.sample_rate == 16000
    saved = torch.load(pipeline.model_dir / "model.pt", weights_only=True)
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, saved[key])


def test_does_not_need_the_training_stats_file(model_copy: Path, pipeline: Pipeline) -> None:
    config = yaml.safe_load((model_copy / "config.yaml").read_text())
    assert config["model"]["normalize"] == "global_mvn"
    assert "stats_file" not in config["model"].get("normalize_conf", {})
    loaded = load_model_folder(model_copy)  # MVN statistics restored from model.pt
    reference = load_model_folder(pipeline.model_dir)
    speech = torch.randn(1, 16000)
    with torch.inference_mode():
        a, _ = loaded.model.encode(speech, torch.tensor([16000]))
        b, _ = reference.model.encode(speech, torch.tensor([16000]))
    torch.testing.assert_close(a, b)


def test_missing_config_yaml_names_the_file(model_copy: Path) -> None:
    (model_copy / "config.yaml").unlink()
    with pytest.raises(FileNotFoundError, match=r"model/config\.yaml not found"):
        load_model_folder(model_copy)


def test_missing_model_pt_names_the_file(model_copy: Path) -> None:
    (model_copy / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.pt"):
        load_model_folder(model_copy)


def test_vocab_mismatch_names_the_file(model_copy: Path) -> None:
    path = model_copy / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["vocab_size"] += 3
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"config\.yaml: vocab_size"):
        load_model_folder(model_copy)


def test_missing_key_names_the_file_and_key(model_copy: Path) -> None:
    path = model_copy / "config.yaml"
    config = yaml.safe_load(path.read_text())
    del config["tokenizer"]
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(KeyError, match="tokenizer"):
        load_model_folder(model_copy)
