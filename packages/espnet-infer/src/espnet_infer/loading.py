"""Load a model folder (``config.yaml`` + weights + tokenizer) for inference.

The weights are ``model.safetensors`` (a packed model, as published on the Hugging Face
Hub) or ``model.pt`` (the folder training exports); the first one found is used.

The folder is the one training exports and ``pack_model`` packs; no recipe, no
training package and no Lightning are needed to load it.

What loading trusts and checks:

- ``config.yaml`` is read with a safe YAML loader that also refuses a key written twice
  (naming the key, the file and both lines): YAML would silently keep the last one.
- The model is built from espnet_model's own components only. A ``class_path`` naming
  other code (``os.system`` would do) is refused unless the caller passes
  ``trust_remote_code=True``: building it would import and run that code.
- A packed folder carries ``meta.yaml`` (written by ``espnet_publish.pack_model``) with
  the sha256 of every file. With ``verify=True`` (the default) the files loading reads
  (``config.yaml``, the weights, the tokenizer files) are hashed and compared first; a
  file that differs, or is not listed, stops the load. A folder without ``meta.yaml``
  (a training export) has nothing to compare with and loads as it is.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from espnet_data import load_tokenizer
from espnet_model import ASRModel, build_asr_model
from espnet_model.builder import UntrustedCodeError

REQUIRED_KEYS = ("model", "vocab_size", "tokenizer")
MANIFEST_NAME = "meta.yaml"
_MANIFEST_FORMAT = "espnet-publish-meta"  # espnet_publish.manifest writes it
_WEIGHTS = ("model.safetensors", "model.pt")


@dataclass
class LoadedModel:
    """A model ready to decode. ``files``: what it was built from, when that is not
    ``config.yaml`` and the weights in ``path`` (an ESPnet2 pack's configs, checkpoint,
    tokenizer files); results decoded with it depend on their contents."""

    model: ASRModel
    tokenizer: Any
    config: dict[str, Any]
    path: Path
    files: tuple[Path, ...] = ()

    @property
    def sample_rate(self) -> int:
        return int(self.config.get("sample_rate", 16000))


# -- YAML ------------------------------------------------------------------------------


class _DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"key {key!r} on line {line} was already set on line {first_line}")
        self.key, self.line, self.first_line = key, line, first_line


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping key written twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # unhashable: the base class raises the proper error
                continue
            if seen != key_node.start_mark.line + 1:
                raise _DuplicateKeyError(key, key_node.start_mark.line + 1, seen)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Any:
    """The document in ``path``, safely loaded; every error names the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} cannot be read as UTF-8 text: {err}") from err
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except _DuplicateKeyError as err:
        raise ValueError(
            f"{path}, line {err.line}: key {err.key!r} is set twice (first on line "
            f"{err.first_line}); YAML would silently keep the last one. Remove one of them"
        ) from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from err


# -- meta.yaml digests -----------------------------------------------------------------


