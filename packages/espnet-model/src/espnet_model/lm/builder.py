"""ESPnet2-style LM config -> :class:`LanguageModel` (the one place it becomes objects).

Example (YAML, as in ``egs2/*/asr1/conf/train_lm*.yaml``)::

    lm: transformer              # transformer | seq_rnn (ESPnet2's default)
    lm_conf: {pos_enc: null, embed_unit: 128, att_unit: 512, head: 8, unit: 2048,
              layer: 16, dropout_rate: 0.0}
    model: lm                    # optional; the only choice
    model_conf: {ignore_id: 0}   # optional

Every ``lm_conf`` key left out takes ESPnet2's default (the constructors' defaults are
ESPnet2's). ``vocab_size`` is derived from the token list; never set it in the config.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

from espnet_model._checks import did_you_mean
from espnet_model.lm.base import BaseLM
from espnet_model.lm.model import LanguageModel
from espnet_model.lm.seq_rnn import SequentialRNNLM
from espnet_model.lm.transformer import TransformerLM

# The closed set of networks, written once: ``lm:`` name -> class.
LM_CHOICES: dict[str, type[BaseLM]] = {"seq_rnn": SequentialRNNLM, "transformer": TransformerLM}
DEFAULT_LM = "seq_rnn"  # ESPnet2's default when ``lm`` is left out
VALID_KEYS: tuple[str, ...] = ("lm", "lm_conf", "model", "model_conf")
MODEL_KEYS: tuple[str, ...] = ("ignore_id",)


def _mapping(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    conf = config.get(key) or {}
    if not isinstance(conf, Mapping):
        raise ValueError(f"{key} must be a mapping of keyword arguments, got {conf!r}")
    return dict(conf)


def lm_conf_keys(name: str) -> tuple[str, ...]:
    """The ``lm_conf`` keys the network ``name`` accepts (its arguments but ``vocab_size``)."""
    params = inspect.signature(LM_CHOICES[name]).parameters
    return tuple(p for p in params if p != "vocab_size")


def build_lm(config: Mapping[str, Any], vocab_size: int) -> LanguageModel:
    """Build a :class:`LanguageModel` from an ESPnet2-style LM block (module docstring).

    Raises ``ValueError`` naming the key and the valid keys or choices for an unknown
    top-level key, ``lm`` choice, ``lm_conf`` key or ``model_conf`` key.
    """
    for key in config:
        if key not in VALID_KEYS:
            raise ValueError(f"unknown LM config key {key!r}{did_you_mean(key, VALID_KEYS)}; "
                             f"valid keys: {', '.join(VALID_KEYS)}")
    name = config.get("lm") or DEFAULT_LM
    if name not in LM_CHOICES:
        raise ValueError(
            f"lm={name!r} is unknown{did_you_mean(str(name), LM_CHOICES)}; "
            f"valid choices: {', '.join(map(repr, LM_CHOICES))}"
        )
    if config.get("model", "lm") not in ("lm", None):
        raise ValueError(f"model={config['model']!r} is unknown; valid choices: 'lm'")
    lm_conf = _mapping(config, "lm_conf")
    allowed = lm_conf_keys(name)
    for key in lm_conf:
        if key == "vocab_size":
            raise ValueError("lm_conf.vocab_size is derived from the token list; remove it")
        if key not in allowed:
            raise ValueError(
                f"lm_conf.{key} is not an argument of lm={name!r}{did_you_mean(key, allowed)}; "
                f"valid keys: {', '.join(allowed)}"
            )
    model_conf = _mapping(config, "model_conf")
    for key in model_conf:
        if key not in MODEL_KEYS:
            raise ValueError(f"model_conf.{key} is unknown{did_you_mean(key, MODEL_KEYS)}; "
                             f"valid keys: {', '.join(MODEL_KEYS)}")
    network = LM_CHOICES[name](vocab_size=vocab_size, **lm_conf)
    return LanguageModel(network, vocab_size=vocab_size, **model_conf)


def check_lm_config(config: Mapping[str, Any]) -> None:
    """Validate an LM block without allocating weights: :func:`build_lm` on the ``meta``
    device (shapes only), so every key and constructor check runs.

    Raises:
        ValueError: what is wrong, naming the key (and the closest valid one).
    """
    with torch.device("meta"):
        build_lm(config, vocab_size=8)
