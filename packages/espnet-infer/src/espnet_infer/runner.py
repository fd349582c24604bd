"""Sharded, resumable inference over local, process-pool and MPI backends.

One task is one shard of one test set; its result is one JSONL file written atomically
(``<output_dir>/<set>/shards/<shard>.jsonl``). A rerun decodes only shards without a
result, so a killed run resumes where it stopped and no utterance is written twice.
The same ``decode_shard`` runs in every backend; only the task split differs. When all
tasks are done, one process (rank 0 under MPI) merges the shard files into
``hyp.jsonl``, ``hyp.txt`` and ``ref.txt`` per set and writes ``summary.json``.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from espnet_data import Collate, DynamicBatcher, ShardDataset, map_stage, shard_paths
from espnet_data.atomic import atomic_open, read_jsonl, write_json, write_jsonl

from .config import InferenceConfig
from .speech2text import Speech2Text

log = logging.getLogger(__name__)


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


def decode_shard(s2t: Speech2Text, task: ShardTask, config: InferenceConfig) -> dict[str, Any]:
    """Decode one shard and write its result file; return timing figures."""
    batcher = DynamicBatcher(
        max_seconds=config.max_seconds, max_batch_size=config.max_batch_size, shuffle=False
    )
    dataset = ShardDataset([task.shard], stages=[batcher, map_stage(Collate())])
    rows, audio_seconds, start = [], 0.0, time.perf_counter()
    for batch in dataset:
        hyps = s2t.transcribe_batch(batch["speech"], batch["speech_lengths"])
        lengths = batch["speech_lengths"].tolist()
        for key, ref, hyp, n in zip(batch["keys"], batch["texts"], hyps, lengths, strict=True):
            rows.append({"key": key, "ref": ref, "hyp": hyp, "duration": n / s2t.sample_rate})
            audio_seconds += n / s2t.sample_rate
    rows.sort(key=lambda r: r["key"])
    write_jsonl(task.output, rows)
    elapsed = time.perf_counter() - start
    log.info("%s: %d utterances, RTF %.3f", task.output, len(rows), elapsed / max(audio_seconds, 1e-9))
    return {"utterances": len(rows), "audio_seconds": audio_seconds, "decode_seconds": elapsed}


def _device_for_rank(device: str, rank: int) -> str:
    if device == "cuda" and torch.cuda.is_available():
        return f"cuda:{rank % torch.cuda.device_count()}"
    return device


class _Worker:
    """Per-process provider: loads the model once, then decodes any number of shards."""

    s2t: Speech2Text | None = None
    config: InferenceConfig | None = None

    @classmethod
    def init(cls, config: InferenceConfig, rank: int = 0) -> None:
        threads = config.parallel.threads_per_worker
        if threads:
            torch.set_num_threads(threads)
        cls.config = config
        cls.s2t = Speech2Text(
            config.model_dir, decode=config.decode, device=_device_for_rank(config.device, rank)
        )

    @classmethod
    def run(cls, task: ShardTask) -> dict[str, Any]:
        assert cls.s2t is not None and cls.config is not None
        return decode_shard(cls.s2t, task, cls.config)


def _run_processes(config: InferenceConfig, todo: list[ShardTask]) -> list[dict[str, Any]]:
    workers = max(1, min(config.parallel.num_workers, len(todo)))
    ctx = torch.multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_Worker.init,
                             initargs=(config,)) as pool:
        return list(pool.map(_Worker.run, todo))


def merge_results(config: InferenceConfig) -> dict[str, Any]:
    """Join shard results per test set into ``hyp.jsonl``, ``hyp.txt``, ``ref.txt``."""
    summary: dict[str, Any] = {}
    for task_set in config.test_sets:
        set_dir = Path(config.output_dir) / task_set
        rows = []
        for shard in sorted((set_dir / "shards").glob("*.jsonl")):
            rows.extend(read_jsonl(shard))
        rows.sort(key=lambda r: r["key"])
        write_jsonl(set_dir / "hyp.jsonl", rows)
        for name, field in (("hyp.txt", "hyp"), ("ref.txt", "ref")):
            with atomic_open(set_dir / name) as f:
                f.writelines(f"{r['key']} {r[field]}\n" for r in rows)
        summary[task_set] = {"utterances": len(rows), "audio_seconds": sum(r["duration"] for r in rows)}
    return summary


def run_inference(config: InferenceConfig) -> dict[str, Any]:
    """Decode every pending shard with the configured backend, then merge (rank 0)."""
    tasks = plan_tasks(config)
    backend = config.parallel.backend
    rank, size, comm = 0, 1, None
    if backend == "mpi":
        try:
            from mpi4py import MPI
        except ImportError as err:
            raise ImportError(
                "parallel.backend: mpi needs mpi4py: install espnet-infer[mpi] "
                "(gives mpi4py and mpich's mpiexec)"
            ) from err
        comm = MPI.COMM_WORLD
        rank, size = comm.Get_rank(), comm.Get_size()
    todo = [t for t in tasks if not Path(t.output).exists()]
    if comm is not None:
        # One list for every rank: a rank that looks later could see shards another rank
        # has just finished, shift its ``todo[rank::size]`` slice and leave a shard out.
        todo = comm.bcast(todo, root=0)
    if rank == 0:
        log.info("%d shard tasks, %d pending, backend %s (%d ranks)", len(tasks), len(todo), backend, size)
    start = time.perf_counter()
    stats: list[dict[str, Any]] = []
    if todo:
        if backend == "processes" and config.parallel.num_workers > 1:
            stats = _run_processes(config, todo)
        else:
            mine = todo[rank::size]
            if mine:
                _Worker.init(config, rank)
                stats = [_Worker.run(t) for t in mine]
    if comm is not None:
        gathered = comm.gather(stats, root=0)
        stats = [s for part in gathered or [] for s in part]
        if rank != 0:
            return {}
    elapsed = time.perf_counter() - start
    summary = merge_results(config)
    audio = sum(s["audio_seconds"] for s in stats)
    result = {
        "sets": summary,
        "decoded_shards": len(stats),
        "skipped_shards": len(tasks) - len(todo),
        "wall_seconds": round(elapsed, 2),
        "audio_seconds_decoded": round(audio, 2),
        "rtf": round(elapsed / audio, 4) if audio else None,
        "backend": backend,
        "workers": size if backend == "mpi" else config.parallel.num_workers,
        "decode": config.decode.__dict__,
    }
    write_json(Path(config.output_dir) / "summary.json", result)
    return result
