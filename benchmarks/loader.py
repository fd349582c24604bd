"""Loader throughput and padding: FLAC shards -> padded batches, per worker.

Usage::

    just bench loader                                        # ~1,000 utterances, 3 passes
    uv run --locked python benchmarks/run.py loader --quick  # smoke run (or BENCH_QUICK=1)

A spoken corpus is synthesised with ``espnet_data.synth.make_tiny_corpus`` (espeak-ng
voices, 16 kHz FLAC) and written as shards by ``write_split``. One worker then reads the
shards the way training does: ``ShardDataset`` (tar streaming, FLAC decoding) ->
``DynamicBatcher`` (64 padded seconds per batch, the audio of the training-step
benchmark's batch) -> ``Collate`` (padded float tensors, character ids). Two readers
are timed over the same shards:

* ``inline``: the pipeline in this process (``num_workers=0``, one torch thread, as in a
  DataLoader worker): the cost of the work without the transfer between processes.
* ``worker``: one ``DataLoader`` worker process (``num_workers=1``), tensors sent back to
  this process: what one training worker delivers.

``utts_per_s_per_worker`` and ``audio_hours_per_s_per_worker`` are the ``worker``
figures. ``consumption_ratio`` = the worker's batches per second / the CPU training
step's batches per second at the same batch (64 audio seconds), the latter the highest
audio-seconds-per-second figure in the training benchmarks' last outputs
(``benchmarks/out/train_step.json``, ``train.json``'s fp32 and bf16 rows: the fastest
consumer gives the smallest ratio; ``BENCH_TRAIN_AUDIO_S_PER_S`` overrides it). The target is
>= 20: one loader worker keeps 20 training processes fed. A 64 s batch of the loader
holds less than 64 s of speech (the rest is padding), so ``consumption_ratio_audio``
(audio seconds per second over the same) is reported too.

Padding ratio (padded area that is padding) of the bucketing batcher
(``DynamicBatcher``, buffer 2000, sorted by length) vs random batches (the same budget,
batches cut in arrival order after a shuffle), on this corpus and, when it exists, on
the mini recipe's training split (``egs/mini/asr/data/train/index.jsonl``). Target < 10%.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _harness import BENCH_DIR, ROOT, metric, num_threads

MAX_SECONDS = 64.0  # the training-step benchmark's batch: 16 x 4 s / 8 x 4-12 s
BUFFER_SIZE = 2000
SEED = 0
MINI_TRAIN = ROOT / "egs" / "mini" / "asr" / "data" / "train"


def make_shards(work: Path, num_utterances: int) -> tuple[Path, dict[str, Any]]:
    from espnet_data import write_split
    from espnet_data.synth import make_tiny_corpus
    from espnet_data.testing import ListCorpus

    make_tiny_corpus(work / "audio", num_utterances, seed=SEED)
    corpus = ListCorpus.from_dir(work / "audio")
    summary = write_split(corpus, "train", work / "train", utterances_per_shard=100, num_workers=1)
    return work / "train", summary


def _pipeline(split: Path) -> Any:
    from espnet_data import Collate, DynamicBatcher, ShardDataset, map_stage, shard_paths
    from espnet_data.tokenizer import CharTokenizer

    texts = [r["text"] for r in _index(split)]
    tokenizer = CharTokenizer.from_texts(texts)
    batcher = DynamicBatcher(max_seconds=MAX_SECONDS, buffer_size=BUFFER_SIZE, shuffle=True, seed=SEED)
    return ShardDataset(
        shard_paths(split),
        shuffle_shards=True,
        seed=SEED,
        stages=[batcher, map_stage(Collate(tokenize=tokenizer.encode))],
    )


def _index(split: Path) -> list[dict[str, Any]]:
    from espnet_data import read_index

    return read_index(split)


def _identity(batch: Any) -> Any:
    return batch


def time_reader(split: Path, num_workers: int, passes: int) -> dict[str, Any]:
    """Read every shard ``passes`` times into padded batches; the median pass counts."""
    from torch.utils.data import DataLoader

    dataset = _pipeline(split)
    threads = torch.get_num_threads()
    if num_workers == 0:
        torch.set_num_threads(1)  # as in a DataLoader worker, which runs on one thread
    times, utts, audio, batches, padded = [], 0, 0.0, 0, 0.0
    for epoch in range(passes + 1):  # pass 0 warms up (imports, page cache, worker start)
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=None, num_workers=num_workers, collate_fn=_identity)
        start = time.perf_counter()
        n_utts, n_audio, n_batches, n_padded = 0, 0.0, 0, 0.0
        for batch in loader:
            lengths = batch["speech_lengths"]
            n_utts += len(lengths)
            n_audio += float(lengths.sum()) / 16000
            n_padded += float(batch["speech"].shape[0] * batch["speech"].shape[1]) / 16000
            n_batches += 1
        elapsed = time.perf_counter() - start
        if epoch:
            times.append(elapsed)
            utts, audio, batches, padded = n_utts, n_audio, n_batches, n_padded
    torch.set_num_threads(threads)
    median = statistics.median(times)
    return {
        "num_workers": num_workers,
        "passes": passes,
        "times_s": times,
        "median_s": median,
        "utterances": utts,
        "audio_seconds": round(audio, 2),
        "batches": batches,
        "utts_per_s": utts / median,
        "audio_s_per_s": audio / median,
        "audio_hours_per_s": audio / median / 3600,
        "batches_per_s": batches / median,
        "padding_in_batches": 1 - audio / padded if padded else 0.0,
    }


def padding(durations: list[float]) -> dict[str, float]:
    """Padding ratio of bucketed vs random batches over ``durations`` (shuffled first)."""
    from espnet_data import DynamicBatcher

    rows = [{"key": str(i), "duration": d} for i, d in enumerate(durations)]
    random.Random(SEED).shuffle(rows)
    bucketed = DynamicBatcher(max_seconds=MAX_SECONDS, buffer_size=BUFFER_SIZE, seed=SEED)
    unsorted = DynamicBatcher(
        max_seconds=MAX_SECONDS, buffer_size=BUFFER_SIZE, seed=SEED, sort_by_length=False
    )
    counts = {name: sum(1 for _ in b(iter(rows))) for name, b in (("b", bucketed), ("r", unsorted))}
    return {
        "utterances": len(rows),
        "mean_duration_s": statistics.fmean(durations),
        "bucketed": bucketed.padding_ratio,
        "random": unsorted.padding_ratio,
        "batches_bucketed": counts["b"],
        "batches_random": counts["r"],
    }


def train_consumption() -> dict[str, Any]:
    """The CPU training step's audio seconds per second, and where the figure comes from.

    The highest figure among the training benchmarks' last outputs (the fastest consumer
    makes the ratio smallest): ``train_step.json``'s throughput, ``train.json``'s fp32 and
    bf16 rows. ``BENCH_TRAIN_AUDIO_S_PER_S`` overrides them.
    """
    override = os.environ.get("BENCH_TRAIN_AUDIO_S_PER_S")
    if override:
        return {"audio_s_per_s": float(override), "source": "BENCH_TRAIN_AUDIO_S_PER_S", "candidates": {}}
    candidates: dict[str, float] = {}
    for name, keys in (("train_step.json", ("throughput",)), ("train.json", ("audio_s_per_s", "bf16_audio_s_per_s"))):
        path = BENCH_DIR / "out" / name
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        when = f"{data['machine']['date']}, load {data['machine']['load_average']}"
        for key in keys:
            if key == "throughput":
                value = next((m["ours"] for m in data.get("metrics", []) if m["name"] == key), None)
            else:
                value = data.get(key)
            if isinstance(value, int | float) and value > 0:
                candidates[f"benchmarks/out/{name} {key} ({when})"] = float(value)
    if not candidates:
        return {
            "audio_s_per_s": None,
            "source": "no training benchmark output: run `just bench train` first",
            "candidates": {},
        }
    source = max(candidates, key=candidates.__getitem__)
    return {"audio_s_per_s": candidates[source], "source": source, "candidates": candidates}


def run(quick: bool) -> dict[str, Any]:
    torch.set_num_threads(num_threads())
    num_utterances, passes = (200, 2) if quick else (1000, 3)
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        start = time.perf_counter()
        split, summary = make_shards(Path(tmp), num_utterances)
        prepare_s = time.perf_counter() - start
        inline = time_reader(split, 0, passes)
        worker = time_reader(split, 1, passes)
        corpus_padding = padding([r["duration"] for r in _index(split)])
    mini_padding = None
    if (MINI_TRAIN / "index.jsonl").exists():
        mini_padding = padding([r["duration"] for r in _index(MINI_TRAIN)])
    train = train_consumption()
    batch_audio = worker["audio_seconds"] / worker["batches"]
    train_batches_per_s = train["audio_s_per_s"] / MAX_SECONDS if train["audio_s_per_s"] else None
    ratio = worker["batches_per_s"] / train_batches_per_s if train_batches_per_s else None
    audio_ratio = worker["audio_s_per_s"] / train["audio_s_per_s"] if train["audio_s_per_s"] else None
    pad = mini_padding or corpus_padding
    return {
        "description": "one worker reading FLAC shards into padded batches; padding of bucketed vs random batches",
        "utts_per_s_per_worker": worker["utts_per_s"],
        "audio_hours_per_s_per_worker": worker["audio_hours_per_s"],
        "consumption_ratio": ratio,
        "consumption_ratio_audio": audio_ratio,
        "padding_ratio_bucketed": pad["bucketed"],
        "padding_ratio_random": pad["random"],
        "padding_source": "egs/mini/asr/data/train" if mini_padding else "benchmark corpus",
        "meets_targets": {
            "consumption_ratio_ge_20": ratio is not None and ratio >= 20,
            "padding_bucketed_lt_0.1": pad["bucketed"] < 0.1,
        },
        "settings": {
            "utterances": summary["num_utterances"],
            "audio_hours": summary["hours"],
            "shards": summary["num_shards"],
            "shard_megabytes": summary["megabytes"],
            "max_seconds_per_batch": MAX_SECONDS,
            "mean_batch_audio_s": batch_audio,
            "buffer_size": BUFFER_SIZE,
            "passes": passes,
            "threads": num_threads(),
            "prepare_s": round(prepare_s, 2),
            "train_audio_s_per_s": train["audio_s_per_s"],
            "train_figure_from": train["source"],
            "train_figures_found": train["candidates"],
            "quick": quick,
        },
        "inline": inline,
        "worker": worker,
        "padding_benchmark_corpus": corpus_padding,
        "padding_mini_train": mini_padding,
        "metrics": [
            metric("utterances / s, 1 worker", "utt/s", worker["utts_per_s"], None, True),
            metric("audio hours / s, 1 worker", "h/s", worker["audio_hours_per_s"], None, True),
            metric("audio s / s, 1 worker", "s/s", worker["audio_s_per_s"], None, True),
            metric("audio s / s, inline", "s/s", inline["audio_s_per_s"], None, True),
            metric("batches / s, 1 worker", "batch/s", worker["batches_per_s"], None, True),
            metric("consumption ratio (target >= 20)", "x", ratio, None, True),
            metric("consumption ratio, audio s", "x", audio_ratio, None, True),
            metric(f"padding bucketed ({'mini train' if mini_padding else 'corpus'})", "fraction", pad["bucketed"], None, False),
            metric(f"padding random ({'mini train' if mini_padding else 'corpus'})", "fraction", pad["random"], None, False),
            metric("padding bucketed (bench corpus)", "fraction", corpus_padding["bucketed"], None, False),
            metric("padding random (bench corpus)", "fraction", corpus_padding["random"], None, False),
        ],
    }
