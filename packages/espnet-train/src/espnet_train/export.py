"""Write the model folder that ``espnet-infer`` and ``espnet-publish`` read.

Layout::

    model/config.yaml   # model block, vocab_size, sample_rate, tokenizer spec, training summary
    model/model.pt      # averaged state_dict
    model/tokenizer/    # tokenizer files (paths in config.yaml are relative to model/)
    model/stats.npz     # the feature statistics used for global MVN (reference copy)

A language model's folder (``task: lm``) has ``task: lm`` first in ``config.yaml``, an
ESPnet2 LM block as ``model``, and no ``sample_rate`` or ``stats.npz``. A TTS folder
(``task: tts`` / ``tts_aligner``) holds the phoneme tokenizer (``write_tokenizer``); a
vocoder's (``task: vocoder``) has no tokenizer.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from espnet_data import save_tokenizer
from espnet_data.atomic import atomic_open


def export_model_folder(
    out_dir: str | os.PathLike[str],
    *,
    state_dict: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    tokenizer: Any,
    sample_rate: int | None,
    stats_file: str | None = None,
    training: dict[str, Any] | None = None,
    task: str | None = None,
    write_tokenizer: Callable[[Any, Path], dict[str, Any]] | None = None,
) -> Path:
    """Write the folder into a staging dir next to ``out_dir``, then swap it in.

    ``sample_rate`` None (a language model) leaves the key out; ``task`` (``lm``,
    ``tts``...) is written first when given (an ASR folder has none, as before).
    ``write_tokenizer(tokenizer, folder)`` writes the tokenizer's files and returns the
    spec ``config.yaml`` records (paths relative to that folder); default
    ``espnet_data.save_tokenizer``. ``tokenizer`` None (a vocoder) writes none.
    """
    out = Path(out_dir)
    stage = out.with_name(f".{out.name}.staging")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    block = copy.deepcopy(model_config)
    block.get("normalize_conf", {}).pop("stats_file", None)  # the stats live in model.pt
    spec = None
    if tokenizer is not None:
        spec = (write_tokenizer or save_tokenizer)(tokenizer, stage / "tokenizer")
        spec = {k: (f"tokenizer/{v}" if k != "type" else v) for k, v in spec.items()}
    if stats_file:
        shutil.copyfile(stats_file, stage / "stats.npz")
    torch.save(state_dict, stage / "model.pt")
    config: dict[str, Any] = {"task": task} if task else {}
    config["model"] = block
    if tokenizer is not None:
        size = getattr(tokenizer, "vocab_size", None)
        config["vocab_size"] = int(size if size is not None else len(tokenizer))
    if sample_rate is not None:
        config["sample_rate"] = sample_rate
    if spec is not None:
        config["tokenizer"] = spec
    config["training"] = training or {}
    with atomic_open(stage / "config.yaml") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    old = out.with_name(f".{out.name}.old")
    if out.exists():
        os.replace(out, old)
    os.replace(stage, out)
    if old.exists():
        shutil.rmtree(old)
    return out
