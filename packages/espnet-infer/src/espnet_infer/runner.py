"""Sharded, resumable inference: the runner, and ``run_inference`` over the backends.

One task is one shard of one test set; its result is one JSONL file written atomically
(``<output_dir>/<set>/shards/<shard>.jsonl``). A rerun decodes only shards without a
result, so a killed run resumes where it stopped and no utterance is written twice;
results decoded with another model or other decode settings are decoded again.
:func:`decode_shard` is the runner's ``forward``: it consumes the worker's objects
(:class:`~espnet_infer.provider.WorkerEnv`, built once per worker by the provider)
for one shard, and runs unchanged in every backend (:mod:`espnet_infer.backends`).
An utterance that cannot be read or decoded is written with its ``error`` instead
of a hypothesis; the rest of its shard is decoded. When all tasks are done, one
process (rank 0 under MPI) merges the shard files into ``hyp.jsonl``, ``hyp.txt`` and
``ref.txt`` per set and writes ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import webdataset as wds
from espnet_data import Collate, DynamicBatcher, read_index, shard_paths
from espnet_data.atomic import atomic_open, read_jsonl, write_json, write_jsonl
from espnet_data.dataset import decode_samples
from espnet_data.download import file_digest

from .backends import run_local, run_mpi, run_processes
from .config import InferenceConfig
from .progress import Progress, ProgressFn
from .provider import InferenceProvider, WorkerEnv

__all__ = ["ShardTask", "decode_shard", "merge_results", "plan_tasks", "run_inference"]

log = logging.getLogger(__name__)

#: failures listed by key in summary.json (all of them are in hyp.jsonl)
MAX_LISTED_FAILURES = 50


@dataclass(frozen=True)
class ShardTask:
    test_set: str
    shard: str
    output: str


def plan_tasks(config: InferenceConfig) -> list[ShardTask]:
    """Every (test set, shard) pair, in a stable order."""
    tasks = []
    for name, split_dir in config.test_sets.items():
        out = Path(config.output_dir) / name / "shards"
        for shard in shard_paths(split_dir):
            tasks.append(ShardTask(name, shard, str(out / (Path(shard).stem + ".jsonl"))))
    return tasks


def _reraise(err: Exception) -> bool:
    raise err


def _read_shard(shard: str, failures: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Decoded samples of one shard; unreadable or empty ones go to ``failures``.

    A shard that cannot be opened as a tar raises (the task fails, and is retried by
    the next run).
    """
    raw = wds.WebDataset(
        [shard], shardshuffle=False, empty_check=False, nodesplitter=None, workersplitter=None
    )
    for item in raw:
        key = str(item.get("__key__", "?"))
        try:
            (sample,) = list(decode_samples([item], handler=_reraise))
        except Exception as err:  # noqa: BLE001 - recorded with the key, not fatal
            failures.append({"key": key, "ref": "", "hyp": "", "duration": 0.0,
                             "error": f"cannot read the sample: {err}"})
            continue
        if sample["audio"].size == 0:
            failures.append({"key": sample["key"], "ref": sample["text"], "hyp": "",
                             "duration": 0.0, "error": "empty audio (0 samples)"})
            continue
        yield sample


