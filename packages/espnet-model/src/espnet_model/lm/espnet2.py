"""Load ESPnet2 language models (``exp/lm_*`` folders, model-zoo packs) into :class:`LanguageModel`.

Usage::

    from espnet_model.lm import load_espnet2_lm

    loaded = load_espnet2_lm("exp/lm_train_lm_transformer2_en_bpe5000")  # or a zoo pack
    model, token_list = loaded.model, loaded.token_list
    logp, state = model.batch_score(ys)                # ys: (n, L), <sos/eos> first

ESPnet2's ``config.yaml`` is translated into this project's LM block
(:func:`translate_espnet2_lm_config`): ``lm``, ``lm_conf`` with ESPnet2's default filled
in for every key the file leaves out, and ``model_conf``. The trainer's keys (optimiser,
batching, paths) do not describe the model and are not read. An ``lm`` or ``model`` this
project lacks (``transformer_opt``, ``lm_multitask``) or an unknown ``lm_conf`` /
``model_conf`` key raises ``ValueError`` naming it. Module and parameter names match
ESPnet2's, so the checkpoint loads with ``strict=True`` and gives ESPnet2's outputs.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from espnet_model._espnet2_files import find_files, read_token_list, read_yaml, resolve
from espnet_model.lm.builder import LM_CHOICES, MODEL_KEYS, build_lm, lm_conf_keys
from espnet_model.lm.model import LanguageModel

Pathlike = str | os.PathLike[str]

# Checkpoint names an ESPnet2 LM experiment or pack holds, most preferred first
# (LM recipes keep the best models by validation loss).
LM_MODEL_FILES: tuple[str, ...] = (
    "valid.loss.ave.pth",
    "valid.loss.best.pth",
    "lm.pth",
    "model.pth",
    "latest.pth",
)
# ESPnet2's ``ESPnetLanguageModel`` defaults (espnet 202611).
_MODEL_DEFAULTS: dict[str, Any] = {"ignore_id": 0}


@dataclass
class ESPnet2LM:
    """What :func:`load_espnet2_lm` returns."""

    model: LanguageModel
    token_list: list[str]
    lm_config: dict[str, Any]  # this project's LM block (``build_lm`` input)
    config_file: Path
    model_file: Path
    token_type: str | None = None
    bpemodel: Path | None = None


def espnet2_lm_defaults(name: str) -> dict[str, Any]:
    """ESPnet2's ``lm_conf`` defaults of network ``name`` (our constructors share them)."""
    params = inspect.signature(LM_CHOICES[name]).parameters
    return {key: params[key].default for key in lm_conf_keys(name)}


def translate_espnet2_lm_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """ESPnet2 LM ``config.yaml`` (as a dict) -> this project's LM block (``build_lm`` input).

    Raises ``ValueError`` naming the key and value for anything not implemented here.
    """
    name = config.get("lm", "seq_rnn")
    if name not in LM_CHOICES:
        raise ValueError(
            f"config.yaml: lm={name!r} is not supported by espnet-model; supported: "
            f"{', '.join(map(repr, LM_CHOICES))}"
        )
    if config.get("model", "lm") != "lm":
        raise ValueError(
            f"config.yaml: model={config['model']!r} is not supported by espnet-model "
            "(only ESPnet2's 'lm', ESPnetLanguageModel)"
        )
    out: dict[str, Any] = {"lm": name, "model": "lm"}
    for key, defaults in (("lm_conf", espnet2_lm_defaults(name)), ("model_conf", _MODEL_DEFAULTS)):
        given = config.get(key) or {}
        if not isinstance(given, Mapping):
            raise ValueError(f"config.yaml: {key} must be a mapping, got {given!r}")
        for item, value in given.items():
            if item not in defaults:
                raise ValueError(
                    f"config.yaml: {key}.{item}={value!r} is not supported by espnet-model "
                    f"(known keys of lm={name!r}: {', '.join(defaults)}); this ESPnet2 LM "
                    "cannot be rebuilt here"
                )
        out[key] = {item: given.get(item, default) for item, default in defaults.items()}
    assert set(out["model_conf"]) <= set(MODEL_KEYS)
    return out


def find_espnet2_lm_files(path: Pathlike) -> tuple[Path, Path]:
    """``(config.yaml, checkpoint)`` of an ESPnet2 LM experiment folder, zoo pack or config.

    Accepts: a ``config.yaml`` path; a folder holding ``config.yaml`` and a checkpoint
    (:data:`LM_MODEL_FILES`, most preferred first, else its only ``*.pth``); a model-zoo
    pack whose ``meta.yaml`` names ``yaml_files.lm_train_config`` and ``files.lm_file``;
    or a folder with exactly one ``exp/lm_*/config.yaml``.
    """
    return find_files(path, names=LM_MODEL_FILES, meta_keys=("lm_train_config", "lm_file"),
                      exp_glob="exp/lm_*", what="LM")


def _token_list(config: Mapping[str, Any], config_file: Path) -> list[str]:
    tokens = read_token_list(dict(config), config_file)
    if not isinstance(tokens, list) or len(tokens) < 2:
        raise ValueError(
            f"{config_file}: token_list must be a list of >= 2 tokens (the last is <sos/eos>) "
            "or the path of a token file"
        )
    return [str(t) for t in tokens]


def load_espnet2_lm(
    path: Pathlike,
    model_file: Pathlike | None = None,
    map_location: str | torch.device = "cpu",
) -> ESPnet2LM:
    """Build the LM an ESPnet2 ``config.yaml`` describes and load its weights (eval mode).

    Args:
        path: LM experiment folder, model-zoo pack or ``config.yaml``
            (see :func:`find_espnet2_lm_files`).
        model_file: checkpoint to load instead of the one found next to the config; an
            ESPnet2 ``checkpoint.pth`` (``{"model": ...}``) is accepted.
        map_location: where the weights go.

    Raises ``ValueError`` for a configuration espnet-model cannot rebuild and
    ``RuntimeError`` naming the keys when the checkpoint does not match it.
    """
    root = Path(path)
    if model_file is not None and (root.is_file() or (root / "config.yaml").is_file()):
        config_file = root if root.is_file() else root / "config.yaml"
        checkpoint = Path(model_file)
    else:
        config_file, found = find_espnet2_lm_files(root)
        checkpoint = Path(model_file) if model_file is not None else found
    config = read_yaml(config_file)
    tokens = _token_list(config, config_file)
    lm_config = translate_espnet2_lm_config(config)
    model = build_lm(lm_config, vocab_size=len(tokens))
    state = torch.load(checkpoint, map_location=map_location, weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]  # checkpoint.pth: {"model": ..., "optimizers": ...}
    if not isinstance(state, Mapping):
        raise ValueError(f"{checkpoint}: expected a state dict, got {type(state).__name__}")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise RuntimeError(
            f"{checkpoint} does not match {config_file}: missing {missing[:8]} ({len(missing)}), "
            f"unexpected {unexpected[:8]} ({len(unexpected)}); is the checkpoint from this "
            "LM experiment?"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # same names, other shapes
        raise RuntimeError(f"{checkpoint} does not match {config_file}: {err}") from err
    model.to(map_location).eval()
    bpemodel = config.get("bpemodel")
    return ESPnet2LM(
        model=model,
        token_list=tokens,
        lm_config=lm_config,
        config_file=config_file,
        model_file=checkpoint,
        token_type=config.get("token_type"),
        bpemodel=resolve(str(bpemodel), config_file) if bpemodel else None,
    )
