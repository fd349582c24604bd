"""Test helpers users also want: tiny model folders in the shared training format.

``dummy_model_folder`` has the right files but weights no model loads (fast, for the
packing logic); ``tiny_asr_model_folder`` is a real, untrained conformer that
``espnet_infer`` loads and decodes with (for end-to-end checks of a pack), or with
``streaming=True`` a contextual block conformer that ``Speech2TextStreaming`` decodes.

Usage::

    python -c "from espnet_publish.testing import tiny_asr_model_folder; print(tiny_asr_model_folder('/tmp/m'))"

torch is imported lazily; it is not needed for the rest of espnet_publish.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

__all__ = ["dummy_model_folder", "dummy_scores", "tiny_asr_model_folder"]

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


#: an untrained conformer/transformer small enough to build and decode in milliseconds
TINY_ASR_MODEL = {
    "frontend": "default",
    "frontend_conf": {"n_mels": 20},
    "specaug": None,
    "normalize": "utterance_mvn",
    "encoder": "conformer",
    "encoder_conf": {
        "output_size": 16,
        "attention_heads": 2,
        "linear_units": 32,
        "num_blocks": 1,
        "cnn_module_kernel": 5,
        "input_layer": "conv2d",
        "dropout_rate": 0.0,
    },
    "decoder": "transformer",
    "decoder_conf": {
        "attention_heads": 2,
        "linear_units": 32,
        "num_blocks": 1,
        "dropout_rate": 0.0,
    },
    "model_conf": {"ctc_weight": 0.3},
}


#: :data:`TINY_ASR_MODEL` with a streaming encoder: a contextual block conformer (blocks
#: of 8 frames every 3, look-ahead 2) and no utterance MVN (it needs the whole utterance)
TINY_STREAMING_ASR_MODEL = {
    **TINY_ASR_MODEL,
    "normalize": None,
    "encoder": "contextual_block_conformer",
    "encoder_conf": {
        **TINY_ASR_MODEL["encoder_conf"],
        "block_size": 8,
        "hop_size": 3,
        "look_ahead": 2,
    },
}


def tiny_asr_model_folder(root: Pathlike, *, seed: int = 0, streaming: bool = False) -> Path:
    """Write a real (untrained, seeded) ASR model folder at ``root``, as training exports it.

    ``config.yaml`` (model block, vocab_size, sample_rate, tokenizer spec), ``model.pt``
    and a character tokenizer in ``tokenizer/``. Its transcripts are arbitrary but
    deterministic: what it is for is checking that a copy decodes like the original.

    ``streaming=True`` writes :data:`TINY_STREAMING_ASR_MODEL` instead, with its CTC and
    decoder output layers scaled up (x8, x4) so that it emits tokens rather than
    stopping at once; ``espnet_infer.Speech2TextStreaming`` decodes it.
    """
    import torch
    from espnet_data import CharTokenizer, save_tokenizer
    from espnet_model import build_asr_model

    root = Path(root)
    tokenizer = CharTokenizer.from_texts(["the quick brown fox jumps over a lazy dog"])
    spec = save_tokenizer(tokenizer, root / "tokenizer")
    torch.manual_seed(seed)
    block = TINY_STREAMING_ASR_MODEL if streaming else TINY_ASR_MODEL
    model = build_asr_model(block, vocab_size=tokenizer.vocab_size)
    if streaming:
        with torch.no_grad():
            model.ctc.ctc_lo.weight.mul_(8.0)
            model.decoder.output_layer.weight.mul_(4.0)
    torch.save(model.state_dict(), root / "model.pt")
    config = {
        "model": block,
        "vocab_size": tokenizer.vocab_size,
        "sample_rate": 16000,
        "tokenizer": {k: (v if k == "type" else f"tokenizer/{v}") for k, v in spec.items()},
        "training": {"epochs": 0, "num_params": sum(p.numel() for p in model.parameters())},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root


def dummy_scores(path: Pathlike) -> Path:
    """Write a ``scores.json`` with WER/CER for two test sets at ``path``."""
    path = Path(path)
    scores = {"test_clean": {"wer": 3.25, "cer": 1.5}, "test_other": {"wer": 8.75, "cer": 4.0}}
    path.write_text(json.dumps(scores), encoding="utf-8")
    return path
