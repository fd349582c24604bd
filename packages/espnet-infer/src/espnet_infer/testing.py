"""Test helpers users also want: a tiny language model folder for an ASR model folder.

``tiny_lm_folder(root, asr_dir)`` writes the LM folder espnet-train's LM task exports
(``task: lm``, see :mod:`espnet_infer.lm`), with a random seeded network and the ASR
folder's tokenizer, so that shallow fusion runs end to end in milliseconds. ``favour``
biases it towards one token so that fusion visibly changes the transcripts.

Usage::

    python -c "from espnet_infer.testing import tiny_lm_folder; print(tiny_lm_folder('/tmp/lm', 'exp/train/model'))"
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import yaml
from espnet_data import load_tokenizer, save_tokenizer

from .loading import _read_yaml

__all__ = ["TINY_LM", "tiny_lm_folder"]

Pathlike = str | os.PathLike[str]

#: a one-layer LSTM LM small enough to build and score in microseconds
TINY_LM: dict[str, Any] = {"lm": "seq_rnn", "lm_conf": {"unit": 16, "nlayers": 1}}


def tiny_lm_folder(
    root: Pathlike,
    asr_dir: Pathlike,
    *,
    seed: int = 0,
    favour: str | None = None,
    bias: float = 8.0,
    block: dict[str, Any] | None = None,
) -> Path:
    """Write an LM folder at ``root`` that shares ``asr_dir``'s tokenizer.

    Args:
        root: the folder to write (``config.yaml``, ``model.pt``, ``tokenizer/``).
        asr_dir: an ASR model folder (training's or a pack) whose tokenizer is copied.
        seed: seeds the random weights.
        favour: a token (e.g. ``"a"``) whose output bias is raised by ``bias``, so the
            LM prefers it everywhere.
        bias: how much (log-odds) ``favour`` is raised.
        block: the ``build_lm`` block (default :data:`TINY_LM`).
    """
    from espnet_model.lm import build_lm

    root, asr_dir = Path(root), Path(asr_dir)
    asr_config = _read_yaml(asr_dir / "config.yaml")
    tokenizer = load_tokenizer(asr_config["tokenizer"], asr_dir)
    spec = save_tokenizer(tokenizer, root / "tokenizer")
    block = dict(block or TINY_LM)
    torch.manual_seed(seed)
    model = build_lm(block, vocab_size=tokenizer.vocab_size)
    if favour is not None:
        token = "<space>" if favour == " " else favour
        if token not in tokenizer.token_list:
            raise ValueError(
                f"favour={favour!r} is not a token of {asr_dir}'s tokenizer; choose one of "
                f"{tokenizer.token_list[2:-1]}"
            )
        with torch.no_grad():
            model.lm.decoder.bias[tokenizer.token_list.index(token)] += bias
    torch.save(model.state_dict(), root / "model.pt")
    config = {
        "task": "lm",
        "model": block,
        "vocab_size": tokenizer.vocab_size,
        "tokenizer": {k: (v if k == "type" else f"tokenizer/{v}") for k, v in spec.items()},
        "training": {"epochs": 0, "num_params": sum(p.numel() for p in model.parameters())},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root
