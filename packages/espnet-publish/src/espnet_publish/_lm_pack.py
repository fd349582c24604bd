"""The language model ``pack_model(..., lm_dir=...)`` carries in ``<pack>/lm/``.

``lm_dir`` is an LM folder of espnet-train's LM task (``task: lm``; the ASR folder's
layout, see :mod:`espnet_publish._folder`) whose tokenizer is the ASR model's. It is
packed as a folder of its own (safetensors weights, its own ``meta.yaml``), and the
packed ``inference.yaml`` gets ``decode.lm: lm`` (relative to the pack) with the weight,
which is how ``espnet_infer.Speech2Text.from_pretrained`` finds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from espnet_data.atomic import atomic_open

from ._files import copy_file
from ._folder import (
    CONFIG,
    PACKED_WEIGHTS,
    folder_files,
    read_model_config,
    referenced_files,
    weights_file,
    write_safetensors,
)
from .errors import PublishError
from .manifest import write_manifest

__all__ = ["INFERENCE", "LM_DIR", "PackedLM", "packed_lm", "refuse_unpacked_lm"]

LM_DIR = "lm"
"""The packed LM's folder inside the pack (the packed ``inference.yaml``'s ``decode.lm``)."""
INFERENCE = "inference.yaml"


@dataclass
class PackedLM:
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
        out = staging / LM_DIR
        for rel, src in self.files.items():
            copy_file(src, out / rel)
        write_safetensors(self.weights, out / PACKED_WEIGHTS)
        write_manifest(out, model_name=f"{model_name} language model")
        with atomic_open(staging / INFERENCE) as f:
            f.write(self.header)
            f.write(f"# decode.lm: the language model packed in {LM_DIR}/ (from {self.folder}); "
                    "relative to this folder.\n")
            yaml.safe_dump(self.inference, f, sort_keys=False)


def inference_doc(path: Path | None) -> tuple[dict[str, Any], str]:
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


def refuse_unpacked_lm(inference: Path | None) -> None:
    """An ``inference.yaml`` that names an LM needs ``lm_dir``: the pack would point
    outside itself."""
    doc, _ = inference_doc(inference)
    named = (doc.get("decode") or {}).get("lm")
    if named:
        raise PublishError(
            f"extra file inference.yaml ({inference}) sets decode.lm = {named!r}, a language "
            f"model outside the pack. Pack it with pack_model(..., lm_dir={named!r}) (the "
            f"packed inference.yaml then names {LM_DIR}/), or set decode.lm: null to publish "
            "the model without it."
        )


def packed_lm(
    lm_dir: Path, model_dir: Path, asr_config: Mapping[str, Any], extras: Mapping[str, Path],
    lm_weight: float | None,
) -> PackedLM:
    """Check ``lm_dir`` (an LM folder with the ASR model's tokens) and settle the weight."""
    if not (lm_dir / CONFIG).is_file() and lm_dir.is_dir():
        raise PublishError(
            f"lm_dir {lm_dir} has no {CONFIG}: pass the folder espnet-train's LM task exports "
            "(exp/<lm>/model). An ESPnet2 LM experiment can be decoded with decode.lm but not "
            "packed; train or convert it into an LM folder first."
        )
    config = read_model_config(lm_dir)
    if config.get("task") != "lm":
        raise PublishError(
            f"{lm_dir / CONFIG}: task is {config.get('task')!r}, not 'lm': lm_dir takes the "
            "language model folder espnet-train's LM task exports (task: lm)."
        )
    files = folder_files(config, lm_dir)
    _check_same_tokens(lm_dir, config, model_dir, asr_config)
    clash = sorted(rel for rel in extras if rel == LM_DIR or rel.startswith(f"{LM_DIR}/"))
    if clash:
        raise PublishError(f"extra_files {clash} clash with the packed language model in {LM_DIR}/.")
    doc, header = inference_doc(extras.get(INFERENCE))
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
    decode.update(lm=LM_DIR, lm_weight=float(lm_weight))
    doc = {**doc, "decode": decode}
    return PackedLM(folder=lm_dir, config=config, files=files, weights=weights_file(lm_dir),
                     weight=float(lm_weight), inference=doc, header=header)


def _check_same_tokens(
    lm_dir: Path, lm_config: Mapping[str, Any], model_dir: Path, asr_config: Mapping[str, Any]
) -> None:
    """The LM's tokenizer must be the ASR model's (fusion adds scores of the same ids)."""
    from espnet_data import load_tokenizer
    from espnet_data.tokenizer import TokenizerMismatchError, check_same_tokenizer

    def where(folder: Path, config: Mapping[str, Any]) -> str:
        files = sorted(referenced_files(config, folder).values())
        return str(files[0]) if files else str(folder / CONFIG)

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
