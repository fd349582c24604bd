"""Decode ESPnet2 models: model-zoo packs, Hub repositories and experiment folders.

Usage::

    from espnet_infer import Speech2Text
    s2t = Speech2Text.from_pretrained("downloads/librispeech_conformer")  # an unpacked zoo pack
    s2t = Speech2Text.from_pretrained("hf://espnet/<an ESPnet2 conformer repo>@<commit>")
    s2t = Speech2Text.from_pretrained("egs2/an4/asr1/exp/asr_train_raw_en_bpe30")  # a recipe's exp
    print(s2t.transcribe("utt.flac"))

Layouts (:func:`find_espnet2`):

- a pack (``espnet2.bin.pack asr`` extracted, or a Hub repository, which holds the
  same files): ``meta.yaml`` names ``yaml_files.asr_train_config`` and
  ``files.asr_model_file`` and, optionally, ``lm_train_config`` / ``lm_file``; every
  path in it and in the configs is relative to the pack;
- a folder without ``meta.yaml`` holding exactly one ESPnet2 ASR ``exp/*/config.yaml``
  (its checkpoint: ``valid.acc.ave.pth``... or the only ``*.pth``);
- an ESPnet2 ASR experiment folder (``exp/asr_*`` of a recipe: ``config.yaml`` with
  ``token_list`` and ``encoder``); its paths are relative to the recipe, the folder
  above ``exp/``.

From the ASR ``config.yaml``: the model (``espnet_model.espnet2.load_espnet2``: frontend,
normalisation, encoder, decoder, CTC; a component or option espnet-model lacks is
refused naming the key and value), ``token_list`` (inline, or a token file) and how
tokens become text (``token_type`` ``bpe`` with ``bpemodel``, ``char`` or ``word``:
:class:`espnet_data.tokenizer.TokenListTokenizer`), and the sampling rate
(``frontend_conf.fs``). ``normalize_conf.stats_file`` is not read: ESPnet2 keeps the
``global_mvn`` statistics in the checkpoint too, and they are loaded from there.

What is trusted: nothing in a pack is run. Configs are read with the safe YAML loader,
the checkpoints with ``torch.load(weights_only=True)``, components are chosen by
ESPnet2's short names from espnet-model's own list. Files a pack names must lie inside
it (lexically: a Hub snapshot's files are links into its blob store); a config that
espnet_model_zoo rewrote with absolute paths is followed to the same file inside the
folder. ESPnet2 packs carry no digests, so nothing is verified: pin a Hub revision
(``hf://owner/name@<commit>``) to know what you load. Nothing is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from espnet_data.tokenizer import TokenListTokenizer
from espnet_model.espnet2 import find_espnet2_files, load_espnet2
from espnet_model.frontend import parse_fs

from .config import DecodeConfig
from .loading import LoadedModel, _read_yaml

__all__ = ["ESPNET2_DECODE", "ESPnet2Files", "find_espnet2", "load_espnet2_model"]

ESPNET2_DECODE = DecodeConfig(
    method="beam_search", beam_size=20, ctc_weight=0.5, penalty=0.0, maxlenratio=0.0,
    minlenratio=0.0, nbest=1, lm_weight=1.0,
)
"""``espnet2.bin.asr_inference.Speech2Text``'s defaults (espnet 202611): what
``Speech2Text.from_pretrained`` decodes an ESPnet2 model with unless told otherwise.
Packs carry no decoding config (a recipe's ``conf/decode_asr.yaml`` is not packed)."""

_TOKEN_TYPES = ("bpe", "char", "word")


@dataclass(frozen=True)
class ESPnet2Files:
    """The files of an ESPnet2 ASR model, as :func:`find_espnet2` found them.

    ``folder``: the folder given; ``root``: the folder the configs' paths are relative
    to and that every file must lie in (the pack, or the recipe above an experiment
    folder's ``exp/``); ``where``: the file that named the ASR files (``meta.yaml`` or
    the ``config.yaml`` itself), for messages.
    """

    folder: Path
    root: Path
    asr_config: Path
    asr_model: Path
    where: Path
    lm_config: Path | None = None
    lm_model: Path | None = None


def _inside(path: Path, root: Path) -> bool:
    """Lexical containment (``..`` collapsed, links not followed)."""
    path_s, root_s = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(root))
    return path_s == root_s or path_s.startswith(root_s.rstrip(os.sep) + os.sep)


