"""ESPnet2-style model config -> :class:`ASRModel` (the one place config becomes objects).

Example (YAML, as in ``egs2/*/asr1/conf/train_*.yaml``)::

    frontend: default            # = fbank; stft = ESPnet2's DefaultFrontend (centred STFT)
    frontend_conf: {n_fft: 512, win_length: 400, hop_length: 160, n_mels: 80}
    specaug: specaug
    specaug_conf: {num_freq_mask: 2, time_mask_width_ratio_range: [0.0, 0.05]}
    normalize: global_mvn
    normalize_conf: {stats_file: exp/stats/train/feats_stats.npz}
    encoder: conformer           # transformer | e_branchformer, or {class_path, init_args}
    encoder_conf: {output_size: 144, num_blocks: 6, cnn_module_kernel: 15}
    decoder: transformer         # or null for CTC only (ctc_weight: 1.0)
    decoder_conf: {num_blocks: 2, linear_units: 576}
    model_conf: {ctc_weight: 0.3, lsm_weight: 0.1, length_normalized_loss: false}

Intermediate / self-conditioned CTC (ESPnet2's keys; conformer, transformer,
e_branchformer)::

    encoder_conf: {num_blocks: 6, interctc_layer_idx: [3], interctc_use_conditioning: true}
    model_conf: {ctc_weight: 0.3, interctc_weight: 0.5}

Derived values: the encoder's ``input_size`` is the frontend's ``n_mels``, GlobalMVN's
``num_features`` likewise, and the decoder's ``encoder_output_size`` is the encoder's
``output_size()``. Never set them in the config.

Trust: a ``class_path`` (the whole block, or the encoder) imports and calls whatever it
names, so it runs code chosen by whoever wrote the config. Only the components of
:data:`CHOICES` are built by default; any other ``class_path`` raises
:class:`UntrustedCodeError` unless the caller passes ``trust_remote_code=True``
(training does, for the user's own ``training.yaml``; loading a downloaded model folder
does not).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from espnet_model import _espnet2_keys as espnet2_keys
from espnet_model._checks import did_you_mean
from espnet_model.asr import ASRModel
from espnet_model.decoder import TransformerDecoder
from espnet_model.encoders import (
    ConformerEncoder,
    ContextualBlockConformerEncoder,
    EBranchformerEncoder,
    TransformerEncoder,
)
from espnet_model.frontend import Fbank, StftFrontend, parse_fs
from espnet_model.normalize import GlobalMVN, UtteranceMVN
from espnet_model.specaug import SpecAug

# The closed set of choices, written once: config key -> {name: class}.
CHOICES: dict[str, dict[str, Callable[..., nn.Module]]] = {
    "frontend": {"default": Fbank, "fbank": Fbank, "stft": StftFrontend},
    "specaug": {"specaug": SpecAug},
    "normalize": {"global_mvn": GlobalMVN, "utterance_mvn": UtteranceMVN},
    "encoder": {
        "conformer": ConformerEncoder,
        "transformer": TransformerEncoder,
        "e_branchformer": EBranchformerEncoder,
        "contextual_block_conformer": ContextualBlockConformerEncoder,
    },
    "decoder": {"transformer": TransformerDecoder},
}
_OPTIONAL = ("specaug", "normalize", "decoder")
# class_path values that name a component of CHOICES: built without trust_remote_code.
_OWN_CLASS_PATHS = frozenset(
    path
    for options in CHOICES.values()
    for cls in options.values()
    for path in (f"{cls.__module__}.{cls.__qualname__}", f"espnet_model.{cls.__qualname__}")
)
_MODEL_KEYS = ("ctc_weight", "interctc_weight", "lsm_weight", "length_normalized_loss", "ignore_id")
_INTERCTC_KEYS = ("interctc_layer_idx", "interctc_use_conditioning")
_DERIVED = {
    "encoder_conf": ("input_size",),
    "decoder_conf": ("vocab_size", "encoder_output_size"),
    "normalize_conf": ("num_features",),
}
_CHECK_VOCAB = 8  # vocabulary of the shapes-only build in check_asr_config (no tokenizer yet)
VALID_KEYS: tuple[str, ...] = (
    *(k for name in CHOICES for k in (name, f"{name}_conf")),
    "model",
    "model_conf",
)


class UntrustedCodeError(ValueError):
    """A ``class_path`` names code outside :data:`CHOICES` and ``trust_remote_code`` is off.

    Attributes:
        key: where the class_path is in the model block (``class_path`` or
            ``encoder.class_path``).
        class_path: its value.

    ``message`` replaces the default text, e.g. to name the file the block came from.
    """

    def __init__(self, key: str, class_path: str, *, message: str | None = None) -> None:
        self.key = key
        self.class_path = class_path
        super().__init__(
            message
            or f"model block key {key}={class_path!r} is not one of espnet_model's own "
            "components; building it would import and run that code. Refused: pass "
            "trust_remote_code=True only if you trust where this config comes from"
        )


def _choices_text(options: Mapping[str, Any] | tuple[str, ...]) -> str:
    return ", ".join(repr(o) for o in options)


def _conf(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    conf = config.get(key) or {}
    if not isinstance(conf, Mapping):
        raise ValueError(f"{key} must be a mapping of keyword arguments, got {conf!r}")
    for derived in _DERIVED.get(key, ()):
        if derived in conf:
            raise ValueError(
                f"{key}.{derived}={conf[derived]!r} is derived by the builder; remove it from the config"
            )
    return dict(conf)


def _check_kwargs(
    key: str, factory: Callable[..., Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """``kwargs`` as ``factory`` takes them: ESPnet2's spellings renamed, ESPnet2-only keys
    with a neutral value dropped (:mod:`espnet_model._espnet2_keys`); any other key it
    lacks is refused, naming the closest valid one."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    allowed = [n for n in params if n not in ("self", *_DERIVED.get(key, ()))]
    renames = espnet2_keys.RENAMES.get(getattr(factory, "__name__", ""), {})
    accepted: dict[str, Any] = {}
    for name, value in kwargs.items():
        target = renames.get(name, name)
        if target in params:
            if target in accepted:
                theirs = next(k for k, v in renames.items() if v == target)
                raise ValueError(f"{key}: {theirs} is ESPnet2's spelling of {target}; give one of them")
            accepted[target] = value
        elif not espnet2_keys.neutral_or_refuse(key, name, value):
            hint = did_you_mean(name, allowed)
            if factory is Fbank and name in espnet2_keys.STFT_ONLY:
                hint += " (ESPnet2's frontend: default, the STFT frontend, is frontend: stft here)"
            raise ValueError(
                f"{key}.{name} is not an argument of {factory.__name__}{hint}; valid keys: "
                f"{', '.join(allowed)}"
            )
    return accepted


