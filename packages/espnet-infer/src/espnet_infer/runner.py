"""Sharded, resumable inference: the runner, and ``run_inference`` over the backends.

One task is one shard of one test set; its result is one JSONL file written atomically
(``<output_dir>/<set>/shards/<shard>.jsonl``). A rerun decodes only shards without a
complete result, so a killed run resumes where it stopped and no utterance is written
twice; results decoded with another model, another language model (its files' sha256,
``lm_weight``) or other decode settings are decoded again. The model and the language
model are loaded (and their files hashed, the LM's tokenizer checked against the
model's) before any result is touched, so a wrong ``model_dir`` or ``decode.lm`` stops
the run with every finished result still there.
:func:`decode_shard` is the runner's ``forward``: it consumes the worker's objects
(:class:`~espnet_infer.provider.WorkerEnv`, built once per worker by the provider)
for one shard, and runs unchanged in every backend (:mod:`espnet_infer.backends`).
An utterance that cannot be read or decoded (unreadable, empty or non-finite audio, a
decoding error, a non-finite score) is written with its ``error`` instead of a
hypothesis; the rest of its shard is decoded. When all tasks are done, one
process (rank 0 under MPI) merges the shard files into ``hyp.jsonl``, ``hyp.txt`` and
``ref.txt`` per set and writes ``summary.json``.

Every utterance that a split's ``index.jsonl`` lists gets a row: one missing from its
shard's tar (a tar cut short at a member boundary reads cleanly, just without its last
utterances), or whose shard has no result, is a row with ``missing: true`` and its
``error``; ``summary.json`` counts them (``missing``, ``missing_keys``), and scoring
refuses such a set by default.

One run at a time per ``output_dir``: the run (rank 0 under MPI) holds an exclusive
``flock`` on ``<output_dir>/.espnet-infer.lock`` from before it looks at old results
until ``summary.json`` is written; a second run stops at once with
:class:`OutputLocked`, naming the process that holds it. The kernel drops the lock
when its process dies, so a killed run leaves no lock behind. (Per-settings result
folders were the other way: they would keep two runs' shard results apart, but not
their merged ``hyp.txt``, ``settings.json`` and ``summary.json``, which are per
``output_dir``.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from espnet_data import Collate, DynamicBatcher, shard_paths
from espnet_data.atomic import atomic_open, read_jsonl, write_json, write_jsonl
from espnet_data.dataset import decode_samples
from espnet_data.download import file_digest

from .backends import run_local, run_mpi, run_processes, tasks_from_rank0
from .config import InferenceConfig
from .lm import LoadedLM, check_lm_tokenizer, lm_files
from .loading import LoadedModel
from .lock import OutputLocked, output_lock
from .progress import Progress, ProgressFn
from .provider import InferenceProvider, WorkerEnv

__all__ = [
    "OutputLocked",
    "ShardTask",
    "decode_shard",
    "merge_results",
    "output_lock",
    "plan_tasks",
    "run_inference",
]

log = logging.getLogger(__name__)

#: failures listed by key in summary.json (all of them are in hyp.jsonl)
MAX_LISTED_FAILURES = 50

@dataclass(frozen=True)
class ShardTask:
    """One shard to decode.

    Attributes:
        test_set: the set's name (a key of ``test_sets``).
        shard: the shard's tar file.
        output: its result file.
        expected: ``(key, reference text)`` of every utterance that the split's
            ``index.jsonl`` puts in this shard; None when the split has no index (then
            nothing can be checked).
    """

    test_set: str
    shard: str
    output: str
    expected: tuple[tuple[str, str], ...] | None = None


def _index_by_shard(split_dir: str) -> dict[str, list[tuple[str, str]]] | None:
    """``shard file name -> [(key, text)]`` from the split's ``index.jsonl`` (None if
    there is none)."""
    path = Path(split_dir) / "index.jsonl"
    if not path.is_file():
        return None
    by_shard: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for i, row in enumerate(read_jsonl(path), 1):
        if "key" not in row or "shard" not in row:
            raise ValueError(
                f"{path}:{i}: an index row needs 'key' and 'shard', got {sorted(row)}; "
                "recreate the split with the create_dataset stage"
            )
        by_shard[row["shard"]].append((str(row["key"]), str(row.get("text", ""))))
    return by_shard


def plan_tasks(config: InferenceConfig) -> list[ShardTask]:
    """Every (test set, shard) pair, in a stable order, with the keys the index lists."""
    tasks = []
    for name, split_dir in config.test_sets.items():
        out = Path(config.output_dir) / name / "shards"
        index = _index_by_shard(split_dir)
        for shard in shard_paths(split_dir):
            expected = None if index is None else tuple(index.get(Path(shard).name, ()))
            tasks.append(
                ShardTask(name, shard, str(out / (Path(shard).stem + ".jsonl")), expected)
            )
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
        if not np.isfinite(sample["audio"]).all():
            failures.append({"key": sample["key"], "ref": sample["text"], "hyp": "",
                             "duration": 0.0, "error": "non-finite audio (NaN or Inf samples) "
                             f"in {shard}: the stored audio is corrupt; recreate the split"})
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
        elif hyps and not math.isfinite(hyps[0].score):
            log.warning("%s: decoding gave the score %s", key, hyps[0].score)
            row["error"] = (f"decoding gave a non-finite score ({hyps[0].score}): NaN or Inf "
                            "in the model's output; no transcript kept")
        elif hyps:
            row["hyp"], row["score"] = hyps[0].text, hyps[0].score
            if s2t.decode.nbest > 1:
                row["nbest"] = [h.to_dict() for h in hyps]
        rows.append(row)
    return rows


def _check_against_index(task: ShardTask, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for the keys ``index.jsonl`` puts in this shard that the tar did not give.

    Also gives a sample that could not be read its reference text from the index, so
    that scoring counts its words as missed rather than scoring an empty reference.
    """
    if task.expected is None:
        return []
    refs = dict(task.expected)
    for row in rows:
        if not row["ref"] and row["key"] in refs:
            row["ref"] = refs[row["key"]]
    seen = {r["key"] for r in rows}
    missing = [
        {"key": key, "ref": ref, "hyp": "", "duration": 0.0, "missing": True,
         "error": f"missing from {task.shard}: index.jsonl lists it, the tar has no member "
                  "for it (the tar was cut short or rewritten); recreate the split with "
                  "create_dataset (the next run decodes this shard again)"}
        for key, ref in task.expected if key not in seen
    ]
    if missing:
        log.error("%s: %d of the %d utterances index.jsonl lists are not in the tar, e.g. %s",
                  task.shard, len(missing), len(task.expected), missing[0]["key"])
    extra = sorted(seen - {key for key, _ in task.expected})
    if extra:
        log.warning("%s: %d key(s) not in index.jsonl (e.g. %s): is the index this split's?",
                    task.shard, len(extra), extra[0])
    return missing


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
    missing = _check_against_index(task, rows)
    rows.extend(missing)
    if (failures or missing) and progress is not None:
        progress(len(failures) + len(missing), 0.0)
    rows.sort(key=lambda r: r["key"])
    write_jsonl(task.output, rows)
    elapsed = time.perf_counter() - start
    audio_seconds = sum(r["duration"] for r in rows)
    failed = sum(1 for r in rows if "error" in r)
    log.info("%s: %d utterances (%d failed), RTF %.3f", task.output, len(rows), failed,
             elapsed / max(audio_seconds, 1e-9))
    return {"shard": task.shard, "utterances": len(rows), "failed": failed,
            "missing": len(missing), "audio_seconds": audio_seconds, "decode_seconds": elapsed,
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


def _unseen_rows(
    split_dir: Path, shards_dir: Path, seen: set[str]
) -> tuple[list[dict[str, Any]], int | None]:
    """Rows for the keys of ``split_dir``'s index that no shard result has, and the
    number of keys the index lists (None without an index)."""
    index = _index_by_shard(str(split_dir))
    if index is None:
        log.warning("%s has no index.jsonl: cannot check that every utterance was decoded",
                    split_dir)
        return [], None
    rows = []
    for shard, entries in index.items():
        if (split_dir / shard).is_file():
            why = (f"not decoded: {shard} has no result in {shards_dir} (its task failed: "
                   "see failed_shards in summary.json; run espnet-infer again to retry it)")
        else:
            why = (f"not decoded: {split_dir / shard}, which index.jsonl lists, does not "
                   "exist; recreate the split with create_dataset")
        rows += [{"key": key, "ref": ref, "hyp": "", "duration": 0.0, "missing": True,
                  "error": why} for key, ref in entries if key not in seen]
    return rows, sum(len(entries) for entries in index.values())


def merge_results(config: InferenceConfig) -> dict[str, Any]:
    """Join shard results per test set into ``hyp.jsonl``, ``hyp.txt``, ``ref.txt``.

    Failed utterances are in ``hyp.jsonl`` (with ``error``) and ``ref.txt`` but not in
    ``hyp.txt``, so scoring lists them as references without hypothesis. So are the
    keys of the split's ``index.jsonl`` that no shard result has (``missing: true``):
    their shard failed, or its file is gone.
    """
    summary: dict[str, Any] = {}
    for task_set, split_dir in config.test_sets.items():
        set_dir = Path(config.output_dir) / task_set
        rows = []
        for shard in sorted((set_dir / "shards").glob("*.jsonl")):
            rows.extend(read_jsonl(shard))
        duplicates = [k for k, n in Counter(r["key"] for r in rows).items() if n > 1]
        if duplicates:
            raise ValueError(
                f"{set_dir / 'shards'}: keys {duplicates[:5]} appear in more than one shard "
                "result; the test set's shards must hold distinct keys"
            )
        unseen, expected = _unseen_rows(Path(split_dir), set_dir / "shards",
                                        {r["key"] for r in rows})
        rows.extend(unseen)
        rows.sort(key=lambda r: r["key"])
        write_jsonl(set_dir / "hyp.jsonl", rows)
        with atomic_open(set_dir / "hyp.txt") as f:
            f.writelines(f"{r['key']} {r['hyp']}\n" for r in rows if "error" not in r)
        with atomic_open(set_dir / "ref.txt") as f:
            f.writelines(f"{r['key']} {r['ref']}\n" for r in rows)
        failed = [{"key": r["key"], "error": r["error"]} for r in rows if "error" in r]
        missing = [r["key"] for r in rows if r.get("missing")]
        summary[task_set] = {
            "utterances": len(rows),
            "expected": expected,
            "failed": len(failed),
            "missing": len(missing),
            "missing_keys": missing[:MAX_LISTED_FAILURES],
            "audio_seconds": sum(r["duration"] for r in rows),
            "failures": failed[:MAX_LISTED_FAILURES],
        }
        if missing:
            log.error("%s: %d of %d utterances have no transcript because they were not "
                      "decoded (e.g. %s): see hyp.jsonl's error", set_dir, len(missing),
                      len(rows), ", ".join(missing[:5]))
    return summary


def _settings(
    config: InferenceConfig, model: LoadedModel, lm: LoadedLM | None = None
) -> dict[str, Any]:
    """What the results depend on: the loaded model's files (sha256), the decode block
    and, when an LM is fused, the LM's folder and files (sha256).

    Content hashes, not mtimes: a train stage run again re-exports the same averaged
    weights, and results decoded with identical bytes stay valid. Taken from the models
    as loaded, so a folder that does not load never gets this far. Without a fused LM
    (no ``decode.lm``, or ``lm_weight: 0``) ``lm`` and ``lm_weight`` are left out: they
    change nothing, and results of earlier versions stay valid.
    """
    folder = Path(model.path)
    files = {}
    for name in ("config.yaml", "model.safetensors", "model.pt"):
        if (folder / name).is_file():
            files[name] = file_digest(folder / name)
    for path in model.files:  # an ESPnet2 pack: its configs, checkpoint, tokenizer files
        files[Path(os.path.relpath(path, folder)).as_posix()] = file_digest(path)
    decode = asdict(config.decode)
    if decode.get("streaming") is None:  # offline results of earlier versions stay valid
        decode.pop("streaming", None)
    settings: dict[str, Any] = {"model_dir": str(folder.resolve()), "model_files": files,
                                "decode": decode}
    if lm is None:
        del decode["lm"], decode["lm_weight"]
    else:
        decode["lm"] = str(lm.path.resolve())
        settings["lm_files"] = {name: file_digest(path) for name, path in lm_files(lm).items()}
    return settings


def drop_stale_results(config: InferenceConfig, settings: dict[str, Any]) -> list[str]:
    """Remove shard results decoded with another model or other decode settings.

    Each set's ``settings.json`` records what its shard results were decoded with; when
    it differs from ``settings`` (this run's, from :func:`_settings`), the set's shard
    results are deleted (and decoded again). Call it holding :func:`output_lock`, after
    the model has loaded. Returns the names of the sets that were reset.
    """
    reset = []
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


def _needs_decoding(task: ShardTask) -> bool:
    """No result yet, or one that lists utterances missing from the tar (the shard may
    have been repaired since)."""
    path = Path(task.output)
    if not path.exists():
        return True
    if task.expected is None:
        return False
    return any(row.get("missing") for row in read_jsonl(path))


def _pending_utterances(todo: list[ShardTask]) -> int | None:
    """Utterances in the pending shards, from each split's ``index.jsonl`` (None if absent)."""
    if any(t.expected is None for t in todo):
        return None
    return sum(len(t.expected or ()) for t in todo)


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


def _prepare(
    config: InferenceConfig, provider: InferenceProvider, tasks: list[ShardTask]
) -> tuple[LoadedModel, LoadedLM | None, list[ShardTask]]:
    """Rank 0, holding the lock: load the model and the LM, reset stale results, list
    pending tasks.

    The models first: a wrong ``model_dir`` or ``decode.lm`` (one that does not load,
    an LM with other tokens) stops the run here, before any result is touched.
    """
    loaded = provider.load_model("cpu")
    lm = provider.load_lm("cpu")
    if lm is not None:
        check_lm_tokenizer(lm, loaded)
    drop_stale_results(config, _settings(config, loaded, lm))
    # Largest shards first: the last tasks decide when the slowest worker finishes.
    todo = sorted((t for t in tasks if _needs_decoding(t)), key=_shard_bytes, reverse=True)
    return loaded, lm, todo


def run_inference(config: InferenceConfig) -> dict[str, Any]:
    """Decode every pending shard with the configured backend, then merge (rank 0).

    Returns the summary (also written to ``<output_dir>/summary.json``); ``{}`` on
    MPI ranks other than 0. ``failed_shards`` lists shards that raised (no result
    file: a rerun retries them); ``missing_utterances`` counts utterances that
    ``index.jsonl`` lists but that have no transcript because they were not decoded
    (missing from their shard, or their shard failed).

    Raises:
        OutputLocked: another run holds ``output_dir`` (nothing was read or changed).
    """
    tasks = plan_tasks(config)
    backend = config.parallel.backend
    comm = _mpi_comm() if backend == "mpi" else None
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    provider = InferenceProvider(config)
    with contextlib.ExitStack() as held:
        loaded: LoadedModel | None = None
        lm: LoadedLM | None = None

        def prepare() -> list[ShardTask]:
            nonlocal loaded, lm
            held.enter_context(output_lock(config.output_dir))
            loaded, lm, todo = _prepare(config, provider, tasks)
            return todo

        todo = tasks_from_rank0(comm, rank, prepare)
        if backend == "processes":
            loaded = lm = None  # the pool's workers load their own: free this copy first
        return _decode_and_merge(config, provider, tasks, todo, loaded, lm, comm, rank, size)


def _decode_and_merge(
    config: InferenceConfig, provider: InferenceProvider, tasks: list[ShardTask],
    todo: list[ShardTask], loaded: LoadedModel | None, lm: LoadedLM | None, comm: Any,
    rank: int, size: int,
) -> dict[str, Any]:
    """The pending shards on the backend, then (rank 0) the merge and ``summary.json``."""
    backend = config.parallel.backend
    progress: Progress | None = None
    if rank == 0:
        log.info("%d shard tasks, %d pending, backend %s (%d ranks)",
                 len(tasks), len(todo), backend, size)
        progress = Progress(_pending_utterances(todo) if todo else 0)
    start = time.perf_counter()
    stats: list[dict[str, Any]] = []
    if todo:
        if backend == "processes":
            stats = run_processes(provider, todo, safe_decode_shard,
                                  num_workers=config.parallel.num_workers, progress=progress)
        elif comm is not None:
            stats = run_mpi(provider, todo, safe_decode_shard, comm=comm, progress=progress,
                            loaded=loaded, lm=lm)
        else:
            stats = run_local(provider, todo, safe_decode_shard, progress=progress,
                              loaded=loaded, lm=lm)
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
        "missing_utterances": sum(s["missing"] for s in summary.values()),
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
