"""A tiny TTS corpus, phoneme tokenizer, durations and model folder, for the TTS tests.

``tts_data(root)``: the mini TTS corpus at 16/4/4 utterances (espeak-ng renders them
in a second), its phoneme tokenizer and ``durations.jsonl`` for train and dev spread
evenly over each utterance's tokens (no aligner needed). ``TINY_TTS``: a FastSpeech2
block small enough to train an epoch in a few seconds. ``tiny_tts_folder``: a model
folder as ``task: tts`` exports it (random weights), built without Lightning.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

SPLITS = {"train": 16, "dev": 4, "test": 4}
FEATS = {"fs": 16000, "n_fft": 512, "hop_length": 256, "win_length": None, "n_mels": 20, "fmin": 80, "fmax": 7600}
TINY_TTS: dict[str, Any] = {
    "tts": "fastspeech2",
    "tts_conf": {"adim": 16, "aheads": 2, "elayers": 1, "eunits": 32, "dlayers": 1, "dunits": 32,
                 "duration_predictor_layers": 1, "duration_predictor_chans": 16, "postnet_layers": 0},
    "feats_extract": "fbank",
    "feats_extract_conf": FEATS,
    "normalize": None,
}
TINY_ALIGNER: dict[str, Any] = {"conv_layers": 1, "conv_channels": 16, "kernel_size": 3, "rnn_units": 8}


def tiny_tts(**overrides: Any) -> dict[str, Any]:
    block = copy.deepcopy(TINY_TTS)
    block.update(overrides)
    return block


def even_durations(frames: int, tokens: int) -> list[int]:
    """``frames`` spread over ``tokens`` (the first ones get the remainder)."""
    base, extra = divmod(frames, tokens)
    return [base + (1 if i < extra else 0) for i in range(tokens)]


def tts_data(root: Path, splits: dict[str, int] | None = None) -> tuple[Path, Path]:
    """``(data folder, tokenizer folder)`` of a tiny mini-TTS corpus with durations."""
    from espnet_data import write_split
    from espnet_data.corpora.mini_tts import MiniTTSCorpus
    from espnet_data.tts import (
        PhonemeTokenizer,
        Phonemizer,
        read_texts,
        read_tts_samples,
        write_durations,
    )

    splits = dict(splits or SPLITS)
    corpus = MiniTTSCorpus(utterances=splits, seed=0)
    data = root / "data"
    for split in splits:
        write_split(corpus, split, data / split, utterances_per_shard=8)
    tokenizer = PhonemeTokenizer.build(read_texts(data / "train").values(), Phonemizer())
    tok_dir = root / "tokenizer"
    tokenizer.save(tok_dir)
    for split in [s for s in ("train", "dev") if s in splits]:
        rows = []
        for s in read_tts_samples(data / split):
            frames = len(s.audio) // FEATS["hop_length"] + 1
            rows.append((s.key, even_durations(frames, len(tokenizer.encode(s.text)))))
        write_durations(data / split / "durations.jsonl", rows)
    return data, tok_dir


def tts_training_dict(data: Path, tokenizer: Path, exp_dir: Path, *, task: str = "tts",
                      max_epochs: int = 1, **extra: Any) -> dict[str, Any]:
    """A ``training.yaml`` body for the tiny FastSpeech2 (or aligner, ``task: tts_aligner``)."""
    model = tiny_tts() if task == "tts" else {**TINY_ALIGNER, "feats_extract_conf": FEATS}
    cfg: dict[str, Any] = {
        "task": task,
        "exp_dir": str(exp_dir),
        "tokenizer": str(tokenizer),
        "seed": 0,
        "data": {"train": str(data / "train"), "valid": str(data / "dev"), "max_seconds": 20,
                 "max_batch_size": 8, "buffer_size": 100, "num_workers": 0},
        "model": model,
        "optim": {"lr": 0.002, "scheduler": "constant", "warmup_steps": 1},
        "trainer": {"max_epochs": max_epochs, "num_threads": 1, "log_every_n_steps": 1,
                    "accelerator": "cpu", "devices": 1, "enable_progress_bar": False},
        "best_n": 1,
    }
    cfg.update(extra)
    return cfg


def tiny_tts_folder(root: Path, tokenizer: Path, *, sample_rate: int = 16000, seed: int = 0,
                    block: dict[str, Any] | None = None) -> Path:
    """A TTS model folder as ``task: tts`` exports it, with random weights."""
    import shutil

    import torch
    import yaml
    from espnet_data.tts import PhonemeTokenizer
    from espnet_model.tts import build_tts

    block = copy.deepcopy(block or TINY_TTS)
    tok = PhonemeTokenizer.load(tokenizer)
    torch.manual_seed(seed)
    model = build_tts(block, vocab_size=len(tok))
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tokenizer, root / "tokenizer", dirs_exist_ok=True)
    torch.save(model.state_dict(), root / "model.pt")
    config = {"task": "tts", "model": block, "vocab_size": len(tok), "sample_rate": sample_rate,
              "tokenizer": {"type": "phoneme", "token_list": "tokenizer/tokens.txt",
                            "config": "tokenizer/tokenizer.json"},
              "training": {"parameters": sum(p.numel() for p in model.parameters())}}
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root