def _check_interctc_support(
    name: str, factory: Callable[..., Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """``kwargs`` for an encoder: intermediate CTC keys refused for one without taps (as
    ESPnet2's has none), or dropped there when neutral (``[]``, ``false``)."""
    if "interctc_layer_idx" in inspect.signature(factory).parameters:
        return dict(kwargs)
    given = [k for k in _INTERCTC_KEYS if kwargs.get(k)]
    if given:
        supported = [n for n, f in CHOICES["encoder"].items()
                     if "interctc_layer_idx" in inspect.signature(f).parameters]
        raise ValueError(
            f"encoder_conf.{given[0]}={kwargs[given[0]]!r}: encoder {name!r} has no intermediate "
            f"CTC (neither has ESPnet2's); use one of {_choices_text(supported)}, or remove "
            f"{' and '.join(given)}"
        )
    return {k: v for k, v in kwargs.items() if k not in _INTERCTC_KEYS}


def _make(
    key: str, config: Mapping[str, Any], *, trust_remote_code: bool = False, **derived: Any
) -> nn.Module | None:
    """Instantiate ``config[key]`` with ``config[key + '_conf']`` plus derived arguments.

    An encoder given as ``{class_path, init_args}`` is built only when it names a
    component of :data:`CHOICES` or ``trust_remote_code`` is true.
    """
    name = config.get(key, "default" if key == "frontend" else None)
    kwargs = _conf(config, f"{key}_conf")
    if name is None:
        if key not in _OPTIONAL:
            raise ValueError(f"{key} is required; choose one of {_choices_text(CHOICES[key])}")
        return None
    if isinstance(name, Mapping) and key == "encoder":
        return _from_class_path("encoder", name, derived, trust_remote_code=trust_remote_code)
    if name not in CHOICES[key]:
        options = (*CHOICES[key], *((None,) if key in _OPTIONAL else ()))
        hint = did_you_mean(name, CHOICES[key]) if isinstance(name, str) else ""
        raise ValueError(f"{key}={name!r} is unknown{hint}; valid choices: {_choices_text(options)}")
    factory = CHOICES[key][name]
    if factory is Fbank and "fs" in kwargs:  # ESPnet2 spells the sampling rate `fs`
        kwargs["sample_rate"] = parse_fs(kwargs.pop("fs"))
    if key == "encoder":
        kwargs = _check_interctc_support(name, factory, kwargs)
    kwargs = _check_kwargs(f"{key}_conf", factory, kwargs)
    return factory(**derived, **kwargs)


def _import_class_path(
    where: str, spec: Mapping[str, Any], *, trust_remote_code: bool = False
) -> Callable[..., Any]:
    """The class a ``{class_path, init_args}`` mapping names, imported only when it is one
    of :data:`CHOICES` or ``trust_remote_code`` is true."""
    unknown = set(spec) - {"class_path", "init_args"}
    if "class_path" not in spec or unknown:
        raise ValueError(
            f"{where}={dict(spec)!r}: a mapping must have exactly class_path and optional init_args"
        )
    path = str(spec["class_path"])
    if not trust_remote_code and path not in _OWN_CLASS_PATHS:
        raise UntrustedCodeError("class_path" if where == "model" else f"{where}.class_path", path)
    module_name, _, attr = path.rpartition(".")
    try:
        factory: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{where}.class_path={path!r} cannot be imported: {err}") from err
    return factory


def _from_class_path(
    where: str,
    spec: Mapping[str, Any],
    derived: Mapping[str, Any],
    optional: tuple[str, ...] = (),
    *,
    trust_remote_code: bool = False,
) -> nn.Module:
    """``{class_path: pkg.mod.Class, init_args: {...}}`` (LightningCLI style).

    ``derived`` arguments are always passed; ``optional`` ones among them only when the
    class's signature has a parameter of that name (and ``init_args`` does not set it).
    Unless ``trust_remote_code``, a class_path outside :data:`CHOICES` is refused before
    anything is imported (importing a module runs its code).
    """
    factory = _import_class_path(where, spec, trust_remote_code=trust_remote_code)
    path = str(spec["class_path"])
    kwargs = dict(spec.get("init_args") or {})
    kwargs = _check_kwargs(f"{where}.init_args", factory, kwargs)
    params = inspect.signature(factory).parameters
    passed = {
        k: v for k, v in derived.items() if k not in optional or (k in params and k not in kwargs)
    }
    model = factory(**passed, **kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"{where}.class_path={path!r} built a {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def _check_top_level(config: Mapping[str, Any]) -> None:
    """Refuse an unknown top-level key of an ESPnet2-style block (naming the closest valid
    one); ESPnet2's ``ctc_conf`` and empty ``preencoder`` / ``postencoder`` /
    ``joint_net_conf`` are accepted where they change nothing."""
    for key, value in config.items():
        if key in VALID_KEYS:
            continue
        if key == "ctc_conf":
            for name, setting in _conf(config, key).items():
                if not espnet2_keys.neutral_or_refuse(key, name, setting):
                    known = ", ".join(espnet2_keys.RULES[key])
                    raise ValueError(f"ctc_conf.{name} is unknown{did_you_mean(name, espnet2_keys.RULES[key])}; "
                                     f"ESPnet2's ctc_conf keys: {known}")
            continue
        if key in espnet2_keys.EMPTY_TOP_LEVEL:
            if value in (None, "none", {}):
                continue
            raise ValueError(f"{key}={value!r}: {espnet2_keys.EMPTY_TOP_LEVEL[key]}; remove it")
        valid = (*VALID_KEYS, "ctc_conf")
        raise ValueError(
            f"unknown model config key {key!r}{did_you_mean(key, valid)}; valid keys: {', '.join(valid)}"
        )


def check_asr_config(config: Mapping[str, Any], *, trust_remote_code: bool = False) -> None:
    """Validate an ESPnet2-style model block without allocating weights.

    The model is built on PyTorch's ``meta`` device (shapes only, no memory, no
    initialisation), so every check of the builder and of the constructors runs: unknown
    keys and choices (with the closest valid one), derived keys, sizes that do not
    divide. ``normalize_conf.stats_file`` is not read (``collect_stats`` writes it later).
    A ``class_path`` block is checked against its class's signature only: its
    constructor is the user's code and runs at training time.

    Raises:
        ValueError: what is wrong, naming the key.
    """
    if "class_path" in config:
        spec = dict(config)
        factory = _import_class_path("model", spec, trust_remote_code=trust_remote_code)
        _check_kwargs("model.init_args", factory, dict(spec.get("init_args") or {}))
        return
    block = dict(config)
    if block.get("normalize") == "global_mvn":
        block["normalize_conf"] = {**_conf(block, "normalize_conf"), "stats_file": None}
    _build_asr_model(block, _CHECK_VOCAB, trust_remote_code=trust_remote_code, shapes_only=True)


def build_frontend(config: Mapping[str, Any]) -> nn.Module:
    """The frontend alone from a model block (``frontend`` + ``frontend_conf``), e.g. for
    collect_stats; a ``class_path`` block's own frontend is not reachable here."""
    if "class_path" in config:
        raise ValueError(
            "build_frontend: a class_path model block has no ESPnet2-style frontend; "
            "compute statistics with the model's collect_feats instead"
        )
    frontend = _make("frontend", config)
    assert frontend is not None
    return frontend


def build_asr_model(
    config: Mapping[str, Any], vocab_size: int, *, trust_remote_code: bool = False
) -> nn.Module:
    """Build an :class:`ASRModel` from an ESPnet2-style model config (see module docstring).

    A block with ``class_path`` (and optional ``init_args``) instead builds any custom
    ``torch.nn.Module`` that follows the training contract; it receives ``vocab_size``
    when its signature has that parameter and ``init_args`` does not set it.

    Args:
        config: the model block.
        vocab_size: the tokenizer's vocabulary size.
        trust_remote_code: allow a ``class_path`` (of the block or of its encoder) that
            names code outside :data:`CHOICES`; it is imported and run. Pass True only
            for a config you wrote or trust (your own ``training.yaml``), never for a
            downloaded model folder you have not read.

    Raises:
        UntrustedCodeError: such a class_path while ``trust_remote_code`` is False.
    """
    return _build_asr_model(config, vocab_size, trust_remote_code=trust_remote_code)


def _build_asr_model(
    config: Mapping[str, Any], vocab_size: int, *, trust_remote_code: bool, shapes_only: bool = False
) -> nn.Module:
    """:func:`build_asr_model`; ``shapes_only``: all but the frontend (whose filterbank is
    computed from values) on the ``meta`` device, for :func:`check_asr_config`."""
    if "class_path" in config:
        return _from_class_path(
            "model", config, {"vocab_size": vocab_size}, ("vocab_size",),
            trust_remote_code=trust_remote_code,
        )
    _check_top_level(config)
    if config.get("model", "espnet") != "espnet":
        raise ValueError(f"model={config['model']!r} is unknown; valid choices: 'espnet'")
    model_conf = _conf(config, "model_conf")
    for key, value in list(model_conf.items()):
        if key not in _MODEL_KEYS:
            if espnet2_keys.neutral_or_refuse("model_conf", key, value):
                del model_conf[key]
                continue
            raise ValueError(f"model_conf.{key} is unknown{did_you_mean(key, _MODEL_KEYS)}; "
                             f"valid keys: {', '.join(_MODEL_KEYS)}")
    frontend = _make("frontend", config)
    assert isinstance(frontend, Fbank | StftFrontend)
    n_mels = frontend.output_size
    with torch.device("meta") if shapes_only else contextlib.nullcontext():
        specaug = _make("specaug", config)
        normalize = _make(
            "normalize",
            config,
            **({"num_features": n_mels} if config.get("normalize") == "global_mvn" else {}),
        )
        encoder = _make("encoder", config, trust_remote_code=trust_remote_code, input_size=n_mels)
        assert encoder is not None
        size = encoder.output_size
        enc_size = int(size() if callable(size) else size)
        decoder = _make("decoder", config, vocab_size=vocab_size, encoder_output_size=enc_size)
        return ASRModel(
            vocab_size=vocab_size,
            frontend=frontend,
            encoder=encoder,
            decoder=decoder,  # type: ignore[arg-type]
            specaug=specaug,  # type: ignore[arg-type]
            normalize=normalize,  # type: ignore[arg-type]
            **model_conf,
        )
