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
from pathlib import Path
from typing import Any

import yaml

from ._files import check_relative, copy_file, staged_dir
from ._folder import (
    CONFIG,
    PACKED_WEIGHTS,
    TOKENIZER_FILE_KEYS,
    WEIGHTS,
    folder_files,
    read_model_config,
    weights_file,
    write_safetensors,
)
from ._lm_pack import INFERENCE, LM_DIR, packed_lm, refuse_unpacked_lm
from ._tts_card import build_tts_card, load_tts_scores
from .card import build_model_card, load_perplexity, load_scores
from .errors import PublishError
from .manifest import MANIFEST_NAME, write_manifest

__all__ = ["TOKENIZER_FILE_KEYS", "pack_model", "read_model_config"]

logger = logging.getLogger(__name__)

Pathlike = str | os.PathLike[str]

_OPTIONAL = ("stats.npz",)
_IMAGES = "images"
_PPL = "perplexity.json"  # a language model's results (espnet-system's LM measure)
_RESERVED = (CONFIG, WEIGHTS, PACKED_WEIGHTS, "README.md", MANIFEST_NAME)


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


def _load_check(
    folder: Path, *, trust_remote_code: bool, lm: bool = False, task: str = "asr"
) -> None:
    """Optional ``verify=True`` check: espnet_infer must be able to load the staged folder
    (its files checked against the fresh ``meta.yaml``; a foreign ``class_path`` model
    built only with ``trust_remote_code``); with ``lm``, as ``from_pretrained`` does, with
    the packed LM fused; a language model packed alone (``task: lm``) as an LM."""
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
        if task == "lm":
            from espnet_infer import load_lm_folder

            load_lm_folder(folder, trust_remote_code=trust_remote_code)
        elif task == "tts":  # a text-to-speech model: loaded as Text2Speech loads it
            from espnet_infer import Text2Speech

            Text2Speech.from_pretrained(folder)
        elif not lm:
            load_model_folder(folder, trust_remote_code=trust_remote_code)
        else:
            from espnet_infer import Speech2Text

            s2t = Speech2Text.from_pretrained(folder, trust_remote_code=trust_remote_code)
            if not s2t.uses_lm:
                raise ValueError(f"{folder / INFERENCE} does not lead from_pretrained to lm/")
    except Exception as e:  # any loader failure means the folder is not usable
        loader = ("load_lm_folder" if task == "lm" else "Text2Speech.from_pretrained" if task == "tts" else
                  "Speech2Text.from_pretrained" if lm else "load_model_folder")
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
    datasets: Sequence[str] = (),
) -> Path:
    """Validate ``model_dir`` and write a self-contained packed folder at ``out_dir``.

    Args:
        model_dir: Folder written by training (``config.yaml``, ``model.pt`` or
            ``model.safetensors``, tokenizer). The weights are packed as safetensors. A
            language model folder (``task: lm``) is packed alone, with an LM's card.
        out_dir: Destination; built in a staging folder next to it and renamed into place.
        model_name: Name shown in the model card and manifest.
        extra_files: Destination name (relative) -> source file, e.g.
            ``{"inference.yaml": ..., "scores.json": ...}``. A ``scores.json`` entry
            adds WER/CER to the card's front matter and a results table; a
            ``perplexity.json`` (a language model's) its perplexities.
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
        datasets: Hub dataset ids the model was trained on (the card's ``datasets``;
            the test sets of ``scores.json`` are read as splits of the first).

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
    task = config.get("task", "asr")
    if task not in ("asr", "lm", "tts"):
        raise PublishError(
            f"{model_dir / CONFIG}: task {task!r} is not one pack_model knows ('asr', 'lm' "
            "for a language model folder, 'tts' for a text-to-speech one); fix the config "
            "written by training."
        )
    if task == "tts" and lm_dir:
        raise PublishError(f"{model_dir / CONFIG} is a text-to-speech model (task: tts): lm_dir "
                           "packs a language model with an ASR model; leave it out.")
    if task == "lm" and lm_dir:
        raise PublishError(
            f"{model_dir / CONFIG} is a language model (task: lm), and lm_dir packs a "
            "language model with an ASR model: pass the ASR model folder as model_dir, or "
            "leave lm_dir out to pack this LM alone."
        )
    weights = weights_file(model_dir)
    files = folder_files(config, model_dir)
    files.update({n: model_dir / n for n in _OPTIONAL if (model_dir / n).is_file()})
    extras = _check_extra_files(extra_files or {})
    extras.update(_check_images(images))
    clash = sorted(set(extras) & set(files))
    if clash:
        raise PublishError(f"extra_files {clash} clash with model folder files; rename them.")
    lm = packed_lm(Path(lm_dir), model_dir, config, extras, lm_weight) if lm_dir else None
    if lm is None:
        refuse_unpacked_lm(extras.get(INFERENCE))
    read_scores = load_tts_scores if task == "tts" else load_scores
    scores = read_scores(extras["scores.json"]) if "scores.json" in extras else {}
    perplexity = load_perplexity(extras[_PPL]) if _PPL in extras else None
    skipped = sorted(
        p.relative_to(model_dir).as_posix()
        for p in model_dir.rglob("*")
        if p.is_file() and p.relative_to(model_dir).as_posix() not in files and p != weights
    )
    if skipped:
        logger.info("pack_model: not copying %d unreferenced file(s): %s", len(skipped), skipped)

    with staged_dir(out_dir, overwrite=overwrite, what="pack_model") as staging:
        for rel, src in {**files, **extras}.items():
            if lm is None or rel != INFERENCE:
                copy_file(src, staging / rel)
        write_safetensors(weights, staging / PACKED_WEIGHTS)
        if lm is not None:
            lm.write(staging, model_name=model_name)
        card = (build_tts_card if task == "tts" else build_model_card)(
            config=config,
            model_name=model_name,
            license=license,
            language=language,
            scores=scores,
            repo_id=repo_id,
            images=sorted(rel for rel in extras if rel.startswith(f"{_IMAGES}/")),
            decode=_decode_block(staging / INFERENCE if lm else extras.get(INFERENCE)),
            lm=None if lm is None else {"dir": LM_DIR, "config": lm.config, "weight": lm.weight},
            datasets=list(datasets),
            perplexity=perplexity,
        )
        (staging / "README.md").write_text(str(card), encoding="utf-8")
        write_manifest(staging, model_name=model_name)
        if verify:
            _load_check(staging, trust_remote_code=trust_remote_code, lm=lm is not None,
                        task=task)
    logger.info("pack_model: wrote %s (%d files)", out_dir, len(files) + len(extras) + 3)
    return out_dir
