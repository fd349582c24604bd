"""Batched, sharded, resumable speech synthesis of test sets (the TTS ``infer`` stage).

The same runner design as decoding (:mod:`espnet_infer.runner`): one task per shard of
a test split; the provider builds a :class:`~espnet_infer.Text2Speech` once per worker;
the backends of :mod:`espnet_infer.backends` (``local``, ``processes``, ``mpi``) run
:func:`synthesize_shard` unchanged. A task reads the texts its shard holds from the
split's ``index.jsonl`` (no audio is read), synthesises them in batches of
``batch_size`` sentences, writes each waveform atomically and then the shard's result
file, so a killed run resumes at the first shard without one::

    <output_dir>/<set>/wav/<key>.wav            16-bit PCM at the model's sample rate
    <output_dir>/<set>/shards/<shard>.jsonl     key, text, wav, seconds, synth_seconds
    <output_dir>/<set>/index.jsonl              every utterance (failures with error)
    <output_dir>/<set>/settings.json            model and vocoder files (sha256), options
    <output_dir>/summary.json                   counts, failures, real-time factor

Results made with another model, vocoder or settings are made again. One run at a time
per ``output_dir`` (its ``flock``, as decoding). A text the front-end refuses is a row
with its ``error``; the rest of its shard is synthesised.

Usage::

    python - <<'PY'
    from espnet_infer.synthesis import SynthesisConfig, run_synthesis
    print(run_synthesis(SynthesisConfig(model_dir="exp/tts/model",
                                        test_sets={"test": "data/test"},
                                        output_dir="exp/infer")))
    PY
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from espnet_data.atomic import read_jsonl, write_json, write_jsonl
from espnet_data.download import file_digest

from .backends import run_local, run_mpi, run_processes, tasks_from_rank0
from .config import ParallelConfig
from .lock import output_lock
from .progress import Progress, ProgressFn
from .provider import InferenceProvider
from .runner import _mpi_comm, drop_stale_results, worker_spans
from .text2speech import LoadedTTS, Text2Speech, load_tts_folder, load_vocoder

__all__ = ["SynthesisConfig", "SynthesisProvider", "SynthesisTask", "run_synthesis", "synthesize_shard"]

log = logging.getLogger(__name__)


@dataclass
class SynthesisConfig:
    """``inference.yaml`` of a TTS recipe (the ``infer`` stage).

    Args:
        model_dir: the TTS model folder (``espnet-train`` ``task: tts``) or its pack.
        test_sets: name -> split folder (its ``index.jsonl`` gives keys and texts).
        output_dir: results go to ``<output_dir>/<name>/`` (module docstring).
        vocoder: a vocoder folder (``task: vocoder``); null: Griffin-Lim.
        griffin_lim_iters: Griffin-Lim iterations (``vocoder: null``).
        batch_size: sentences through the acoustic model at once.
        max_chunk_chars: longer sentences are cut at punctuation (``Text2Speech``).
        device: ``cpu`` or ``cuda`` (under MPI, ``cuda`` picks the rank's GPU).
        parallel: ``backend`` local / processes / mpi, ``num_workers``, threads.
        keep_host_memory: as decoding's (glibc allocator setting per worker).
        verify: check a pack's files against its ``meta.yaml`` before loading.
    """

    model_dir: str
    test_sets: dict[str, str]
    output_dir: str
    vocoder: str | None = None
    griffin_lim_iters: int = 32
    batch_size: int = 8
    max_chunk_chars: int = 200
    device: str = "cpu"
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    keep_host_memory: bool = False
    verify: bool = True
    trust_remote_code: bool = False  # read by the shared provider; TTS folders name no code


@dataclass(frozen=True)
class SynthesisTask:
    """One shard's sentences: ``rows`` are ``(key, text)`` from the split's index."""

    test_set: str
    shard: str
    output: str
    wav_dir: str
    rows: tuple[tuple[str, str], ...]


@dataclass
class SynthesisEnv:
    """What one worker synthesises with."""

    tts: Text2Speech
    config: SynthesisConfig
    rank: int = 0


class SynthesisProvider(InferenceProvider):
    """Builds a :class:`SynthesisEnv` once per worker (picklable: holds the config)."""

    config: SynthesisConfig  # type: ignore[assignment]

    def load_model(self, device: str = "cpu") -> LoadedTTS:  # type: ignore[override]
        return load_tts_folder(self.config.model_dir, device, verify=self.config.verify)

    def load_lm(self, device: str = "cpu") -> None:  # type: ignore[override]
        return None

    def build(self, rank: int = 0, workers_on_node: int = 1, *, loaded: Any = None,  # type: ignore[override]
              lm: Any = None) -> SynthesisEnv:
        threads = self.threads(workers_on_node)
        if threads:
            torch.set_num_threads(threads)
        device = self.device_for_rank(rank)
        if loaded is None:
            loaded = self.load_model(device)
        cfg = self.config
        vocoder = load_vocoder(cfg.vocoder, loaded, device, verify=cfg.verify,
                               griffin_lim_iters=cfg.griffin_lim_iters)
        tts = Text2Speech(loaded, vocoder, device=device, max_chunk_chars=cfg.max_chunk_chars)
        return SynthesisEnv(tts=tts, config=cfg, rank=rank)


def plan_tasks(config: SynthesisConfig) -> list[SynthesisTask]:
    """One task per shard of every test set, from each split's ``index.jsonl``."""
    tasks = []
    for name, split_dir in config.test_sets.items():
        index = Path(split_dir) / "index.jsonl"
        if not index.is_file():
            raise FileNotFoundError(f"test_sets.{name}: {index} is missing; write the split with "
                                    "the create_dataset stage")
        by_shard: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for i, row in enumerate(read_jsonl(index), 1):
            if "key" not in row or "text" not in row:
                raise ValueError(f"{index}:{i}: an index row needs 'key' and 'text', got {sorted(row)}")
            by_shard[str(row.get("shard", "all"))].append((str(row["key"]), str(row["text"])))
        out = Path(config.output_dir) / name
        for shard in sorted(by_shard):
            tasks.append(SynthesisTask(name, shard, str(out / "shards" / f"{Path(shard).stem}.jsonl"),
                                       str(out / "wav"), tuple(by_shard[shard])))
    return tasks


def write_wav(path: Path, wav: np.ndarray, rate: int) -> None:
    """16-bit PCM WAV, written to a temporary name then renamed (never half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, np.clip(wav, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def _synthesize(tts: Text2Speech, rows: list[tuple[str, str]]) -> list[Any]:
    """Outputs of a batch; a batch that fails is retried one sentence at a time."""
    try:
        return list(tts.synthesize_batch([t for _, t in rows]))
    except Exception:  # noqa: BLE001 - narrowed down to the failing sentences
        if len(rows) == 1:
            raise
    out: list[Any] = []
    for _, text in rows:
        try:
            out.append(tts.synthesize_batch([text])[0])
        except Exception as err:  # noqa: BLE001 - recorded with the key
            out.append(err)
    return out


def synthesize_shard(env: SynthesisEnv, task: SynthesisTask, progress: ProgressFn | None = None) -> dict[str, Any]:
    """The runner's forward: synthesise one shard's sentences, write wavs and the result file."""
    tts, size = env.tts, max(1, env.config.batch_size)
    wav_dir = Path(task.wav_dir)
    wav_dir.mkdir(parents=True, exist_ok=True)
    ordered = sorted(task.rows, key=lambda r: len(r[1]))  # similar lengths batch together
    rows: list[dict[str, Any]] = []
    started, start = time.time(), time.perf_counter()
    for b in range(0, len(ordered), size):
        batch = ordered[b : b + size]
        t0 = time.perf_counter()
        try:
            outs = _synthesize(tts, batch)
        except Exception as err:  # noqa: BLE001 - one sentence that failed on its own
            outs = [err]
        spent = (time.perf_counter() - t0) / max(1, len(batch))
        made = 0.0
        for (key, text), out in zip(batch, outs, strict=True):
            row: dict[str, Any] = {"key": key, "text": text}
            if isinstance(out, Exception):
                log.warning("%s: synthesis failed: %s", key, out)
                row["error"] = f"{type(out).__name__}: {out}"
            else:
                wav = out["wav"].numpy()
                path = wav_dir / f"{key}.wav"
                write_wav(path, wav, tts.fs)
                seconds = len(wav) / tts.fs
                made += seconds
                row.update(wav=str(Path("wav") / path.name), seconds=round(seconds, 4),
                           synth_seconds=round(spent, 4), frames=int(out["feat_gen"].shape[0]))
            rows.append(row)
        if progress is not None:
            progress(len(batch), made)
    rows.sort(key=lambda r: r["key"])
    write_jsonl(task.output, rows)
    elapsed = time.perf_counter() - start
    audio = sum(r.get("seconds", 0.0) for r in rows)
    failed = sum(1 for r in rows if "error" in r)
    log.info("%s: %d sentences (%d failed), RTF %.3f", task.output, len(rows), failed,
             elapsed / max(audio, 1e-9))
    return {"shard": task.shard, "utterances": len(rows), "failed": failed, "audio_seconds": audio,
            "decode_seconds": elapsed, "started": started, "finished": time.time(),
            "rank": env.rank, "pid": os.getpid()}


def _safe(env: SynthesisEnv, task: SynthesisTask, progress: ProgressFn | None = None) -> dict[str, Any]:
    try:
        return synthesize_shard(env, task, progress)
    except Exception as err:  # noqa: BLE001 - reported in summary.json; a rerun retries it
        log.exception("%s: shard failed", task.shard)
        return {"shard": task.shard, "error": f"{type(err).__name__}: {err}", "rank": env.rank}


def _settings(config: SynthesisConfig, loaded: LoadedTTS) -> dict[str, Any]:
    """What the audio depends on: the model's and vocoder's files (sha256) and options."""
    files = {str(p.relative_to(loaded.path)): file_digest(p) for p in loaded.files}
    settings: dict[str, Any] = {"model_dir": str(Path(loaded.path).resolve()), "model_files": files,
                                "griffin_lim_iters": config.griffin_lim_iters,
                                "max_chunk_chars": config.max_chunk_chars, "vocoder": None}
    if config.vocoder is not None:
        folder = Path(config.vocoder)
        settings["vocoder"] = {n: file_digest(folder / n) for n in ("config.yaml", "model.pt", "model.safetensors")
                               if (folder / n).is_file()}
        del settings["griffin_lim_iters"]
    return settings


def merge_results(config: SynthesisConfig, tasks: list[SynthesisTask]) -> dict[str, Any]:
    """Each set's shard results into ``index.jsonl``; a sentence without one gets an error row."""
    summary: dict[str, Any] = {}
    for name in config.test_sets:
        set_dir = Path(config.output_dir) / name
        rows: list[dict[str, Any]] = []
        for task in (t for t in tasks if t.test_set == name):
            if Path(task.output).is_file():
                rows += read_jsonl(task.output)
            else:
                rows += [{"key": k, "text": t, "missing": True,
                          "error": f"not synthesised: shard {task.shard} failed (see summary.json); "
                                   "run again to retry it"} for k, t in task.rows]
        rows.sort(key=lambda r: r["key"])
        write_jsonl(set_dir / "index.jsonl", rows)
        failed = [{"key": r["key"], "error": r["error"]} for r in rows if "error" in r]
        audio = sum(r.get("seconds", 0.0) for r in rows)
        synth = sum(r.get("synth_seconds", 0.0) for r in rows)
        summary[name] = {"utterances": len(rows), "failed": len(failed), "failures": failed[:50],
                         "audio_seconds": round(audio, 3), "synth_seconds": round(synth, 3),
                         "rtf": round(synth / audio, 4) if audio else None}
    return summary


def run_synthesis(config: SynthesisConfig) -> dict[str, Any]:
    """Synthesise every pending shard with the configured backend, then merge (rank 0).

    Returns the summary (also ``<output_dir>/summary.json``); ``{}`` on MPI ranks > 0.
    """
    tasks = plan_tasks(config)
    backend = config.parallel.backend
    comm = _mpi_comm() if backend == "mpi" else None
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    provider = SynthesisProvider(config)  # type: ignore[arg-type]
    with contextlib.ExitStack() as held:
        loaded: LoadedTTS | None = None

        def prepare() -> list[SynthesisTask]:
            """Rank 0, holding the lock: load the model, reset stale results, list pending tasks."""
            nonlocal loaded
            held.enter_context(output_lock(config.output_dir))
            loaded = provider.load_model("cpu")
            drop_stale_results(config, _settings(config, loaded))  # type: ignore[arg-type]
            todo = [t for t in tasks if not Path(t.output).is_file()]
            todo.sort(key=lambda t: len(t.rows), reverse=True)
            return todo

        todo = tasks_from_rank0(comm, rank, prepare)
        progress = Progress(sum(len(t.rows) for t in todo)) if rank == 0 else None
        start = time.perf_counter()
        stats: list[dict[str, Any]] = []
        if todo:
            if backend == "processes":
                stats = run_processes(provider, todo, _safe, num_workers=config.parallel.num_workers,
                                      progress=progress)
            elif comm is not None:
                stats = run_mpi(provider, todo, _safe, comm=comm, progress=progress, loaded=loaded)
            else:
                stats = run_local(provider, todo, _safe, progress=progress, loaded=loaded)
        if rank != 0:
            return {}
        assert progress is not None
        progress.close()
        done = [s for s in stats if "error" not in s]
        result = {
            "sets": merge_results(config, tasks),
            "synthesised_shards": len(done),
            "skipped_shards": len(tasks) - len(todo),
            "failed_shards": [{"shard": s["shard"], "error": s["error"]} for s in stats if "error" in s],
            "wall_seconds": round(time.perf_counter() - start, 2),
            "worker_spans": worker_spans(done),
            "backend": backend,
            "vocoder": config.vocoder or f"griffin_lim (n_iter={config.griffin_lim_iters})",
            "options": {k: v for k, v in asdict(config).items() if k not in ("test_sets", "parallel")},
        }
        write_json(Path(config.output_dir) / "summary.json", result)
        return result
