"""Load a model folder (``config.yaml`` + weights + tokenizer) for inference.

The weights are ``model.safetensors`` (a packed model, as published on the Hugging Face
Hub) or ``model.pt`` (the folder training exports); the first one found is used.

The folder is the one training exports and ``pack_model`` packs; no recipe, no
training package and no Lightning are needed to load it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from espnet_data import load_tokenizer
from espnet_model import ASRModel, build_asr_model

REQUIRED_KEYS = ("model", "vocab_size", "tokenizer")


@dataclass
class LoadedModel:
    model: ASRModel
    tokenizer: Any
    config: dict[str, Any]
    path: Path

    @property
    def sample_rate(self) -> int:
        return int(self.config.get("sample_rate", 16000))


def load_model_folder(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedModel:
    """Build the model from ``config.yaml``, load ``model.pt``, put it in eval mode."""
    folder = Path(path)
    config_file = folder / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{config_file} not found: {folder} is not a model folder "
            "(train one with espnet-train, or unpack a packed model there)"
        )
    config = yaml.safe_load(config_file.read_text()) or {}
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise KeyError(f"{config_file} lacks the key(s) {missing}; re-export the model folder")
    tokenizer = load_tokenizer(config["tokenizer"], folder)
    if tokenizer.vocab_size != int(config["vocab_size"]):
        raise ValueError(
            f"{config_file}: vocab_size {config['vocab_size']} != tokenizer's "
            f"{tokenizer.vocab_size}: the tokenizer files do not belong to this model"
        )
    block = dict(config["model"])
    if block.get("normalize") == "global_mvn":  # the statistics are restored from model.pt
        block["normalize_conf"] = {**block.get("normalize_conf", {}), "stats_file": None}
    model = build_asr_model(block, vocab_size=int(config["vocab_size"]))
    state = _load_weights(folder)
    model.load_state_dict(state)
    model.to(device).eval()
    return LoadedModel(model=model, tokenizer=tokenizer, config=config, path=folder)


def _load_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The state dict of ``model.safetensors`` or, failing that, ``model.pt``."""
    safetensors_file = folder / "model.safetensors"
    if safetensors_file.is_file():
        from safetensors.torch import load_file

        return load_file(safetensors_file, device="cpu")
    weights = folder / "model.pt"
    if not weights.is_file():
        raise FileNotFoundError(
            f"neither {safetensors_file.name} nor {weights.name} found in {folder}: "
            "the model folder is incomplete"
        )
    return torch.load(weights, map_location="cpu", weights_only=True)
