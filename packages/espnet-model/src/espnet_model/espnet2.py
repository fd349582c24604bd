"""Load ESPnet2 ASR experiment folders and model-zoo packs into :class:`ASRModel`.

Usage::

    from espnet_model.espnet2 import load_espnet2

    loaded = load_espnet2("exp/asr_train_asr_conformer_raw_en_bpe5000")  # or a zoo pack
    model, token_list = loaded.model, loaded.token_list
    enc, enc_lens = model.encode(speech, speech_lengths)

An ESPnet2 ``config.yaml`` is translated into this project's model block
(:func:`translate_espnet2_config`): ESPnet2's defaults are filled in for every key the
file leaves out (they differ from this project's: e.g. ``ctc_weight`` 0.5, conformer
``linear_units`` 2048), ``frontend: default`` becomes ``frontend: stft`` (ESPnet2's
centred-STFT frontend) and ``normalize_conf.stats_file`` is dropped (the statistics are
buffers in the checkpoint). Keys that change nothing here (``use_flash_attn``,
``report_cer``, ...) are accepted when they have their neutral value; training-only
regularisers this project lacks (``layer_drop_rate``, ``stochastic_depth_rate``,
``replace_with_zero: false``) are dropped with a warning; intermediate and
self-conditioned CTC (``interctc_layer_idx``, ``interctc_use_conditioning``,
``interctc_weight``) carry over (the checkpoint's ``encoder.conditioning_layer``
loads); anything else that is not implemented raises ``ValueError`` naming the key and value. Module and parameter names
match ESPnet2's, so the state dict loads with ``strict=True``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from espnet_model._espnet2_files import find_files, read_token_list, read_yaml, resolve
from espnet_model.asr import ASRModel
from espnet_model.builder import build_asr_model

Pathlike = str | os.PathLike[str]

# Checkpoint names an ESPnet2 experiment folder holds, most preferred first.
MODEL_FILES: tuple[str, ...] = (
    "valid.acc.ave.pth",
    "valid.acc.best.pth",
    "model.pth",
    "valid.loss.ave.pth",
    "valid.loss.best.pth",
    "latest.pth",
)

_ANY = object()  # "any value is neutral"

# ESPnet2 defaults (espnet 202611) of every argument translated, per component.
_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "encoder": {
        "conformer": {
            "output_size": 256, "attention_heads": 4, "linear_units": 2048, "num_blocks": 6,
            "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.0,
            "input_layer": "conv2d", "normalize_before": True, "macaron_style": False,
            "rel_pos_type": "legacy", "pos_enc_layer_type": "rel_pos",
            "selfattention_layer_type": "rel_selfattn", "activation_type": "swish",
            "use_cnn_module": True, "cnn_module_kernel": 31, "max_pos_emb_len": 5000,
        },
        "transformer": {
            "output_size": 256, "attention_heads": 4, "linear_units": 2048, "num_blocks": 6,
            "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.0,
            "input_layer": "conv2d", "normalize_before": True,
        },
        "contextual_block_conformer": {
            "output_size": 256, "attention_heads": 4, "linear_units": 2048, "num_blocks": 6,
            "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.0,
            "input_layer": "conv2d", "normalize_before": True, "macaron_style": False,
            "selfattention_layer_type": "rel_selfattn", "activation_type": "swish",
            "use_cnn_module": True, "cnn_module_kernel": 31, "block_size": 40, "hop_size": 16,
            "look_ahead": 16, "init_average": True, "ctx_pos_enc": True,
        },
        "e_branchformer": {
            "output_size": 256, "attention_heads": 4, "attention_layer_type": "rel_selfattn",
            "pos_enc_layer_type": "rel_pos", "rel_pos_type": "latest", "cgmlp_linear_units": 2048,
            "cgmlp_conv_kernel": 31, "num_blocks": 12, "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.0, "input_layer": "conv2d",
            "use_ffn": False, "macaron_ffn": False, "activation_type": "swish",
            "linear_units": 2048, "merge_conv_kernel": 3, "max_pos_emb_len": 5000,
        },
    },
    "decoder": {
        "transformer": {
            "attention_heads": 4, "linear_units": 2048, "num_blocks": 6, "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.0,
            "src_attention_dropout_rate": 0.0, "normalize_before": True,
        },
    },
    "frontend": {
        "stft": {
            "fs": 16000, "n_fft": 512, "win_length": None, "hop_length": 128, "window": "hann",
            "center": True, "normalized": False, "onesided": True, "n_mels": 80, "fmin": None,
            "fmax": None, "htk": False,
        },
    },
    "specaug": {
        "specaug": {
            "apply_time_warp": True, "time_warp_window": 5, "time_warp_mode": "bicubic",
            "apply_freq_mask": True, "freq_mask_width_range": [0, 20], "num_freq_mask": 2,
            "apply_time_mask": True, "num_time_mask": 2,
        },
    },
    "normalize": {
        "global_mvn": {"norm_means": True, "norm_vars": True, "eps": 1.0e-20},
        "utterance_mvn": {"norm_means": True, "norm_vars": False, "eps": 1.0e-20},
    },
    "model": {
        "espnet": {"ctc_weight": 0.5, "lsm_weight": 0.0, "ignore_id": -1,
                   "length_normalized_loss": False},
    },
}  # fmt: skip

# ESPnet2 keys with no counterpart here, and the value(s) that make them a no-op.
_COMMON_NEUTRAL: dict[str, Any] = {
    "concat_after": False, "positionwise_layer_type": "linear",
    "positionwise_conv_kernel_size": _ANY, "zero_triu": False, "padding_idx": _ANY,
    "interctc_layer_idx": ([], None), "interctc_use_conditioning": False, "ctc_trim": False,
    "max_pos_emb_len": _ANY, "qk_norm": False, "use_flash_attn": _ANY, "use_sdpa": _ANY,
    "gradient_checkpoint_layers": _ANY, "pos_enc_class": _ANY, "pos_enc_layer_type": _ANY,
    "use_linear_after_conv": False, "gate_activation": "identity", "input_layer": _ANY,
    "use_output_layer": True,
}  # fmt: skip
_NEUTRAL: dict[str, dict[str, Any]] = {
    "encoder": _COMMON_NEUTRAL,
    "decoder": {**_COMMON_NEUTRAL, "input_layer": "embed"},
    "frontend": {"frontend_conf": _ANY, "apply_stft": True},
    "specaug": {
        "replace_with_zero": True, "time_mask_width_range": _ANY,
        "time_mask_width_ratio_range": _ANY,
    },
    "normalize": {"stats_file": _ANY},
    "model": {
        "interctc_weight": 0.0, "report_cer": _ANY, "report_wer": _ANY, "sym_space": _ANY,
        "sym_blank": "<blank>", "transducer_multi_blank_durations": _ANY,
        "transducer_multi_blank_sigma": _ANY, "sym_sos": "<sos/eos>", "sym_eos": "<sos/eos>",
        "autocast_frontend": _ANY, "extract_feats_in_collect_stats": _ANY, "lang_token_id": -1,
        "aux_ctc": None,
    },
    "ctc": {
        "dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": _ANY,
        "zero_infinity": True, "brctc_risk_strategy": _ANY, "brctc_group_strategy": _ANY,
        "brctc_risk_factor": 0.0,
    },
}  # fmt: skip
# Keys kept only when they differ from their neutral value (so translations of models
# without them stay as they were): intermediate / self-conditioned CTC.
_INTERCTC = ("interctc_layer_idx", "interctc_use_conditioning")
_KEPT_IF_SET: dict[str, dict[str, tuple[str, ...]]] = {
    "encoder": {"conformer": _INTERCTC, "transformer": _INTERCTC, "e_branchformer": _INTERCTC},
    "model": {"espnet": ("interctc_weight",)},
}
# Regularisers that only act in training; dropped with a warning.
_TRAINING_ONLY = ("layer_drop_rate", "stochastic_depth_rate", "replace_with_zero")
# ESPnet2 spelling -> this project's, where they differ.
_RENAMES: dict[str, dict[str, str]] = {"e_branchformer": {"ffn_activation_type": "activation_type"}}
_NAMES: dict[str, dict[str, str]] = {"frontend": {"default": "stft"}}
# Top-level ESPnet2 keys that must be empty for a model this project can rebuild.
_MUST_BE_NONE = ("preencoder", "postencoder", "joint_net_conf", "input_size")


@dataclass
class ESPnet2ASR:
    """What :func:`load_espnet2` returns."""

    model: ASRModel
    token_list: list[str]
    model_config: dict[str, Any]  # this project's model block (``build_asr_model`` input)
    config_file: Path
    model_file: Path
    token_type: str | None = None
    bpemodel: Path | None = None


def _neutral(value: Any, neutral: Any) -> bool:
    if neutral is _ANY:
        return True
    if isinstance(neutral, tuple):
        return value in neutral
    return bool(value == neutral)


def _translate_conf(
    section: str, name: str, conf: Mapping[str, Any] | None, where: str
) -> dict[str, Any]:
    """Fill ESPnet2 defaults into ``conf`` and map it to this project's keyword arguments."""
    if conf is not None and not isinstance(conf, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {conf!r}")
    renames = _RENAMES.get(name, {})
    given = {renames.get(k, k): v for k, v in (conf or {}).items()}
    defaults = _DEFAULTS[section][name]
    out = {k: given.get(k, v) for k, v in defaults.items()}
    for key, value in given.items():
        if key in defaults:
            continue
        neutral = _NEUTRAL.get(section, {})
        if key in neutral and _neutral(value, neutral[key]):
            continue
        if key in _KEPT_IF_SET.get(section, {}).get(name, ()):
            out[key] = value
            continue
        if key in _TRAINING_ONLY:
            warnings.warn(
                f"{where}.{key}={value!r} acts only in training and is not implemented in "
                "espnet-model; dropped (inference outputs are unaffected)",
                stacklevel=3,
            )
            continue
        raise ValueError(
            f"{where}.{key}={value!r} is not supported by espnet-model "
            f"({'supported value: ' + repr(neutral[key]) if key in neutral else 'unknown key'}); "
            "this ESPnet2 model cannot be rebuilt here"
        )
    return out


def _choice(config: Mapping[str, Any], key: str, default: str | None) -> str | None:
    name = config.get(key, default)
    if name is None or (isinstance(name, str) and name.lower() == "none"):
        return None
    name = _NAMES.get(key, {}).get(name, name)
    if name not in _DEFAULTS[key]:
        options = [n for n in _DEFAULTS[key] if n not in _NAMES.get(key, {}).values()]
        options += list(_NAMES.get(key, {}))
        raise ValueError(
            f"config.yaml: {key}={config.get(key)!r} is not supported by espnet-model; "
            f"supported: {', '.join(map(repr, options))}"
        )
    return str(name)


def translate_espnet2_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """ESPnet2 ``config.yaml`` (as a dict) -> this project's model block.

    Raises ``ValueError`` naming the key and value for anything not implemented here.
    """
    for key in _MUST_BE_NONE:
        if config.get(key) not in (None, "none", {}):
            raise ValueError(
                f"config.yaml: {key}={config[key]!r} is not supported by espnet-model "
                "(only models without it can be loaded)"
            )
    out: dict[str, Any] = {}
    frontend = _choice(config, "frontend", "default")
    assert frontend is not None
    out["frontend"] = frontend
    out["frontend_conf"] = _translate_conf(
        "frontend", frontend, config.get("frontend_conf"), "frontend_conf"
    )
    for key, default in (("specaug", None), ("normalize", None), ("decoder", None)):
        name = _choice(config, key, default)
        out[key] = name
        if name is not None:
            out[f"{key}_conf"] = _translate_conf(
                key, name, config.get(f"{key}_conf"), f"{key}_conf"
            )
    encoder = _choice(config, "encoder", "rnn")
    assert encoder is not None
    out["encoder"] = encoder
    out["encoder_conf"] = _translate_conf(
        "encoder", encoder, config.get("encoder_conf"), "encoder_conf"
    )
    if out["specaug"] is not None:  # one of the two time-mask ranges, as given
        for key in ("time_mask_width_range", "time_mask_width_ratio_range"):
            value = (config.get("specaug_conf") or {}).get(key)
            if value is not None:
                out["specaug_conf"][key] = value
    model = _choice(config, "model", "espnet")
    assert model is not None
    out["model_conf"] = _translate_conf("model", model, config.get("model_conf"), "model_conf")
    for key, value in (config.get("ctc_conf") or {}).items():
        neutral = _NEUTRAL["ctc"]
        if key not in neutral or not _neutral(value, neutral[key]):
            raise ValueError(
                f"config.yaml: ctc_conf.{key}={value!r} is not supported by espnet-model "
                f"(supported: {neutral.get(key, 'no such key')!r})"
            )
    return out


def find_espnet2_files(path: Pathlike) -> tuple[Path, Path]:
    """``(config.yaml, checkpoint)`` of an ESPnet2 experiment folder, zoo pack or config file.

    Accepts: a ``config.yaml`` path; an experiment folder holding ``config.yaml`` and a
    checkpoint (:data:`MODEL_FILES`, most preferred first); a model-zoo pack whose
    ``meta.yaml`` names ``yaml_files.asr_train_config`` and ``files.asr_model_file``; or a
    folder with exactly one ``exp/*/config.yaml``.
    """
    return find_files(path, names=MODEL_FILES, meta_keys=("asr_train_config", "asr_model_file"),
                      exp_glob="exp/*", what="ASR")


def _token_list(config: Mapping[str, Any], config_file: Path, tokens: Any = None) -> list[str]:
    if tokens is None:
        tokens = read_token_list(dict(config), config_file)
    if not isinstance(tokens, list) or len(tokens) < 3:
        raise ValueError(f"{config_file}: token_list must be a list of >= 3 tokens or a file")
    sos = (config.get("model_conf") or {}).get("sym_sos", "<sos/eos>")
    if tokens[0] != "<blank>" or tokens[-1] != sos:
        raise ValueError(
            f"{config_file}: token_list must start with '<blank>' and end with {sos!r} "
            f"(espnet-model fixes blank=0 and sos/eos=last), got {tokens[0]!r} ... {tokens[-1]!r}"
        )
    return [str(t) for t in tokens]


def convert_espnet2_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Upgrade older ESPnet2 key layouts to the current one (as ESPnet2 itself does).

    Subsampling ``embed.out.0.*`` (Linear inside a Sequential) becomes ``embed.out.*``;
    ``embed.out.1.*`` (the positional encoding, no parameters) is dropped.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".embed.out.1." in key:
            continue
        out[key.replace(".embed.out.0.", ".embed.out.")] = value
    return out


def load_espnet2(
    path: Pathlike,
    model_file: Pathlike | None = None,
    map_location: str | torch.device = "cpu",
    *,
    token_list: list[str] | None = None,
) -> ESPnet2ASR:
    """Build the model an ESPnet2 ASR experiment describes and load its weights.

    Args:
        path: experiment folder, model-zoo pack or ``config.yaml`` (see
            :func:`find_espnet2_files`).
        model_file: checkpoint to load instead of the one found next to the config.
        map_location: where the weights go.
        token_list: the tokens, when the caller has read ``token_list`` itself (a
            loader that resolves a pack's files inside the pack); checked as read ones.

    The model is returned in eval mode. Raises ``ValueError`` for a configuration
    espnet-model cannot rebuild and ``RuntimeError`` naming the keys when the
    checkpoint does not match the configuration.
    """
    root = Path(path)
    if model_file is not None and (root.is_file() or (root / "config.yaml").is_file()):
        config_file = root if root.is_file() else root / "config.yaml"
        checkpoint = Path(model_file)
    else:
        config_file, found = find_espnet2_files(root)
        checkpoint = Path(model_file) if model_file is not None else found
    config = read_yaml(config_file)
    tokens = _token_list(config, config_file, token_list)
    model_config = translate_espnet2_config(config)
    model = build_asr_model(model_config, vocab_size=len(tokens))
    assert isinstance(model, ASRModel)
    state = torch.load(checkpoint, map_location=map_location, weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]  # checkpoint.pth: {"model": ..., "optimizers": ...}
    if not isinstance(state, Mapping):
        raise ValueError(f"{checkpoint}: expected a state dict, got {type(state).__name__}")
    state = convert_espnet2_state_dict(state)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(
            f"{checkpoint} does not match {config_file}: missing {result.missing_keys[:8]} "
            f"({len(result.missing_keys)}), unexpected {result.unexpected_keys[:8]} "
            f"({len(result.unexpected_keys)}); is the checkpoint from this experiment?"
        )
    model.to(map_location).eval()
    bpemodel = config.get("bpemodel")
    return ESPnet2ASR(
        model=model,
        token_list=tokens,
        model_config=model_config,
        config_file=config_file,
        model_file=checkpoint,
        token_type=config.get("token_type"),
        bpemodel=resolve(str(bpemodel), config_file) if bpemodel else None,
    )
