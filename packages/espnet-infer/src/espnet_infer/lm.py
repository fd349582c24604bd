"""Load a language model for shallow fusion, and check it shares the ASR tokenizer.

An LM folder is what espnet-train's LM task exports (``task: lm``), and what
``espnet_publish.pack_model(..., lm_dir=...)`` packs as ``<pack>/lm/``::

    config.yaml        task: lm
                       model: {lm: transformer, lm_conf: {...}, model_conf: {...}}
                       vocab_size: 5000
                       tokenizer: {type: sentencepiece, model: tokenizer/bpe.model}
                       training: {...}                    # summary, not read
    model.pt           LanguageModel state dict (keys lm.*), or model.safetensors (packed)
    tokenizer/         the tokenizer the LM was trained with: the ASR model's
    meta.yaml          (packed only) sha256 of every file, checked before loading

``model`` is an ``espnet_model.lm.build_lm`` block. It is loaded as an ASR model folder is
(:mod:`espnet_infer.loading`): ``config.yaml`` with the safe, duplicate-refusing YAML
loader; with ``verify`` the files read checked against ``meta.yaml``; weights as
safetensors or a tensors-only ``torch.load``; a ``class_path`` model block refused
unless ``trust_remote_code``.

An ESPnet2 LM experiment folder, model-zoo pack or LM ``config.yaml`` (``token_list``,
``lm``, ``lm_conf``; a ``*.pth`` checkpoint) loads too, through
``espnet_model.lm.load_espnet2_lm``; its ``token_list`` stands for the tokenizer. (ESPnet2
packs carry no digests: nothing is verified.)

Fusion needs the LM's token ids to mean the ASR model's tokens:
:func:`check_lm_tokenizer` compares the token lists and raises
``espnet_data.TokenizerMismatchError`` naming both tokenizer files and both sizes.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from espnet_data import load_tokenizer
from espnet_data.tokenizer import check_same_tokenizer
from espnet_model.builder import UntrustedCodeError

from .decode.protocol import LMLike
from .hub import HUB_PREFIX, resolve_model_dir
from .loading import (
    LoadedModel,
    _load_weights,
    _manifest_digests,
    _read_yaml,
    _tokenizer_files,
    _verify,
    _weights_file,
)

__all__ = ["LoadedLM", "check_lm_tokenizer", "load_lm_folder", "lm_files"]

_REQUIRED_KEYS = ("model", "vocab_size", "tokenizer")


@dataclass
class LoadedLM:
    """A language model ready for :class:`~espnet_infer.decode.BeamSearch` (eval mode).

    Attributes:
        model: the network (``espnet_model.lm.LanguageModel``; with ``trust_remote_code``,
            any :class:`~espnet_infer.decode.protocol.LMLike` a ``class_path`` builds).
        token_list: its tokens, id order.
        path: the folder (or ESPnet2 ``config.yaml``) it was loaded from.
        tokenizer_file: the file its tokens come from (the tokenizer model or token
            list, or ESPnet2's ``config.yaml``), named in mismatch errors.
        files: every file it was built from (config, weights, tokenizer): what a
            decoding result depends on.
        config: our folder's ``config.yaml``; ESPnet2's LM block for an ESPnet2 LM.
        tokenizer: the tokenizer object (None for an ESPnet2 LM, which has a token list).
    """

    model: LMLike
    token_list: list[str]
    path: Path
    tokenizer_file: Path
    files: tuple[Path, ...]
    config: dict[str, Any] = field(default_factory=dict)
    tokenizer: Any = None

    @property
    def vocab_size(self) -> int:
        return len(self.token_list)


def load_lm_folder(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    trust_remote_code: bool = False,
    verify: bool = True,
) -> LoadedLM:
    """Build the LM of an LM folder (module docstring), load its weights, eval mode.

    Args:
        path: our LM folder (``config.yaml`` with ``model``, ``vocab_size``,
            ``tokenizer``), or an ESPnet2 LM experiment folder / zoo pack / ``config.yaml``;
            ``hf://owner/name[@revision]`` fetches a packed LM from the Hugging Face Hub.
        device: where the LM goes.
        trust_remote_code: let ``config.yaml``'s model block name code with
            ``class_path`` (imported and run). Only for an LM whose source you trust.
        verify: when the folder has ``meta.yaml``, check ``config.yaml``, the weights
            and the tokenizer files against it first.

    Raises:
        FileNotFoundError: no such folder, or no weights in it.
        ValueError: invalid YAML, a file that does not match ``meta.yaml``, an ASR model
            folder given as an LM, an LM block ``build_lm`` refuses, weights that do not
            fit it, a tokenizer that does not fit ``vocab_size``.
        UntrustedCodeError: a ``class_path`` model block without ``trust_remote_code``.
    """
    hub = isinstance(path, str) and path.startswith(HUB_PREFIX)  # a Path is a path
    root = resolve_model_dir(path) if hub else Path(path)
    if not root.exists():
        raise FileNotFoundError(
            f"language model {root} does not exist: pass the LM folder espnet-train's LM "
            "task exports (exp/<lm>/model), an LM packed in a model folder (<pack>/lm), or "
            "an ESPnet2 LM experiment folder"
        )
    config_file = root / "config.yaml"
    config = _read_yaml(config_file) if config_file.is_file() else None
    if not (isinstance(config, dict) and ("tokenizer" in config or config.get("task") == "lm")):
        return _load_espnet2(root, device)
    return _load_own(root, config_file, config, device,
                     trust_remote_code=trust_remote_code, verify=verify)


def _load_own(
    folder: Path, config_file: Path, config: dict[str, Any], device: str | torch.device, *,
    trust_remote_code: bool, verify: bool,
) -> LoadedLM:
    digests = _manifest_digests(folder) if verify else None
    if digests is not None:
        _verify(folder, config_file.name, digests)
        config = _read_yaml(config_file)  # the checked bytes (read again: tiny)
    if config.get("task", "lm") != "lm" or (
        "task" not in config and isinstance(config.get("model"), Mapping)
        and "encoder" in config["model"]
    ):
        raise ValueError(
            f"{config_file} describes an ASR model (task: {config.get('task', 'asr')!r}), not a "
            "language model: pass it as model_dir, and an LM folder (task: lm, from "
            "espnet-train's LM task) as decode.lm"
        )
    missing = [k for k in _REQUIRED_KEYS if k not in config]
    if missing:
        raise KeyError(f"{config_file} lacks the key(s) {missing}; re-export the LM folder")
    weights = _weights_file(folder)
    token_files = _tokenizer_files(config["tokenizer"], folder)
    if digests is not None:
        for rel in (weights.name, *token_files):
            _verify(folder, rel, digests)
    tokenizer = load_tokenizer(config["tokenizer"], folder)
    vocab = int(config["vocab_size"])
    if tokenizer.vocab_size != vocab:
        raise ValueError(
            f"{config_file}: vocab_size {vocab} != its tokenizer's {tokenizer.vocab_size}: "
            "the tokenizer files do not belong to this language model"
        )
    model = _build(config["model"], vocab, config_file, trust_remote_code=trust_remote_code)
    state = _load_weights(weights)
    try:
        model.load_state_dict(state)  # type: ignore[attr-defined]
    except RuntimeError as err:
        raise ValueError(
            f"{weights} does not fit the language model {config_file} describes: {err}"
        ) from None
    model.to(device).eval()  # type: ignore[attr-defined]
    token_file = folder / token_files[0] if token_files else config_file
    return LoadedLM(
        model=model, token_list=list(tokenizer.token_list), path=folder,
        tokenizer_file=token_file,
        files=(config_file, weights, *(folder / rel for rel in token_files)),
        config=config, tokenizer=tokenizer,
    )


def _build(
    block: Any, vocab_size: int, config_file: Path, *, trust_remote_code: bool
) -> LMLike:
    """The LM ``config.yaml: model`` describes: a ``build_lm`` block or, trusted, a
    ``{class_path, init_args}`` callable given ``vocab_size``."""
    from espnet_model.lm import build_lm

    if not isinstance(block, Mapping):
        raise ValueError(f"{config_file}: model must be a mapping (lm, lm_conf, ...), got {block!r}")
    if "class_path" not in block:
        try:
            return build_lm(block, vocab_size=vocab_size)
        except ValueError as err:
            raise ValueError(f"{config_file}: model: {err}") from None
    class_path = str(block["class_path"])
    if not trust_remote_code:
        raise UntrustedCodeError(
            "class_path", class_path,
            message=(
                f"{config_file}: key model.class_path = {class_path!r} names code that would "
                "be imported and run while the language model is built; refused. Only if "
                "you trust this LM folder and where it came from, opt in: "
                "load_lm_folder(..., trust_remote_code=True), Speech2Text(..., "
                "trust_remote_code=True), or trust_remote_code: true in inference.yaml"
            ),
        )
    module_name, _, attr = class_path.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{config_file}: model.class_path={class_path!r} cannot be imported: {err}") from err
    model = factory(vocab_size=vocab_size, **dict(block.get("init_args") or {}))
    if not isinstance(model, LMLike) or not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"{config_file}: model.class_path={class_path!r} built a {type(model).__name__}, "
            "not a torch.nn.Module with vocab_size and batch_score(ys, state)"
        )
    return model


def _load_espnet2(root: Path, device: str | torch.device) -> LoadedLM:
    from espnet_model.lm import load_espnet2_lm

    try:
        loaded = load_espnet2_lm(root, map_location=device)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{root} is not a language model folder: no config.yaml with model, vocab_size "
            f"and tokenizer (espnet-train's LM task), and not an ESPnet2 LM ({err})"
        ) from None
    return LoadedLM(
        model=loaded.model, token_list=list(loaded.token_list), path=root,
        tokenizer_file=loaded.config_file,
        files=(loaded.config_file, loaded.model_file),
        config=dict(loaded.lm_config),
    )


def check_lm_tokenizer(lm: LoadedLM, asr: LoadedModel) -> None:
    """Raise ``TokenizerMismatchError`` (a ``ValueError``) unless ``lm`` has the ASR
    model's tokens, naming both tokenizer files and both vocabulary sizes."""
    spec = asr.config.get("tokenizer") if isinstance(asr.config, dict) else None
    files = _tokenizer_files(spec, Path(asr.path))
    asr_file = Path(asr.path) / files[0] if files else Path(asr.path) / "config.yaml"
    check_same_tokenizer(
        lm, asr.tokenizer,
        name=f"the language model's {lm.tokenizer_file} (vocab_size {lm.vocab_size})",
        reference_name=(
            f"the ASR model's {asr_file} (vocab_size {len(asr.tokenizer.token_list)})"
        ),
    )


def lm_files(lm: LoadedLM) -> dict[str, Path]:
    """``{name: path}`` of the files the LM was built from, names relative to its folder."""
    base = lm.path if lm.path.is_dir() else lm.path.parent
    out = {}
    for path in lm.files:
        try:
            out[path.relative_to(base).as_posix()] = path
        except ValueError:  # an ESPnet2 checkpoint elsewhere (model_file=)
            out[str(path.resolve())] = path
    return out
