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


# -- trust: a model block naming foreign code ----------------------------------------


def rebuild_model(vocab_size: int, block: dict) -> torch.nn.Module:
    """A ``class_path`` factory outside espnet_model (as a custom model would be)."""
    from espnet_model import build_asr_model

    return build_asr_model(block, vocab_size=vocab_size)


def custom_model_folder(pipeline: Pipeline, out: Path) -> Path:
    """The pipeline's model folder, its model block turned into a foreign class_path."""
    folder = Path(shutil.copytree(pipeline.model_dir, out))
    config = yaml.safe_load((folder / "config.yaml").read_text())
    block = config["model"]
    block["normalize_conf"] = {**block.get("normalize_conf", {}), "stats_file": None}
    config["model"] = {"class_path": f"{__name__}.rebuild_model", "init_args": {"block": block}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


@pytest.mark.parametrize("where", ["model", "encoder"])
def test_a_class_path_that_runs_a_command_is_refused(
    model_copy: Path, tmp_path: Path, where: str
) -> None:
    from espnet_model.builder import UntrustedCodeError

    marker = tmp_path / "ran"
    path = model_copy / "config.yaml"
    config = yaml.safe_load(path.read_text())
    spec = {"class_path": "os.system", "init_args": {"command": f"touch {marker}"}}
    if where == "model":
        config["model"] = spec
    else:
        config["model"]["encoder"] = spec
    path.write_text(yaml.safe_dump(config))
    key = "model.class_path" if where == "model" else "model.encoder.class_path"
    with pytest.raises(UntrustedCodeError) as err:
        load_model_folder(model_copy)
    text = str(err.value)
    assert str(path) in text and f"{key} = 'os.system'" in text
    assert "trust_remote_code=True" in text and "inference.yaml" in text
    assert not marker.exists()


def test_a_foreign_class_path_loads_when_the_caller_opts_in(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    from espnet_model.builder import UntrustedCodeError

    folder = custom_model_folder(pipeline, tmp_path / "custom")
    with pytest.raises(UntrustedCodeError, match="rebuild_model"):
        load_model_folder(folder)
    loaded = load_model_folder(folder, trust_remote_code=True)
    reference = load_model_folder(pipeline.model_dir)
    for key, value in reference.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value)


# -- config.yaml: safe, strict YAML with the file named --------------------------------


def test_a_duplicate_key_names_the_key_the_file_and_the_lines(model_copy: Path) -> None:
    path = model_copy / "config.yaml"
    text = path.read_text()
    vocab = yaml.safe_load(text)["vocab_size"]
    path.write_text(f"vocab_size: 3\n{text}")  # the later, right value would win silently
    assert f"vocab_size: {vocab}\n" in text
    line = 1 + text.splitlines().index(f"vocab_size: {vocab}") + 1
    with pytest.raises(ValueError, match=rf"config\.yaml, line {line}: key 'vocab_size' is set "
                                         r"twice \(first on line 1\)"):
        load_model_folder(model_copy)


def test_a_yaml_error_names_the_file(model_copy: Path) -> None:
    path = model_copy / "config.yaml"
    path.write_text(path.read_text() + "broken: [1, 2\n")
    with pytest.raises(ValueError, match=rf"{path} is not valid YAML"):
        load_model_folder(model_copy)


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    from espnet_infer.loading import _read_yaml

    path = tmp_path / "a.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n")
    assert _read_yaml(path)["derived"] == {"x": 1, "y": 3}


# -- meta.yaml: a packed folder is checked before it is loaded -------------------------


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def packed_copy(model_copy: Path) -> Path:
    """The model folder as pack_model leaves it: model.safetensors and meta.yaml."""
    from safetensors.torch import save_file

    state = torch.load(model_copy / "model.pt", weights_only=True)
    save_file({k: v.contiguous().clone() for k, v in state.items()},
              str(model_copy / "model.safetensors"))
    (model_copy / "model.pt").unlink()
    files = sorted(p for p in model_copy.rglob("*") if p.is_file())
    meta = {
        "format": "espnet-publish-meta",
        "format_version": 2,
        "files": [{"path": p.relative_to(model_copy).as_posix(), "size": p.stat().st_size,
                   "sha256": _sha256(p)} for p in files],
    }
    (model_copy / "meta.yaml").write_text(yaml.safe_dump(meta))
    return model_copy


def test_a_flipped_byte_in_the_weights_stops_the_load(packed_copy: Path) -> None:
    load_model_folder(packed_copy)  # intact: loads
    weights = packed_copy / "model.safetensors"
    expected = _sha256(weights)
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # inside the last tensor: safetensors itself notices nothing
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError) as err:
        load_model_folder(packed_copy)
    text = str(err.value)
    assert str(weights) in text and expected in text and _sha256(weights) in text
    assert "verify=False" in text
    load_model_folder(packed_copy, verify=False)  # the documented way round


@pytest.mark.parametrize("name", ["config.yaml", "tokens"])
def test_config_and_tokenizer_files_are_checked_too(packed_copy: Path, name: str) -> None:
    config = yaml.safe_load((packed_copy / "config.yaml").read_text())
    if name == "config.yaml":
        path = packed_copy / "config.yaml"
        path.write_text(path.read_text() + "# edited\n")
    else:
        rel = next(v for k, v in config["tokenizer"].items() if k != "type")
        path = packed_copy / rel
        path.write_bytes(path.read_bytes() + b"\n")
    with pytest.raises(ValueError, match=rf"{path} does not match .*meta\.yaml: sha256"):
        load_model_folder(packed_copy)


def test_weights_not_listed_in_meta_yaml_stop_the_load(packed_copy: Path) -> None:
    meta = yaml.safe_load((packed_copy / "meta.yaml").read_text())
    meta["files"] = [f for f in meta["files"] if f["path"] != "model.safetensors"]
    (packed_copy / "meta.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(ValueError, match=r"model\.safetensors is not listed in .*meta\.yaml"):
        load_model_folder(packed_copy)


def test_a_meta_yaml_that_is_not_a_manifest_is_named(packed_copy: Path) -> None:
    (packed_copy / "meta.yaml").write_text("format: something-else\n")
    with pytest.raises(ValueError, match=r"meta\.yaml is not an espnet-publish manifest"):
        load_model_folder(packed_copy)
    load_model_folder(packed_copy, verify=False)


def test_a_missing_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model folder .*nope does not exist"):
        load_model_folder(tmp_path / "nope")
