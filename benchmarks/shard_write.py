"""Shard writing throughput with 1 and 2 worker processes.

Usage::

    just bench shard_write                                        # 600 utterances
    uv run --locked python benchmarks/run.py shard_write --quick  # 120 utterances

A spoken corpus is synthesised once (``espnet_data.synth.make_tiny_corpus``: 16 kHz
FLAC files, espeak-ng voices) and written as a shard split by ``write_split`` with
``num_workers`` = 1 and 2, each into a fresh folder, in three ways:

* ``copy``: the sources are already FLAC at the target rate, so their bytes are stored
  as they are (decoded once to check them);
* ``reencode``: ``keep_original: false``, every sample decoded, checked and encoded
  to FLAC again;
* ``resample``: the target rate is 8 kHz, so every sample is resampled
  (torchaudio) and encoded.

Figures are utterances, audio hours and megabytes of shards per wall second, and the
speed-up of 2 workers over 1. On a 2-core machine that also runs other work, the
speed-up is bounded by the free cores: the load average is recorded beside them. With
``num_workers=1`` the split is written in this process, on one torch thread (as each
pool worker is), so the two figures differ only in the number of processes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _harness import metric

UTTERANCES_PER_SHARD = 40
SEED = 0
MODES = {
    "copy": {},
    "reencode": {"keep_original": False},
    "resample": {"sample_rate": 8000},
}


def write_once(corpus: Any, out: Path, workers: int, options: dict[str, Any]) -> dict[str, Any]:
    from espnet_data import ShardOptions, write_split

    start = time.perf_counter()
    summary = write_split(
        corpus,
        "train",
        out,
        options=ShardOptions(**options),
        utterances_per_shard=UTTERANCES_PER_SHARD,
        num_workers=workers,
    )
    wall = time.perf_counter() - start
    return {
        "workers": workers,
        "wall_s": wall,
        "utterances": summary["num_utterances"],
        "shards": summary["num_shards"],
        "megabytes": summary["megabytes"],
        "stored_original": summary["stored_original"],
        "utts_per_s": summary["num_utterances"] / wall,
        "audio_hours_per_s": summary["hours"] / wall,
        "mb_per_s": summary["megabytes"] / wall,
    }


def run(quick: bool) -> dict[str, Any]:
    import os

    from espnet_data.synth import make_tiny_corpus
    from espnet_data.testing import ListCorpus

    # one thread in this process too: a pool worker computes on one thread, so "1 worker"
    # and "2 workers" differ only in the number of processes
    torch.set_num_threads(1)
    num_utterances = 120 if quick else 600
    results: dict[str, dict[int, dict[str, Any]]] = {}
    loads: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-shard-write-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        make_tiny_corpus(work / "audio", num_utterances, seed=SEED)
        synth_s = time.perf_counter() - start
        corpus = ListCorpus.from_dir(work / "audio")
        write_once(corpus, work / "warmup", 1, {})  # imports, page cache
        for mode, options in MODES.items():
            results[mode] = {}
            for workers in (1, 2):
                loads[f"{mode}/{workers}"] = [round(v, 2) for v in os.getloadavg()]
                results[mode][workers] = write_once(corpus, work / f"{mode}-{workers}", workers, options)
        audio_files = sum(1 for _ in (work / "audio").glob("*.flac"))
    metrics = []
    for mode in MODES:
        one, two = results[mode][1], results[mode][2]
        metrics += [
            metric(f"{mode}: utterances / s, 1 worker", "utt/s", one["utts_per_s"], None, True),
            metric(f"{mode}: utterances / s, 2 workers", "utt/s", two["utts_per_s"], None, True),
            metric(f"{mode}: audio hours / s, 2 workers", "h/s", two["audio_hours_per_s"], None, True),
            metric(f"{mode}: MB / s, 2 workers", "MB/s", two["mb_per_s"], None, True),
            metric(f"{mode}: speed-up 2 vs 1", "x", two["utts_per_s"] / one["utts_per_s"], None, True),
        ]
    return {
        "description": "write_split throughput (utterances, audio hours, MB per s) with 1 and 2 worker processes",
        "utts_per_s": {mode: {w: r["utts_per_s"] for w, r in by.items()} for mode, by in results.items()},
        "speedup_2_workers": {
            mode: by[2]["utts_per_s"] / by[1]["utts_per_s"] for mode, by in results.items()
        },
        "settings": {
            "utterances": num_utterances,
            "audio_files": audio_files,
            "utterances_per_shard": UTTERANCES_PER_SHARD,
            "synth_s": round(synth_s, 2),
            "load_average_before_each": loads,
            "quick": quick,
        },
        "results": results,
        "metrics": metrics,
    }
