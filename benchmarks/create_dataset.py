"""create_dataset throughput and its scaling with worker processes.

Usage::

    flock /tmp/bench.lock just bench create_dataset                   # 1 and 2 workers, 3 rounds
    uv run --locked python benchmarks/run.py create_dataset --quick   # smoke run
    BENCH_WORKERS=1,4,8,16 uv run --locked python benchmarks/run.py create_dataset   # 16 cores
    BENCH_REPEATS=5 just bench create_dataset                         # more rounds
    BENCH_WORKLOADS=synth,flac_copy just bench create_dataset         # some workloads only

Four workloads, each run with every worker count of ``BENCH_WORKERS`` (default
``1,2``), into a fresh folder each time:

* ``synth``: ``write_splits`` of ``MiniCorpus`` (train/dev/test, audio rendered by
  espeak-ng when a worker loads it, FLAC-encoded into shards): the mini recipe's
  ``create_dataset``;
* ``generate``: ``espnet_data.synth.librispeech.make_librispeech``: the LibriSpeech-shaped
  synthetic corpus (utterances of 2-24.5 s) written as FLAC files and transcripts;
* ``flac_copy``: shards written from existing 16 kHz FLAC files (a 2 h corpus of
  ``make_librispeech``, read the way ``LibriSpeechCorpus`` reads it, its files listed again
  under new keys where a run needs more), ``keep_original``: each file decoded to check
  it and stored as it is;
* ``flac_reencode``: the same with ``keep_original: false``: decoded, checked, re-encoded.

The two ``flac_`` workloads are ``shard_write``'s ``copy`` and ``reencode`` modes (its
``write_once``), on utterances of LibriSpeech's lengths instead of ~2.5 s ones.

The work of a run grows with its workers (``per worker x max(workers, 2)`` utterances
or hours) so every run lasts several seconds; figures are rates (utterances/s, audio
hours/s), and ``scaling_N`` is N workers' rate over 1 worker's. One worker runs in this
process on one thread (torch and BLAS), as each pool worker does, so 1 and N differ only
in the number of processes. The rounds alternate the order of the worker counts; each
round's ratio is kept, and the median over ``BENCH_REPEATS`` rounds (default 3) is the
figure, with its spread (min, max). ``scaling_N`` at the top is the ``synth`` workload's
(the mini recipe's create_dataset; the first of ``BENCH_WORKLOADS`` when it leaves synth
out, named by ``scaling_workload``); ``scaling_N_by_workload`` gives every workload's.
There is no peer in this benchmark.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import metric
from shard_write import MODES, write_once

SEED = 0
UTTERANCES_PER_SHARD = 100
# work per worker slot (a run with W workers does max(W, 2) slots)
FULL = {"synth_utts": 400, "generate_h": 0.25, "flac_utts": 1000, "flac_source_h": 2.0}
QUICK = {"synth_utts": 40, "generate_h": 0.02, "flac_utts": 20, "flac_source_h": 0.04}
WORKLOADS = ("synth", "generate", "flac_copy", "flac_reencode")


def worker_counts() -> list[int]:
    """``BENCH_WORKERS`` (comma-separated, e.g. ``1,4,8,16``); 1 is always measured."""
    raw = os.environ.get("BENCH_WORKERS", "1,2")
    try:
        counts = sorted({int(v) for v in raw.split(",") if v.strip()} | {1})
    except ValueError as err:
        raise ValueError(f"BENCH_WORKERS={raw!r} must be comma-separated integers, e.g. 1,4,8,16") from err
    if counts[0] < 1:
        raise ValueError(f"BENCH_WORKERS={raw!r}: worker counts must be >= 1")
    return counts


def workloads() -> tuple[str, ...]:
    """``BENCH_WORKLOADS`` (comma-separated, default all of :data:`WORKLOADS`)."""
    raw = os.environ.get("BENCH_WORKLOADS", ",".join(WORKLOADS))
    chosen = tuple(w.strip() for w in raw.split(",") if w.strip())
    unknown = [w for w in chosen if w not in WORKLOADS]
    if unknown or not chosen:
        raise ValueError(f"BENCH_WORKLOADS={raw!r}: choose from {','.join(WORKLOADS)}")
    return tuple(w for w in WORKLOADS if w in chosen)


def repeats(quick: bool) -> int:
    value = os.environ.get("BENCH_REPEATS", "1" if quick else "3")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"BENCH_REPEATS={value!r} must be a positive integer")
    return int(value)


def _run_synth(work: Path, workers: int, slots: int, sizes: dict[str, float]) -> dict[str, Any]:
    from espnet_data import write_splits
    from espnet_data.corpora import MiniCorpus

    n = int(sizes["synth_utts"] * slots)
    corpus = MiniCorpus(utterances={"train": n - 2 * (n // 12), "dev": n // 12, "test": n // 12})
    start = time.perf_counter()
    summaries = write_splits(corpus, corpus.splits(), work, utterances_per_shard=UTTERANCES_PER_SHARD,
                             num_workers=workers, progress=False)
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "utterances": sum(s["num_utterances"] for s in summaries.values()),
        "hours": sum(s["hours"] for s in summaries.values()),
    }


def _run_generate(work: Path, workers: int, slots: int, sizes: dict[str, float]) -> dict[str, Any]:
    from espnet_data.synth.librispeech import make_librispeech

    start = time.perf_counter()
    summary = make_librispeech(work, hours=sizes["generate_h"] * slots, parts=["train-clean-100"],
                               seed=SEED, num_workers=workers, progress=False)
    wall = time.perf_counter() - start
    part = summary["parts"]["train-clean-100"]
    return {"wall_s": wall, "utterances": part["utterances"], "hours": part["hours"]}


def _listed(entries: list[Any], n: int) -> list[Any]:
    """``n`` entries: the corpus's files in order, listed again under new keys
    (``<key>-r1``...) when there are fewer (the files are read each time)."""
    from dataclasses import replace

    return [
        replace(entries[i % len(entries)], key=f"{entries[i % len(entries)].key}-r{i // len(entries)}")
        if i >= len(entries) else entries[i]
        for i in range(n)
    ]


def _run_flac(
    work: Path, workers: int, slots: int, entries: list[Any], per_slot: int, mode: str
) -> dict[str, Any]:
    """``shard_write``'s measurement (its ``write_once`` and ``MODES``) on LibriSpeech-shaped
    FLAC files, read as ``LibriSpeechCorpus`` reads them."""
    from espnet_data.testing import ListCorpus

    corpus = ListCorpus({"train": _listed(entries, per_slot * slots)})
    res = write_once(corpus, work, workers, {**MODES[mode], "max_duration": 36.0})
    return {"wall_s": res["wall_s"], "utterances": res["utterances"],
            "hours": res["audio_hours_per_s"] * res["wall_s"], "stored_original": res["stored_original"]}


def _spread(values: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": [round(v, 3) for v in values]}


def run(quick: bool) -> dict[str, Any]:
    from espnet_data.corpora import LibriSpeechCorpus
    from espnet_data.synth.librispeech import make_librispeech

    # "1 worker" runs in this process on one thread (espnet_data.parallel.one_thread), as
    # each pool worker does
    sizes = QUICK if quick else FULL
    counts = worker_counts()
    rounds = repeats(quick)
    chosen = workloads()
    top = max(counts)
    results: dict[str, dict[int, list[dict[str, Any]]]] = {w: {n: [] for n in counts} for w in chosen}
    with tempfile.TemporaryDirectory(prefix="bench-create-dataset-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        make_librispeech(work / "source", hours=sizes["flac_source_h"], parts=["train-clean-100"],
                         seed=SEED + 1, num_workers=top, progress=False)
        source_s = time.perf_counter() - start
        entries = LibriSpeechCorpus(root=str(work / "source")).entries("train")
        per_slot = int(sizes["flac_utts"])
        # warm-up: imports, espeak's library copy, the page cache of the FLAC files
        _run_synth(work / "warm", 1, 1, {"synth_utts": 8})
        _run_flac(work / "warm-flac", 1, 1, entries, per_slot, "copy")
        for r in range(rounds):
            order = counts if r % 2 == 0 else counts[::-1]
            for workload in chosen:
                for n in order:
                    slots = max(n, 2)
                    out = work / f"{workload}-{r}-{n}"
                    load = [round(v, 2) for v in os.getloadavg()]
                    if workload == "synth":
                        res = _run_synth(out, n, slots, sizes)
                    elif workload == "generate":
                        res = _run_generate(out, n, slots, sizes)
                    else:
                        res = _run_flac(out, n, slots, entries, per_slot, workload.removeprefix("flac_"))
                    res.update(workers=n, round=r, load_average=load,
                               utts_per_s=res["utterances"] / res["wall_s"],
                               audio_h_per_s=res["hours"] / res["wall_s"])
                    results[workload][n].append(res)
                    shutil.rmtree(out, ignore_errors=True)
    figures: dict[str, Any] = {}
    for workload, by_n in results.items():
        one = by_n[1]
        figures[workload] = {
            "utts_per_s": {n: _spread([x["utts_per_s"] for x in runs]) for n, runs in by_n.items()},
            "audio_h_per_s": {n: _spread([x["audio_h_per_s"] for x in runs]) for n, runs in by_n.items()},
            "scaling": {
                n: _spread([x["utts_per_s"] / o["utts_per_s"] for x, o in zip(runs, one, strict=True)])
                for n, runs in by_n.items() if n > 1
            },
        }
    record: dict[str, Any] = {
        "description": "create_dataset: utterances and audio hours per second with 1..N worker processes",
    }
    metrics = []
    head = chosen[0]  # synth unless BENCH_WORKLOADS leaves it out
    record["scaling_workload"] = head
    for n in counts[1:]:
        record[f"scaling_{n}"] = figures[head]["scaling"][n]["median"]
        record[f"scaling_{n}_spread"] = [figures[head]["scaling"][n]["min"], figures[head]["scaling"][n]["max"]]
        record[f"scaling_{n}_by_workload"] = {w: figures[w]["scaling"][n]["median"] for w in chosen}
    for workload in chosen:
        for n in counts:
            metrics.append(metric(f"{workload}: utterances / s, {n} worker(s)", "utt/s",
                                  figures[workload]["utts_per_s"][n]["median"], None, True))
        metrics.append(metric(f"{workload}: audio hours / s, {counts[-1]} worker(s)", "h/s",
                              figures[workload]["audio_h_per_s"][counts[-1]]["median"], None, True))
        for n in counts[1:]:
            metrics.append(metric(f"{workload}: scaling {n} vs 1 (median of {rounds})", "x",
                                  figures[workload]["scaling"][n]["median"], None, True))
    record.update(
        figures=figures,
        settings={
            "workers": counts, "rounds": rounds, "workloads": list(chosen), "sizes_per_worker_slot": sizes,
            "utterances_per_shard": UTTERANCES_PER_SHARD, "source_corpus_utterances": len(entries),
            "source_corpus_s": round(source_s, 2), "cpu_count": os.cpu_count(), "quick": quick,
        },
        runs={w: {n: runs for n, runs in by_n.items()} for w, by_n in results.items()},
        metrics=metrics,
    )
    return record