def _manifest_digests(folder: Path) -> dict[str, str] | None:
    """``{relative path: sha256}`` of ``folder/meta.yaml``; None when there is none."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    data = _read_yaml(path)
    files = data.get("files") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("format") != _MANIFEST_FORMAT
        or not isinstance(files, list)
        or not all(isinstance(f, dict) and {"path", "sha256"} <= f.keys() for f in files)
    ):
        raise ValueError(
            f"{path} is not an espnet-publish manifest (expected format: {_MANIFEST_FORMAT} "
            "and files: a list of {path, size, sha256}), so the folder cannot be checked. "
            "Re-pack it with espnet_publish.pack_model, or pass verify=False to load it "
            "unchecked"
        )
    return {str(f["path"]): str(f["sha256"]) for f in files}


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _verify(folder: Path, rel: str, digests: dict[str, str]) -> None:
    """Compare ``folder/rel`` with its sha256 in ``meta.yaml``; raise on any difference."""
    manifest = folder / MANIFEST_NAME
    expected = digests.get(rel)
    if expected is None:
        raise ValueError(
            f"{folder / rel} is not listed in {manifest}: it was added or renamed after "
            "packing, so it cannot be checked. Restore the packed folder (re-download or "
            "re-pack), or pass verify=False to load it unchecked"
        )
    actual = _sha256(folder / rel)
    if actual != expected:
        raise ValueError(
            f"{folder / rel} does not match {manifest}: sha256 {actual}, expected {expected}. "
            "The file was modified or corrupted after packing; re-download or re-pack the "
            "model (espnet_publish.verify_manifest lists every difference), or pass "
            "verify=False to load it anyway"
        )


def _tokenizer_files(spec: Any, folder: Path) -> list[str]:
    """Folder-relative POSIX paths of the files a tokenizer spec names (those that exist)."""
    if not isinstance(spec, dict):
        return []
    out = []
    for key, value in spec.items():
        if key != "type" and isinstance(value, str) and (folder / value).is_file():
            out.append(os.path.normpath(value).replace(os.sep, "/"))
    return out


# -- the folder ------------------------------------------------------------------------


def load_model_folder(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    trust_remote_code: bool = False,
    verify: bool = True,
) -> LoadedModel:
    """Build the model from ``config.yaml``, load its weights, put it in eval mode.

    An ESPnet2 model-zoo pack, Hub snapshot or ASR experiment folder loads too
    (:mod:`espnet_infer.espnet2_pack`; it has no digests to verify and no ``class_path``).

    Args:
        path: the model folder on disk (``hf://`` references are resolved by
            :meth:`Speech2Text.from_pretrained <espnet_infer.Speech2Text.from_pretrained>`).
        device: where the model goes.
        trust_remote_code: allow ``config.yaml``'s model block to name code outside
            espnet_model with ``class_path`` (it is imported and run). Only for a folder
            whose source you trust.
        verify: when the folder has ``meta.yaml``, check the sha256 of ``config.yaml``,
            the weights and the tokenizer files against it first. ``False`` skips it.

    Raises:
        FileNotFoundError: no such folder, or no ``config.yaml`` / weights in it.
        ValueError: ``config.yaml`` is not valid YAML or repeats a key; a file does not
            match ``meta.yaml``; the tokenizer does not fit the model.
        UntrustedCodeError: a foreign ``class_path`` without ``trust_remote_code``.
    """
    folder = Path(path)
    config_file = folder / "config.yaml"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"model folder {folder} does not exist (train one with espnet-train, unpack a "
            "packed model there, or fetch one with Speech2Text.from_pretrained('hf://owner/name'))"
        )
    from .espnet2_pack import find_espnet2, load_espnet2_model

    espnet2 = find_espnet2(folder)
    if espnet2 is not None:  # an ESPnet2 zoo pack / Hub repo / experiment (no digests)
        return load_espnet2_model(espnet2, device)
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{config_file} not found: {folder} is not a model folder "
            "(train one with espnet-train, or unpack a packed model there; an ESPnet2 "
            "model-zoo pack has meta.yaml naming yaml_files.asr_train_config)"
        )
    digests = _manifest_digests(folder) if verify else None
    if digests is not None:
        _verify(folder, config_file.name, digests)
    config = _read_yaml(config_file)
    if not isinstance(config, dict):
        raise ValueError(
            f"{config_file} must be a YAML mapping (model, vocab_size, tokenizer, ...), got "
            f"{type(config).__name__}; re-export the model folder"
        )
    if config.get("task", "asr") != "asr":
        raise ValueError(
            f"{config_file} describes a {config['task']!r} model (task: {config['task']}), not "
            "an ASR model: a language model folder goes to decode.lm (Speech2Text(..., lm=...)), "
            "model_dir takes the ASR model folder"
        )
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise KeyError(f"{config_file} lacks the key(s) {missing}; re-export the model folder")
    weights = _weights_file(folder)
    if digests is not None:
        for rel in (weights.name, *_tokenizer_files(config["tokenizer"], folder)):
            _verify(folder, rel, digests)
    tokenizer = load_tokenizer(config["tokenizer"], folder)
    if tokenizer.vocab_size != int(config["vocab_size"]):
        raise ValueError(
            f"{config_file}: vocab_size {config['vocab_size']} != tokenizer's "
            f"{tokenizer.vocab_size}: the tokenizer files do not belong to this model"
        )
    block = dict(config["model"])
    if block.get("normalize") == "global_mvn":  # the statistics are restored from model.pt
        block["normalize_conf"] = {**block.get("normalize_conf", {}), "stats_file": None}
    try:
        model = build_asr_model(
            block, vocab_size=int(config["vocab_size"]), trust_remote_code=trust_remote_code
        )
    except UntrustedCodeError as err:
        raise UntrustedCodeError(
            err.key,
            err.class_path,
            message=(
                f"{config_file}: key model.{err.key} = {err.class_path!r} names code outside "
                "espnet_model, which would be imported and run while the model is built; "
                "refused. Only if you trust this model folder and where it came from, opt "
                "in: load_model_folder(..., trust_remote_code=True), "
                "Speech2Text.from_pretrained(..., trust_remote_code=True), or "
                "trust_remote_code: true in inference.yaml"
            ),
        ) from None
    model.load_state_dict(_load_weights(weights))
    model.to(device).eval()
    return LoadedModel(model=model, tokenizer=tokenizer, config=config, path=folder)


def _weights_file(folder: Path) -> Path:
    """``model.safetensors`` or, failing that, ``model.pt``."""
    for name in _WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"neither {_WEIGHTS[0]} nor {_WEIGHTS[1]} found in {folder}: "
        "the model folder is incomplete"
    )


def _load_weights(weights: Path) -> dict[str, torch.Tensor]:
    """The state dict of a ``.safetensors`` file or a ``torch.save`` one (tensors only)."""
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(weights, device="cpu")
    return torch.load(weights, map_location="cpu", weights_only=True)
