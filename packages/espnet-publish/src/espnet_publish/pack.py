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
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

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


def _load_check(folder: Path, *, trust_remote_code: bool) -> None:
    """Optional ``verify=True`` check: espnet_infer must be able to load the staged folder
    (its files checked against the fresh ``meta.yaml``; a foreign ``class_path`` model
    built only with ``trust_remote_code``)."""
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
        load_model_folder(folder, trust_remote_code=trust_remote_code)
    except Exception as e:  # any loader failure means the folder is not usable
        raise PublishError(
            f"verify=True: espnet_infer.load_model_folder could not load the packed folder "
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
    weights = next((model_dir / n for n in (_PACKED_WEIGHTS, _WEIGHTS) if (model_dir / n).is_file()),
                   None)
    if weights is None:
        raise PublishError(
            f"{model_dir / _WEIGHTS} not found: the model folder needs the averaged "
            f"state_dict saved as {_WEIGHTS} (or {_PACKED_WEIGHTS})."
        )
    files = {_CONFIG: model_dir / _CONFIG}
    files.update(_referenced_files(config, model_dir))
    tokenizer_dir = model_dir / "tokenizer"
    if tokenizer_dir.is_dir():  # ship companions too (e.g. bpe.vocab next to bpe.model)
        for p in sorted(tokenizer_dir.rglob("*")):
            if p.is_file():
                files.setdefault(p.relative_to(model_dir).as_posix(), p)
    files.update({n: model_dir / n for n in _OPTIONAL if (model_dir / n).is_file()})
    extras = _check_extra_files(extra_files or {})
    extras.update(_check_images(images))
    clash = sorted(set(extras) & set(files))
    if clash:
        raise PublishError(f"extra_files {clash} clash with model folder files; rename them.")
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
            copy_file(src, staging / rel)
        _write_safetensors(weights, staging / _PACKED_WEIGHTS)
        card = render_model_card(
            config=config,
            model_name=model_name,
            license=license,
            language=language,
            scores=scores,
            repo_id=repo_id,
            images=sorted(rel for rel in extras if rel.startswith(f"{_IMAGES}/")),
            decode=_decode_block(extras.get("inference.yaml")),
        )
        (staging / "README.md").write_text(card, encoding="utf-8")
        write_manifest(staging, model_name=model_name)
        if verify:
            _load_check(staging, trust_remote_code=trust_remote_code)
    logger.info("pack_model: wrote %s (%d files)", out_dir, len(files) + len(extras) + 3)
    return out_dir
