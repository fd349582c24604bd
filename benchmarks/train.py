"""Training-step throughput: this project's ASR model vs ESPnet2's ``ESPnetASRModel``.

Usage::

    just bench train_step                                   # full run
    uv run --locked python benchmarks/run.py train_step --quick   # smoke run

Both sides build the ``model:`` block of ``egs/mini/asr/conf/training.yaml``
(vocab 128, ``global_mvn`` replaced by ``utterance_mvn``), train on the same batch
(16 x 4 s of seeded random audio with seeded random transcripts) with Adam and
gradient clipping at 5.0, on ``BENCH_THREADS`` (default 2) torch threads. One step is
forward + backward + clip + optimizer step; warm-up steps are not timed and the
figure is the median step. Throughput = seconds of audio in the batch / median
step time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _harness import (
    SAMPLE_RATE,
    TRAINING_CONFIG,
    VOCAB_SIZE,
    median_time,
    metric,
    model_block,
    num_threads,
    peer_model_spec,
    peer_value,
    run_peer,
    token_list,
)

BATCH = 16
SECONDS = 4.0
LR = 0.002
CLIP = 5.0
SEED = 0


def make_batch(path: Path, batch: int = BATCH, seconds: float = SECONDS, seed: int = SEED) -> dict[str, np.ndarray]:
    """Seeded random audio and transcripts, saved to ``path`` (``.npz``) for the peer."""
    rng = np.random.default_rng(seed)
    samples = int(seconds * SAMPLE_RATE)
    speech = (0.1 * rng.standard_normal((batch, samples))).astype(np.float32)
    speech_lengths = np.full(batch, samples, dtype=np.int64)
    text_lengths = rng.integers(20, 41, size=batch).astype(np.int64)
    text = np.full((batch, int(text_lengths.max())), -1, dtype=np.int64)
    for i, n in enumerate(text_lengths):
        text[i, :n] = rng.integers(2, VOCAB_SIZE - 1, size=n)
    arrays = {"speech": speech, "speech_lengths": speech_lengths, "text": text, "text_lengths": text_lengths}
    np.savez(path, **arrays)
    return arrays


def measure_ours(arrays: dict[str, np.ndarray], warmup: int, iterations: int) -> dict[str, Any]:
    from espnet_model import build_asr_model, count_parameters

    torch.set_num_threads(num_threads())
    torch.manual_seed(SEED)
    model = build_asr_model(model_block(), vocab_size=VOCAB_SIZE)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    batch = {k: torch.from_numpy(v) for k, v in arrays.items()}

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _, _ = model(**batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()

    timing = median_time(step, warmup, iterations)
    return {
        "parameters": count_parameters(model),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        **timing,
    }


def run(quick: bool = False) -> dict[str, Any]:
    warmup, iterations = (1, 3) if quick else (3, 15)
    audio_seconds = BATCH * SECONDS
    block = model_block()
    with tempfile.TemporaryDirectory(prefix="bench-train-step-") as work:
        batch_file = Path(work) / "batch.npz"
        arrays = make_batch(batch_file)
        ours = measure_ours(arrays, warmup, iterations)
        peer = run_peer(
            "train_step_peer.py",
            {
                "work_dir": work,
                "batch_file": str(batch_file),
                "model": peer_model_spec(block, token_list()),
                "threads": num_threads(),
                "lr": LR,
                "clip": CLIP,
                "seed": SEED,
                "warmup": warmup,
                "iterations": iterations,
            },
        )
    ours_tp = audio_seconds / ours["median_s"]
    peer_tp: float | str | None = peer_value(peer, "median_s")
    if isinstance(peer_tp, float):
        peer_tp = audio_seconds / peer_tp
    return {
        "description": "training step (forward + backward + clip + Adam step) on one fixed batch",
        "settings": {
            "config": str(TRAINING_CONFIG.relative_to(TRAINING_CONFIG.parents[4])),
            "model_block": block,
            "vocab_size": VOCAB_SIZE,
            "batch": BATCH,
            "seconds_per_utterance": SECONDS,
            "audio_seconds_per_step": audio_seconds,
            "threads": num_threads(),
            "warmup": warmup,
            "iterations": iterations,
            "quick": quick,
        },
        "metrics": [
            metric("throughput", "audio s / wall s", ours_tp, peer_tp, higher_is_better=True),
            metric("median step", "s", ours["median_s"], peer_value(peer, "median_s"), higher_is_better=False),
            metric("fastest step", "s", ours["min_s"], peer_value(peer, "min_s"), higher_is_better=False),
            metric("parameters", "count", ours["parameters"], peer_value(peer, "parameters")),
        ],
        "ours": ours,
        "peer": peer,
    }
