"""A model folder as training writes it: ``config.yaml``, the weights, the tokenizer files.

Shared by :func:`~espnet_publish.pack_model` for the ASR model and for the language
model it may carry (``lm_dir``): the same layout, the same checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ._files import check_relative, copy_file
from .errors import PublishError

__all__ = [
    "CONFIG",
    "PACKED_WEIGHTS",
    "TOKENIZER_FILE_KEYS",
    "WEIGHTS",
    "folder_files",
    "read_model_config",
    "referenced_files",
    "weights_file",
    "write_safetensors",
]

TOKENIZER_FILE_KEYS: Mapping[str, tuple[str, ...]] = {
    "sentencepiece": ("model",),
    "char": ("token_list",),
    "phoneme": ("token_list", "config"),  # a TTS model's (espnet_data.tts.PhonemeTokenizer)
}
"""Tokenizer type -> keys of ``config.yaml: tokenizer`` whose values are file paths."""

CONFIG = "config.yaml"
WEIGHTS = "model.pt"
PACKED_WEIGHTS = "model.safetensors"

def read_model_config(model_dir: Path) -> dict[str, Any]:
    """Load ``model_dir/config.yaml`` and check its top-level shape."""
    path = model_dir / CONFIG
    if not path.is_file():
        raise PublishError(
            f"{path} not found: {model_dir} is not a model folder written by training "
            f"(expected {CONFIG}, {WEIGHTS} and tokenizer/). Point model_dir at that folder."
        )
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise PublishError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(config, dict):
        raise PublishError(f"{path} must be a YAML mapping, got {type(config).__name__}.")
    for key in ("model", "tokenizer"):
        if not isinstance(config.get(key), dict):
            raise PublishError(
                f"{path}: key {key!r} is missing or not a mapping (got {config.get(key)!r}); "
                f"the model folder format needs model: {{...}} and tokenizer: {{type: ..., ...}}."
            )
    return config


def referenced_files(config: Mapping[str, Any], model_dir: Path) -> dict[str, Path]:
    """Map relative path -> config key for every file config.yaml references; check they exist."""
    tokenizer = config["tokenizer"]
    kind = tokenizer.get("type")
    if kind not in TOKENIZER_FILE_KEYS:
        raise PublishError(
            f"{model_dir / CONFIG}: tokenizer.type = {kind!r} is not one of "
            f"{sorted(TOKENIZER_FILE_KEYS)}; fix the config written by training."
        )
    refs: dict[str, Path] = {}
    for key in TOKENIZER_FILE_KEYS[kind]:
        where = f"{model_dir / CONFIG}: tokenizer.{key}"
        value = tokenizer.get(key)
        if not isinstance(value, str):
            raise PublishError(
                f"{where} is {value!r}; a {kind} tokenizer needs it set to a file path "
                f"relative to the model folder."
            )
        rel = check_relative(value, where=where)
        if not (model_dir / rel).is_file():
            raise PublishError(
                f"{model_dir / rel} not found: referenced by {where} = {value!r}. "
                f"Copy the tokenizer file into the model folder or fix the key."
            )
        refs[rel.as_posix()] = model_dir / rel
    return refs


def weights_file(folder: Path) -> Path:
    """``model.safetensors`` or ``model.pt`` of a model folder."""
    found = next((folder / n for n in (PACKED_WEIGHTS, WEIGHTS) if (folder / n).is_file()), None)
    if found is None:
        raise PublishError(
            f"{folder / WEIGHTS} not found: the model folder needs the averaged "
            f"state_dict saved as {WEIGHTS} (or {PACKED_WEIGHTS})."
        )
    return found


def folder_files(config: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """``config.yaml``, the tokenizer files it references, and the rest of ``tokenizer/``."""
    files = {CONFIG: folder / CONFIG}
    files.update(referenced_files(config, folder))
    tokenizer_dir = folder / "tokenizer"
    if tokenizer_dir.is_dir():  # ship companions too (e.g. bpe.vocab next to bpe.model)
        for p in sorted(tokenizer_dir.rglob("*")):
            if p.is_file():
                files.setdefault(p.relative_to(folder).as_posix(), p)
    return files


def write_safetensors(src: Path, dst: Path) -> None:
    """Convert a torch state dict (``model.pt``) to ``model.safetensors``.

    Each tensor is cloned contiguous: safetensors refuses tensors that share memory (tied
    weights), and ``load_state_dict`` fills tied parameters from either copy alike.
    """
    import torch  # lazy: only packing needs torch
    from safetensors.torch import save_file

    if src.name == PACKED_WEIGHTS:
        copy_file(src, dst)
        return
    try:
        state = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle that is not a plain state dict
        raise PublishError(
            f"{src} cannot be read as a torch state dict ({type(e).__name__}: {e}); the model "
            f"folder needs the averaged state_dict saved with torch.save(model.state_dict())."
        ) from e
    bad = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor)) if isinstance(
        state, dict) else ["<not a dict>"]
    if bad:
        raise PublishError(
            f"{src}: entries {bad[:5]} are not tensors; safetensors holds tensors only. "
            f"Save a plain state_dict (torch.save(model.state_dict(), ...))."
        )
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(dst),
              metadata={"format": "pt", "source": src.name})