def locate(value: str, root: Path) -> Path | None:
    """The file a config or ``meta.yaml`` path names, inside ``root``; None if none.

    Relative paths are relative to ``root``. An absolute path is kept when it lies in
    ``root``; otherwise (espnet_model_zoo's unpacking writes absolute paths into the
    configs, which break when the folder moves) its longest tail that exists under
    ``root`` is taken, as espnet_model_zoo itself heals them.
    """
    path = Path(value)
    if not path.is_absolute():
        candidate = root / path
        return candidate if _inside(candidate, root) and candidate.is_file() else None
    if _inside(path, root):
        return path if path.is_file() else None
    for i in range(1, len(path.parts) - 1):
        candidate = root.joinpath(*path.parts[i:])
        if _inside(candidate, root) and candidate.is_file():
            return candidate
    return None


def _is_asr_config(data: Any) -> bool:
    return isinstance(data, dict) and "token_list" in data and "encoder" in data \
        and "tokenizer" not in data


def _refuse_lm(data: Any, config: Path) -> None:
    if isinstance(data, dict) and "token_list" in data and "lm" in data and "encoder" not in data:
        raise ValueError(
            f"{config} is an ESPnet2 language model (lm: {data['lm']!r}), not an ASR model: "
            "pass it as the LM (decode.lm / Speech2Text(..., lm=...)) and the ASR model "
            "as model_dir"
        )


def _from_meta(folder: Path, meta: Path, data: dict[str, Any]) -> ESPnet2Files:
    yaml_files, files = data.get("yaml_files") or {}, data.get("files") or {}
    if not isinstance(yaml_files, dict) or not isinstance(files, dict):
        raise ValueError(f"{meta}: yaml_files and files must be mappings (an ESPnet2 pack)")
    if "asr_train_config" not in yaml_files or "asr_model_file" not in files:
        raise ValueError(
            f"{meta} describes an ESPnet2 pack without an ASR model (yaml_files: "
            f"{sorted(yaml_files)}, files: {sorted(files)}); only ASR packs "
            "(asr_train_config, asr_model_file) decode here"
        )

    def find(section: str, key: str) -> Path:
        value = str((yaml_files if section == "yaml_files" else files)[key])
        found = locate(value, folder)
        if found is None:
            raise FileNotFoundError(
                f"{meta}: {section}.{key} = {value!r} is not a file inside {folder}; the "
                "pack is incomplete (download or unpack it again)"
            )
        return found

    lm = "lm_train_config" in yaml_files and "lm_file" in files
    return ESPnet2Files(
        folder=folder, root=folder, asr_config=find("yaml_files", "asr_train_config"),
        asr_model=find("files", "asr_model_file"), where=meta,
        lm_config=find("yaml_files", "lm_train_config") if lm else None,
        lm_model=find("files", "lm_file") if lm else None,
    )


def _experiment(folder: Path, config: Path, root: Path) -> ESPnet2Files:
    _, checkpoint = find_espnet2_files(config)  # valid.acc.ave.pth ... or the only *.pth
    return ESPnet2Files(folder=folder, root=root, asr_config=config, asr_model=checkpoint,
                        where=config)


def find_espnet2(folder: str | os.PathLike[str]) -> ESPnet2Files | None:
    """The ESPnet2 ASR model in ``folder`` (module docstring), or None when ``folder`` is
    not an ESPnet2 layout (this project's model folders, anything else).

    Raises:
        ValueError: an ESPnet2 pack of another task, or an ESPnet2 LM given as the model.
        FileNotFoundError: ``meta.yaml`` names a file that is not inside the pack.
    """
    root = Path(folder)
    meta = root / "meta.yaml"
    if meta.is_file():
        data = _read_yaml(meta)
        if isinstance(data, dict) and "yaml_files" in data:
            return _from_meta(root, meta, data)
        return None  # espnet-publish's manifest, or not ESPnet2's
    config = root / "config.yaml"
    if config.is_file():
        data = _read_yaml(config)
        _refuse_lm(data, config)
        if not _is_asr_config(data):
            return None
        recipe = root.parent.parent if root.parent.name == "exp" else root
        return _experiment(root, config, recipe)
    found = [c for c in sorted(root.glob("exp/*/config.yaml")) if _is_asr_config(_read_yaml(c))]
    if len(found) == 1:
        return _experiment(root, found[0], root)
    return None


