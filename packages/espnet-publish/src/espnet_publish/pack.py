"""Pack a trained model folder into a self-contained, hashed, documented folder.

Usage::

    python - <<'PY'
    from pathlib import Path
    from espnet_publish import pack_model
    pack_model(
        model_dir=Path("exp/asr_conformer/model"),
        out_dir=Path("exp/asr_conformer/packed"),
        model_name="librispeech-100-conformer",
        extra_files={"scores.json": Path("exp/asr_conformer/decode/scores.json")},
    )
    PY

Input (written by training)::

    <model_dir>/config.yaml   model block, vocab_size, sample_rate, tokenizer, training summary
    <model_dir>/model.pt      averaged state_dict (or model.safetensors)
    <model_dir>/tokenizer/... files referenced from config.yaml, relative to the folder
    <model_dir>/stats.npz     optional feature statistics

Output, a valid Hugging Face model repository: the same files with the weights converted
to ``model.safetensors`` (no pickle: loading runs no code), the ``extra_files``,
training curves under ``images/``, ``README.md`` (model card) and ``meta.yaml`` (size +
sha256 of every file, Python and package versions).

With ``lm_dir`` (a language model folder of espnet-train's LM task, ``task: lm``, that
shares the ASR tokenizer) the pack carries the LM too::

    <out_dir>/lm/config.yaml, lm/tokenizer/..., lm/model.safetensors, lm/meta.yaml
    <out_dir>/inference.yaml      decode.lm: lm (relative to the pack), decode.lm_weight

``Speech2Text.from_pretrained(<out_dir>)`` then fuses it by default (``lm=False`` leaves
it out), and the model card names it and its weight.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from espnet_data.atomic import atomic_open

from ._files import check_relative, copy_file, staged_dir
from .card import load_scores, render_model_card
from .errors import PublishError
from .manifest import MANIFEST_NAME, write_manifest

__all__ = ["TOKENIZER_FILE_KEYS", "pack_model", "read_model_config"]

logger = logging.getLogger(__name__)

Pathlike = str | os.PathLike[str]

TOKENIZER_FILE_KEYS: Mapping[str, tuple[str, ...]] = {
    "sentencepiece": ("model",),
    "char": ("token_list",),
}
"""Tokenizer type -> keys of ``config.yaml: tokenizer`` whose values are file paths."""

_CONFIG = "config.yaml"
_WEIGHTS = "model.pt"
_PACKED_WEIGHTS = "model.safetensors"
_OPTIONAL = ("stats.npz",)
_IMAGES = "images"
_RESERVED = (_CONFIG, _WEIGHTS, _PACKED_WEIGHTS, "README.md", MANIFEST_NAME)
_LM = "lm"
"""The packed LM's folder inside the pack (the packed ``inference.yaml``'s ``decode.lm``)."""
_INFERENCE = "inference.yaml"


def read_model_config(model_dir: Path) -> dict[str, Any]:
    """Load ``model_dir/config.yaml`` and check its top-level shape."""
    path = model_dir / _CONFIG
    if not path.is_file():
        raise PublishError(
            f"{path} not found: {model_dir} is not a model folder written by training "
            f"(expected {_CONFIG}, {_WEIGHTS} and tokenizer/). Point model_dir at that folder."
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


def _referenced_files(config: Mapping[str, Any], model_dir: Path) -> dict[str, Path]:
    """Map relative path -> config key for every file config.yaml references; check they exist."""
    tokenizer = config["tokenizer"]
    kind = tokenizer.get("type")
    if kind not in TOKENIZER_FILE_KEYS:
        raise PublishError(
            f"{model_dir / _CONFIG}: tokenizer.type = {kind!r} is not one of "
            f"{sorted(TOKENIZER_FILE_KEYS)}; fix the config written by training."
        )
    refs: dict[str, Path] = {}
    for key in TOKENIZER_FILE_KEYS[kind]:
        where = f"{model_dir / _CONFIG}: tokenizer.{key}"
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


def _weights(folder: Path) -> Path:
    """``model.safetensors`` or ``model.pt`` of a model folder."""
    found = next((folder / n for n in (_PACKED_WEIGHTS, _WEIGHTS) if (folder / n).is_file()), None)
    if found is None:
        raise PublishError(
            f"{folder / _WEIGHTS} not found: the model folder needs the averaged "
            f"state_dict saved as {_WEIGHTS} (or {_PACKED_WEIGHTS})."
        )
    return found


def _folder_files(config: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """``config.yaml``, the tokenizer files it references, and the rest of ``tokenizer/``."""
    files = {_CONFIG: folder / _CONFIG}
    files.update(_referenced_files(config, folder))
    tokenizer_dir = folder / "tokenizer"
    if tokenizer_dir.is_dir():  # ship companions too (e.g. bpe.vocab next to bpe.model)
        for p in sorted(tokenizer_dir.rglob("*")):
            if p.is_file():
                files.setdefault(p.relative_to(folder).as_posix(), p)
    return files


def _check_extra_files(extra_files: Mapping[str, Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for dest, src in extra_files.items():
        rel = check_relative(dest, where=f"extra_files[{dest!r}]").as_posix()
        if rel in _RESERVED:
            raise PublishError(
                f"extra_files[{dest!r}] would overwrite {rel}, which pack_model writes itself; "
                f"give it another name."
            )
        if not Path(src).is_file():
            raise PublishError(f"extra_files[{dest!r}] = {src}: file not found.")
        out[rel] = Path(src)
    return out


def _write_safetensors(src: Path, dst: Path) -> None:
    """Convert a torch state dict (``model.pt``) to ``model.safetensors``.

    Each tensor is cloned contiguous: safetensors refuses tensors that share memory (tied
    weights), and ``load_state_dict`` fills tied parameters from either copy alike.
    """
    import torch  # lazy: only packing needs torch
    from safetensors.torch import save_file

    if src.name == _PACKED_WEIGHTS:
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


def _check_images(images: Sequence[Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for src in images:
        src = Path(src)
        if not src.is_file() or src.suffix.lower() not in (".png", ".jpg", ".jpeg", ".svg"):
            raise PublishError(f"images: {src} is not an image file (.png, .jpg, .svg).")
        rel = f"{_IMAGES}/{src.name}"
        if rel in out:
            raise PublishError(f"images: two files named {src.name}; rename one.")
        out[rel] = src
    return out


def _decode_block(path: Path | None) -> dict[str, Any] | None:
    """The ``decode`` mapping of an ``inference.yaml`` extra file (None without one)."""
    if path is None:
        return None
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise PublishError(f"extra file inference.yaml ({path}) is not valid YAML: {e}") from e
    decode = doc.get("decode") if isinstance(doc, dict) else None
    return decode if isinstance(decode, dict) else None


@dataclass
class _PackedLM:
    """The language model ``pack_model`` carries: its files, config and weight."""

    folder: Path
    config: dict[str, Any]
    files: dict[str, Path]
    weights: Path
    weight: float
    inference: dict[str, Any]  # the packed inference.yaml
    header: str  # its leading comment lines

    def write(self, staging: Path, *, model_name: str) -> None:
        """``lm/`` (safetensors weights, its own ``meta.yaml``) and ``inference.yaml``."""
        out = staging / _LM
        for rel, src in self.files.items():
            copy_file(src, out / rel)
        _write_safetensors(self.weights, out / _PACKED_WEIGHTS)
        write_manifest(out, model_name=f"{model_name} language model")
        with atomic_open(staging / _INFERENCE) as f:
            f.write(self.header)
            f.write(f"# decode.lm: the language model packed in {_LM}/ (from {self.folder}); "
                    "relative to this folder.\n")
            yaml.safe_dump(self.inference, f, sort_keys=False)


def _inference_doc(path: Path | None) -> tuple[dict[str, Any], str]:
    """``inference.yaml`` (an extra file) as a mapping, and its leading comment lines."""
    if path is None:
        return {}, ""
    text = Path(path).read_text(encoding="utf-8")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PublishError(f"extra file inference.yaml ({path}) is not valid YAML: {e}") from e
    if doc is None:
        doc = {}
    if not isinstance(doc, dict) or not isinstance(doc.get("decode", {}), dict):
        raise PublishError(
            f"extra file inference.yaml ({path}) must be a mapping with a decode mapping "
            "(an espnet-infer InferenceConfig)."
        )
    header = "".join(line for line in text.splitlines(keepends=True)[:10] if line.startswith("#"))
    return doc, header


def _refuse_unpacked_lm(inference: Path | None) -> None:
    """An ``inference.yaml`` that names an LM needs ``lm_dir``: the pack would point
    outside itself."""
    doc, _ = _inference_doc(inference)
    named = (doc.get("decode") or {}).get("lm")
    if named:
        raise PublishError(
            f"extra file inference.yaml ({inference}) sets decode.lm = {named!r}, a language "
            f"model outside the pack. Pack it with pack_model(..., lm_dir={named!r}) (the "
            f"packed inference.yaml then names {_LM}/), or set decode.lm: null to publish "
            "the model without it."
        )


def _packed_lm(
    lm_dir: Path, model_dir: Path, asr_config: Mapping[str, Any], extras: Mapping[str, Path],
    lm_weight: float | None,
) -> _PackedLM:
    """Check ``lm_dir`` (an LM folder with the ASR model's tokens) and settle the weight."""
    if not (lm_dir / _CONFIG).is_file() and lm_dir.is_dir():
        raise PublishError(
            f"lm_dir {lm_dir} has no {_CONFIG}: pass the folder espnet-train's LM task exports "
            "(exp/<lm>/model). An ESPnet2 LM experiment can be decoded with decode.lm but not "
            "packed; train or convert it into an LM folder first."
        )
    config = read_model_config(lm_dir)
    if config.get("task") != "lm":
        raise PublishError(
            f"{lm_dir / _CONFIG}: task is {config.get('task')!r}, not 'lm': lm_dir takes the "
            "language model folder espnet-train's LM task exports (task: lm)."
        )
    files = _folder_files(config, lm_dir)
    _check_same_tokens(lm_dir, config, model_dir, asr_config)
    clash = sorted(rel for rel in extras if rel == _LM or rel.startswith(f"{_LM}/"))
    if clash:
        raise PublishError(f"extra_files {clash} clash with the packed language model in {_LM}/.")
    doc, header = _inference_doc(extras.get(_INFERENCE))
    decode = dict(doc.get("decode") or {})
    if lm_weight is None and decode.get("lm") and decode.get("lm_weight") is not None:
        lm_weight = float(decode["lm_weight"])
    if lm_weight is None:
        raise PublishError(
            f"lm_dir {lm_dir} needs the weight it is decoded with: pass lm_weight=..., or an "
            "inference.yaml extra file whose decode block sets lm and lm_weight (the "
            "decoding the scores were measured with)."
        )
    if lm_weight <= 0:
        raise PublishError(f"lm_weight={lm_weight} would not use the packed LM; give a weight > 0.")
    decode.update(lm=_LM, lm_weight=float(lm_weight))
    doc = {**doc, "decode": decode}
    return _PackedLM(folder=lm_dir, config=config, files=files, weights=_weights(lm_dir),
                     weight=float(lm_weight), inference=doc, header=header)


def _check_same_tokens(
    lm_dir: Path, lm_config: Mapping[str, Any], model_dir: Path, asr_config: Mapping[str, Any]
) -> None:
    """The LM's tokenizer must be the ASR model's (fusion adds scores of the same ids)."""
    from espnet_data import load_tokenizer
    from espnet_data.tokenizer import TokenizerMismatchError, check_same_tokenizer

    def where(folder: Path, config: Mapping[str, Any]) -> str:
        files = sorted(_referenced_files(config, folder).values())
        return str(files[0]) if files else str(folder / _CONFIG)

    lm_tok = load_tokenizer(lm_config["tokenizer"], lm_dir)
    asr_tok = load_tokenizer(asr_config["tokenizer"], model_dir)
    try:
        check_same_tokenizer(
            lm_tok, asr_tok,
            name=f"the language model's {where(lm_dir, lm_config)} (vocab_size {lm_tok.vocab_size})",
            reference_name=(f"the ASR model's {where(model_dir, asr_config)} "
                            f"(vocab_size {asr_tok.vocab_size})"),
        )
    except TokenizerMismatchError as e:
        raise PublishError(f"lm_dir {lm_dir}: {e}") from e


def _load_check(folder: Path, *, trust_remote_code: bool, lm: bool = False) -> None:
    """Optional ``verify=True`` check: espnet_infer must be able to load the staged folder
    (its files checked against the fresh ``meta.yaml``; a foreign ``class_path`` model
    built only with ``trust_remote_code``); with ``lm``, as ``from_pretrained`` does, with
    the packed LM fused."""
    try:
        from espnet_infer import load_model_folder  # lazy: publish's core must not need it
    except ImportError as e:
        warnings.warn(
            f"verify=True: skipped the load check because espnet_infer.load_model_folder "
            f"cannot be imported ({e}). Install espnet-infer to enable it.",
            stacklevel=3,
        )
        return
    try:
        if not lm:
            load_model_folder(folder, trust_remote_code=trust_remote_code)
        else:
            from espnet_infer import Speech2Text

            s2t = Speech2Text.from_pretrained(folder, trust_remote_code=trust_remote_code)
            if not s2t.uses_lm:
                raise ValueError(f"{folder / _INFERENCE} does not lead from_pretrained to lm/")
    except Exception as e:  # any loader failure means the folder is not usable
        loader = "Speech2Text.from_pretrained" if lm else "load_model_folder"
        raise PublishError(
            f"verify=True: espnet_infer.{loader} could not load the packed folder "
            f"({type(e).__name__}: {e}); nothing was written. Fix the model folder or pass "
            f"verify=False."
        ) from e


def pack_model(
    model_dir: Pathlike,
    out_dir: Pathlike,
    *,
    model_name: str,
    extra_files: Mapping[str, Path] | None = None,
    license: str = "cc-by-4.0",
    language: str = "en",
    repo_id: str | None = None,
    images: Sequence[Path] = (),
    overwrite: bool = False,
    verify: bool = False,
    trust_remote_code: bool = False,
    lm_dir: Pathlike | None = None,
    lm_weight: float | None = None,
) -> Path:
    """Validate ``model_dir`` and write a self-contained packed folder at ``out_dir``.

    Args:
        model_dir: Folder written by training (``config.yaml``, ``model.pt`` or
            ``model.safetensors``, tokenizer). The weights are packed as safetensors.
        out_dir: Destination; built in a staging folder next to it and renamed into place.
        model_name: Name shown in the model card and manifest.
        extra_files: Destination name (relative) -> source file, e.g.
            ``{"inference.yaml": ..., "scores.json": ...}``. A ``scores.json`` entry
            adds WER/CER to the card's front matter and a results table.
        license: Hugging Face license id for the card.
        language: Language code for the card.
        repo_id: Hub id used in the card's usage snippet (``<owner>/<model_name>`` if None).
        images: Training curves (PNG) copied to ``images/`` and shown in the card.
        overwrite: Replace an existing ``out_dir`` (atomically swapped); otherwise refuse.
        verify: Also load the staged folder with ``espnet_infer.load_model_folder``
            (skipped with a warning when espnet_infer is not importable).
        trust_remote_code: For ``verify``: let a ``class_path`` model block name code
            outside espnet_model (it is imported and run while the model is built). Off
            by default; the users who load the pack must opt in the same way.
        lm_dir: a language model folder (``task: lm``: ``config.yaml``, ``model.pt`` or
            ``model.safetensors``, ``tokenizer/``) to carry in ``lm/``; its tokenizer must
            be the ASR model's. The packed ``inference.yaml`` (the ``extra_files`` one,
            else a new one holding only the decode block) gets ``decode.lm: lm``, so
            ``Speech2Text.from_pretrained`` fuses it by default.
        lm_weight: the LM weight written to the packed ``inference.yaml`` and the card;
            default: ``decode.lm_weight`` of the ``inference.yaml`` extra file when its
            ``decode.lm`` is set (the decoding the scores were measured with).

    Returns:
        ``out_dir`` as a ``Path``.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not model_name.strip():
        raise PublishError("model_name is empty; pass e.g. model_name='librispeech-conformer'.")
    if model_dir.resolve() == out_dir.resolve() or model_dir.resolve().is_relative_to(
        out_dir.resolve()
    ):
        raise PublishError(
            f"out_dir {out_dir} contains model_dir {model_dir}; packing there would replace "
            f"the source. Choose an out_dir outside the model folder."
        )
    config = read_model_config(model_dir)
    if config.get("task", "asr") != "asr":
        raise PublishError(
            f"{model_dir / _CONFIG} is a {config['task']!r} model (task: {config['task']}); "
            f"model_dir takes the ASR model folder. Pack a language model with it: "
            f"pack_model(<asr model>, ..., lm_dir={str(model_dir)!r})."
        )
    weights = _weights(model_dir)
    files = _folder_files(config, model_dir)
    files.update({n: model_dir / n for n in _OPTIONAL if (model_dir / n).is_file()})
    extras = _check_extra_files(extra_files or {})
    extras.update(_check_images(images))
    clash = sorted(set(extras) & set(files))
    if clash:
        raise PublishError(f"extra_files {clash} clash with model folder files; rename them.")
    lm = _packed_lm(Path(lm_dir), model_dir, config, extras, lm_weight) if lm_dir else None
    if lm is None:
        _refuse_unpacked_lm(extras.get(_INFERENCE))
    scores = load_scores(extras["scores.json"]) if "scores.json" in extras else {}
    skipped = sorted(
        p.relative_to(model_dir).as_posix()
        for p in model_dir.rglob("*")
        if p.is_file() and p.relative_to(model_dir).as_posix() not in files and p != weights
    )
    if skipped:
        logger.info("pack_model: not copying %d unreferenced file(s): %s", len(skipped), skipped)

    with staged_dir(out_dir, overwrite=overwrite, what="pack_model") as staging:
        for rel, src in {**files, **extras}.items():
            if lm is None or rel != _INFERENCE:
                copy_file(src, staging / rel)
        _write_safetensors(weights, staging / _PACKED_WEIGHTS)
        if lm is not None:
            lm.write(staging, model_name=model_name)
        card = render_model_card(
            config=config,
            model_name=model_name,
            license=license,
            language=language,
            scores=scores,
            repo_id=repo_id,
            images=sorted(rel for rel in extras if rel.startswith(f"{_IMAGES}/")),
            decode=_decode_block(staging / _INFERENCE if lm else extras.get(_INFERENCE)),
            lm=None if lm is None else {"dir": _LM, "config": lm.config, "weight": lm.weight},
        )
        (staging / "README.md").write_text(card, encoding="utf-8")
        write_manifest(staging, model_name=model_name)
        if verify:
            _load_check(staging, trust_remote_code=trust_remote_code, lm=lm is not None)
    logger.info("pack_model: wrote %s (%d files)", out_dir, len(files) + len(extras) + 3)
    return out_dir