def _rows(env: WorkerEnv, batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Result rows of one collated batch; a batch that fails is retried one by one."""
    s2t = env.s2t
    keys, texts, speech, lengths = (
        batch["keys"], batch["texts"], batch["speech"], batch["speech_lengths"]
    )
    rate = s2t.sample_rate
    try:
        results: list[Any] = s2t.nbest_padded(speech, lengths)
    except Exception as err:  # noqa: BLE001 - narrowed down to the failing utterances
        if len(keys) == 1:
            results = [err]
        else:
            results = []
            for i, n in enumerate(lengths.tolist()):
                try:
                    results.append(s2t.nbest_padded(speech[i : i + 1, :n], lengths[i : i + 1])[0])
                except Exception as one_err:  # noqa: BLE001 - recorded with the key
                    results.append(one_err)
    rows = []
    for key, ref, n, hyps in zip(keys, texts, lengths.tolist(), results, strict=True):
        row: dict[str, Any] = {"key": key, "ref": ref, "hyp": "", "duration": n / rate}
        if isinstance(hyps, Exception):
            log.warning("%s: decoding failed: %r", key, hyps)
            row["error"] = f"decoding failed: {type(hyps).__name__}: {hyps}"
        elif hyps:
            row["hyp"], row["score"] = hyps[0].text, hyps[0].score
            if s2t.decode.nbest > 1:
                row["nbest"] = [h.to_dict() for h in hyps]
        rows.append(row)
    return rows


def decode_shard(
    env: WorkerEnv, task: ShardTask, progress: ProgressFn | None = None
) -> dict[str, Any]:
    """The runner's forward: decode one shard, write its result file, return figures.

    ``progress`` is called after every batch with (utterances, audio seconds).
    """
    config = env.config
    failures: list[dict[str, Any]] = []
    batcher = DynamicBatcher(
        max_seconds=config.max_seconds, max_batch_size=config.max_batch_size, shuffle=False
    )
    collate = Collate()
    rows: list[dict[str, Any]] = []
    started, start = time.time(), time.perf_counter()
    batches: Iterable[list[dict[str, Any]]] = batcher(_read_shard(task.shard, failures))
    for samples in batches:
        new = _rows(env, collate(samples))
        rows.extend(new)
        if progress is not None:
            progress(len(new), sum(r["duration"] for r in new))
    rows.extend(failures)
    if failures and progress is not None:
        progress(len(failures), 0.0)
    rows.sort(key=lambda r: r["key"])
    write_jsonl(task.output, rows)
    elapsed = time.perf_counter() - start
    audio_seconds = sum(r["duration"] for r in rows)
    failed = sum(1 for r in rows if "error" in r)
    log.info("%s: %d utterances (%d failed), RTF %.3f", task.output, len(rows), failed,
             elapsed / max(audio_seconds, 1e-9))
    return {"shard": task.shard, "utterances": len(rows), "failed": failed,
            "audio_seconds": audio_seconds, "decode_seconds": elapsed,
            "started": started, "finished": time.time(), "rank": env.rank, "pid": os.getpid()}


def safe_decode_shard(
    env: WorkerEnv, task: ShardTask, progress: ProgressFn | None = None
) -> dict[str, Any]:
    """:func:`decode_shard`, with a shard-level error (an unreadable tar) returned, not
    raised: the other shards go on and a rerun retries this one."""
    try:
        return decode_shard(env, task, progress)
    except Exception as err:  # noqa: BLE001 - reported in summary.json, run exits non-zero
        log.exception("%s: shard failed", task.shard)
        return {"shard": task.shard, "error": f"{type(err).__name__}: {err}", "rank": env.rank}


def worker_spans(stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per worker process, from its shards' figures: its rank and pid, shards,
    utterances, seconds spent decoding, and when it started its first shard and finished
    its last, in seconds after the job's first shard started (a late start shows slow
    start-up, unequal ends uneven work). Sorted by first start."""
    if not stats:
        return []
    origin = min(s["started"] for s in stats)
    spans: dict[int, dict[str, Any]] = {}
    for s in stats:
        w = spans.setdefault(s["pid"], {
            "rank": s["rank"], "pid": s["pid"], "shards": 0, "utterances": 0,
            "decode_seconds": 0.0, "first_started": s["started"] - origin, "last_finished": 0.0})
        w["shards"] += 1
        w["utterances"] += s["utterances"]
        w["decode_seconds"] += s["decode_seconds"]
        w["first_started"] = min(w["first_started"], s["started"] - origin)
        w["last_finished"] = max(w["last_finished"], s["finished"] - origin)
    ordered = sorted(spans.values(), key=lambda w: (w["first_started"], w["rank"]))
    return [{k: round(v, 3) if isinstance(v, float) else v for k, v in w.items()} for w in ordered]


def merge_results(config: InferenceConfig) -> dict[str, Any]:
    """Join shard results per test set into ``hyp.jsonl``, ``hyp.txt``, ``ref.txt``.

    Failed utterances are in ``hyp.jsonl`` (with ``error``) and ``ref.txt`` but not in
    ``hyp.txt``, so scoring lists them as references without hypothesis.
    """
    summary: dict[str, Any] = {}
    for task_set in config.test_sets:
        set_dir = Path(config.output_dir) / task_set
        rows = []
        for shard in sorted((set_dir / "shards").glob("*.jsonl")):
            rows.extend(read_jsonl(shard))
        rows.sort(key=lambda r: r["key"])
        duplicates = [k for k, n in Counter(r["key"] for r in rows).items() if n > 1]
        if duplicates:
            raise ValueError(
                f"{set_dir / 'shards'}: keys {duplicates[:5]} appear in more than one shard "
                "result; the test set's shards must hold distinct keys"
            )
        write_jsonl(set_dir / "hyp.jsonl", rows)
        with atomic_open(set_dir / "hyp.txt") as f:
            f.writelines(f"{r['key']} {r['hyp']}\n" for r in rows if "error" not in r)
        with atomic_open(set_dir / "ref.txt") as f:
            f.writelines(f"{r['key']} {r['ref']}\n" for r in rows)
        failed = [{"key": r["key"], "error": r["error"]} for r in rows if "error" in r]
        summary[task_set] = {
            "utterances": len(rows),
            "failed": len(failed),
            "audio_seconds": sum(r["duration"] for r in rows),
            "failures": failed[:MAX_LISTED_FAILURES],
        }
    return summary


def _settings(config: InferenceConfig) -> dict[str, Any]:
    """What the results depend on: the model files (sha256) and the decode block.

    Content hashes, not mtimes: a train stage run again re-exports the same averaged
    weights, and results decoded with identical bytes stay valid.
    """
    model = Path(config.model_dir)
    files = {}
    for name in ("config.yaml", "model.safetensors", "model.pt"):
        if (model / name).is_file():
            files[name] = file_digest(model / name)
    return {"model_dir": str(model.resolve()), "model_files": files,
            "decode": asdict(config.decode)}


def drop_stale_results(config: InferenceConfig) -> list[str]:
    """Remove shard results decoded with another model or other decode settings.

    Each set's ``settings.json`` records what its shard results were decoded with; when
    it differs from this run's, the set's shard results are deleted (and decoded again).
    Returns the names of the sets that were reset.
    """
    settings, reset = _settings(config), []
    for name in config.test_sets:
        set_dir = Path(config.output_dir) / name
        path = set_dir / "settings.json"
        old = json.loads(path.read_text()) if path.is_file() else None
        if old == settings:
            continue
        shards = sorted((set_dir / "shards").glob("*.jsonl"))
        if old is not None and shards:
            changed = sorted(k for k in settings if old.get(k) != settings[k])
            log.warning("%s: %s changed since its %d shard results were decoded: decoding "
                        "them again", set_dir, ", ".join(changed), len(shards))
            for shard in shards:
                shard.unlink()
            reset.append(name)
        write_json(path, settings)
    return reset


def _pending_utterances(todo: list[ShardTask], config: InferenceConfig) -> int | None:
    """Utterances in the pending shards, from each split's ``index.jsonl`` (None if absent)."""
    total = 0
    for name in {t.test_set for t in todo}:
        try:
            counts = Counter(row["shard"] for row in read_index(config.test_sets[name]))
        except (FileNotFoundError, KeyError):
            return None
        total += sum(counts.get(Path(t.shard).name, 0) for t in todo if t.test_set == name)
    return total


def _shard_bytes(task: ShardTask) -> int:
    """The shard's size on disk (0 where it cannot be read: its task reports why)."""
    try:
        return os.path.getsize(task.shard)
    except OSError:
        return 0


def _mpi_comm() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise ImportError(
            "parallel.backend: mpi needs mpi4py: install espnet-infer[mpi] "
            "(gives mpi4py and mpich's mpiexec)"
        ) from err
    return MPI.COMM_WORLD


def run_inference(config: InferenceConfig) -> dict[str, Any]:
    """Decode every pending shard with the configured backend, then merge (rank 0).

    Returns the summary (also written to ``<output_dir>/summary.json``); ``{}`` on
    MPI ranks other than 0. ``failed_shards`` lists shards that raised (no result
    file: a rerun retries them).
    """
    tasks = plan_tasks(config)
    backend = config.parallel.backend
    comm = _mpi_comm() if backend == "mpi" else None
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    todo: list[ShardTask] = []
    if rank == 0:
        drop_stale_results(config)
        # Largest shards first: the last tasks decide when the slowest worker finishes.
        todo = sorted((t for t in tasks if not Path(t.output).exists()), key=_shard_bytes,
                      reverse=True)
    if comm is not None:
        # Rank 0's list for every rank: a rank that looked itself could see shards another
        # rank has just finished, shift its ``todo[rank::size]`` slice and leave one out.
        todo = comm.bcast(todo, root=0)
    progress: Progress | None = None
    if rank == 0:
        log.info("%d shard tasks, %d pending, backend %s (%d ranks)",
                 len(tasks), len(todo), backend, size)
        progress = Progress(_pending_utterances(todo, config) if todo else 0)
    provider = InferenceProvider(config)
    start = time.perf_counter()
    stats: list[dict[str, Any]] = []
    if todo:
        if backend == "processes":
            stats = run_processes(provider, todo, safe_decode_shard,
                                  num_workers=config.parallel.num_workers, progress=progress)
        elif comm is not None:
            stats = run_mpi(provider, todo, safe_decode_shard, comm=comm, progress=progress)
        else:
            stats = run_local(provider, todo, safe_decode_shard, progress=progress)
    if rank != 0:
        return {}
    assert progress is not None
    progress.close()
    elapsed = time.perf_counter() - start
    failed_shards = [s for s in stats if "error" in s]
    done = [s for s in stats if "error" not in s]
    summary = merge_results(config)
    audio = sum(s["audio_seconds"] for s in done)
    span = (max(s["finished"] for s in done) - min(s["started"] for s in done)) if done else 0.0
    result = {
        "sets": summary,
        "decoded_shards": len(done),
        "skipped_shards": len(tasks) - len(todo),
        "failed_shards": [{"shard": s["shard"], "error": s["error"]} for s in failed_shards],
        "failed_utterances": sum(s["failed"] for s in summary.values()),
        "utterances_decoded": sum(s["utterances"] for s in done),
        "wall_seconds": round(elapsed, 2),
        "decode_span_seconds": round(span, 3),
        "worker_spans": worker_spans(done),
        "audio_seconds_decoded": round(audio, 2),
        "rtf": round(elapsed / audio, 4) if audio else None,
        "backend": backend,
        "workers": size if backend == "mpi" else (
            config.parallel.num_workers if backend == "processes" else 1),
        "decode": asdict(config.decode),
        "threads": torch.get_num_threads(),
    }
    write_json(Path(config.output_dir) / "summary.json", result)
    return result