def _token_list(config: dict[str, Any], files: ESPnet2Files) -> tuple[list[str], Path | None]:
    """``token_list`` (inline, or the token file it names in the pack) and that file."""
    value = config.get("token_list")
    if isinstance(value, list):
        return [str(t) for t in value], None
    if not isinstance(value, str):
        raise ValueError(f"{files.asr_config}: token_list must be a list or a file, got {value!r}")
    path = locate(value, files.root)
    if path is None:
        raise FileNotFoundError(
            f"{files.asr_config}: token_list = {value!r} is not a file inside {files.root}; "
            "put the token list there (its path is relative to the pack / recipe)"
        )
    with path.open(encoding="utf-8") as f:  # as ESPnet2's ASRTask reads it
        return [line.rstrip() for line in f], path


def _tokenizer(config: dict[str, Any], tokens: list[str], files: ESPnet2Files) -> tuple[TokenListTokenizer, Path | None]:
    token_type = config.get("token_type")
    if token_type not in _TOKEN_TYPES:
        raise ValueError(
            f"{files.asr_config}: token_type = {token_type!r} is not supported here (supported: "
            f"{', '.join(_TOKEN_TYPES)}); phoneme, Whisper and Hugging Face tokenizers are not"
        )
    bpemodel = None
    if token_type == "bpe":
        value = config.get("bpemodel")
        if not value:
            raise ValueError(
                f"{files.asr_config}: token_type = 'bpe' but bpemodel = {value!r}: the "
                "SentencePiece model that turns tokens into text is not named"
            )
        bpemodel = locate(str(value), files.root)
        if bpemodel is None:
            raise FileNotFoundError(
                f"{files.asr_config}: bpemodel = {value!r} is not a file inside {files.root}; "
                "the pack is incomplete (its bpe.model is missing)"
            )
    try:
        tokenizer = TokenListTokenizer(tokens, token_type, bpemodel)
    except ValueError as err:
        raise ValueError(f"{files.asr_config}: token_list: {err}") from None
    return tokenizer, bpemodel


def _rel(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def load_espnet2_model(files: ESPnet2Files, device: str | torch.device = "cpu") -> LoadedModel:
    """Build the ESPnet2 ASR model ``files`` names, with its tokenizer (module docstring).

    ``config`` of the result: ``model`` (this project's model block), ``vocab_size``,
    ``tokenizer`` (``type: espnet2_<token_type>`` and the files, for messages),
    ``sample_rate``, and ``espnet2`` (the files used, relative to ``folder``).

    Raises:
        FileNotFoundError: ``token_list`` or ``bpemodel`` names no file inside the pack
            (the message names the key, its value and the config).
        ValueError: an option espnet-model cannot rebuild, an unsupported ``token_type``,
            a token list without ESPnet's ``<blank>``, ``<unk>`` ... ``<sos/eos>``.
    """
    config = _read_yaml(files.asr_config)
    if not isinstance(config, dict):
        raise ValueError(f"{files.asr_config}: expected a mapping (an ESPnet2 config.yaml)")
    tokens, token_file = _token_list(config, files)
    tokenizer, bpemodel = _tokenizer(config, tokens, files)
    loaded = load_espnet2(files.asr_config, model_file=files.asr_model, map_location=device,
                          token_list=tokens)
    used = [files.asr_config, files.asr_model, *(p for p in (token_file, bpemodel) if p)]
    here = files.folder
    spec: dict[str, Any] = {"type": f"espnet2_{config['token_type']}",
                            "token_list": _rel(token_file, here) if token_file else "inline"}
    if bpemodel is not None:
        spec["bpemodel"] = _rel(bpemodel, here)
    summary = {"asr_train_config": _rel(files.asr_config, here),
               "asr_model_file": _rel(files.asr_model, here)}
    if files.lm_config is not None and files.lm_model is not None:
        summary |= {"lm_train_config": _rel(files.lm_config, here),
                    "lm_file": _rel(files.lm_model, here)}
    return LoadedModel(
        model=loaded.model,
        tokenizer=tokenizer,
        config={
            "task": "asr", "model": loaded.model_config, "vocab_size": len(tokens),
            "tokenizer": spec,
            "sample_rate": parse_fs(loaded.model_config["frontend_conf"]["fs"]),
            "espnet2": summary,
        },
        path=files.folder,
        files=tuple(used),
    )
