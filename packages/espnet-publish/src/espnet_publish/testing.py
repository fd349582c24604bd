"""Test helpers users also want: a tiny model folder in the shared training format.

Usage::

    python -c "from espnet_publish.testing import dummy_model_folder; print(dummy_model_folder('/tmp/m'))"

torch is imported lazily (only to save ``model.pt``); it is not needed for the rest of
espnet_publish.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

__all__ = ["dummy_model_folder", "dummy_scores"]

Pathlike = str | os.PathLike[str]

_TOKENS = ["<blank>", "<unk>", "a", "b", "c", " ", "<sos/eos>"]


def dummy_model_folder(root: Pathlike, *, with_stats: bool = False) -> Path:
    """Write a char-tokenizer model folder (config.yaml, model.pt, tokenizer/tokens.txt) at ``root``."""
    import torch

    root = Path(root)
    (root / "tokenizer").mkdir(parents=True, exist_ok=True)
    (root / "tokenizer" / "tokens.txt").write_text("\n".join(_TOKENS) + "\n", encoding="utf-8")
    config = {
        "model": {
            "encoder": "conformer",
            "encoder_conf": {"output_size": 8, "num_blocks": 2, "attention_heads": 2},
            "decoder": "transformer",
            "model_conf": {"ctc_weight": 0.3},
        },
        "vocab_size": len(_TOKENS),
        "sample_rate": 16000,
        "tokenizer": {"type": "char", "token_list": "tokenizer/tokens.txt"},
        "training": {"epochs": 3, "averaged_checkpoints": 2, "num_params": 35},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(4, len(_TOKENS)).state_dict(), root / "model.pt")
    if with_stats:
        import numpy as np

        np.savez(root / "stats.npz", mean=np.zeros(4), std=np.ones(4))
    return root


def dummy_scores(path: Pathlike) -> Path:
    """Write a ``scores.json`` with WER/CER for two test sets at ``path``."""
    path = Path(path)
    scores = {"test_clean": {"wer": 3.25, "cer": 1.5}, "test_other": {"wer": 8.75, "cer": 4.0}}
    path.write_text(json.dumps(scores), encoding="utf-8")
    return path
