"""Inference scaling: the same shards decoded by 1 and 2 MPI ranks, a process pool and
one local process; throughput and start-up overhead of each backend.

Usage::

    just bench mpi                                                  # 192 utterances, 16 shards
    uv run --locked python benchmarks/run.py mpi --quick          # 16 utterances, 4 shards

A randomly initialised model from the ``model:`` block of
``egs/mini/asr/conf/training.yaml`` (as in ``decode.py``) decodes the test split of
the synthetic mini corpus with beam search (beam 4, ctc_weight 0.3). Every run is a
fresh ``espnet-infer`` process tree (``mpiexec -n N`` for MPI) with one torch thread
per worker, writing into its own output folder. From each run's ``summary.json``:

- ``decode span``: first shard started to last shard finished, over all workers;
  throughput = utterances / decode span.
- each backend runs ``ROUNDS`` (3) times, the four in turn, and the median counts:
  the same run gave 1 rank 20-30 utterances/s within minutes on this machine.
  ``speedup_2_by_round`` pairs each round's 2-rank run with the 1-rank run before it.
- ``start-up``: process wall time minus the decode span (interpreter and imports,
  ``mpiexec``, the pool's spawn, model loading, merging).
- per run, ``worker_spans`` from ``summary.json``, with ``start_skew_s`` (the last
  worker's first shard started that long after the first worker's) and ``end_spread_s``
  (the first worker to finish idled that long before the last one finished).

``speedup_2`` = MPI throughput with 2 ranks / with 1 rank (target on 2 free cores:
at least 1.8). There is no peer for this benchmark. On a machine whose cores are busy
with other work the ratios say little; check ``load_average`` in the JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _harness import metric, model_block, token_list

BEAM_SIZE = 4
CTC_WEIGHT = 0.3
RUN_TIMEOUT_S = 900
ROUNDS = 3  # each backend runs this many times, in turn; the median run counts


def _mpiexec() -> str:
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if found is None:
        raise FileNotFoundError(
            "mpiexec not found next to the interpreter or on PATH: run `uv sync` "
            "(espnet-infer[mpi] brings mpich's mpiexec)"
        )
    return found


def make_test_set(work: Path, utterances: int, per_shard: int) -> Path:
    """The test split of the mini corpus as shards of ``per_shard`` utterances."""
    from espnet_data import write_split
    from espnet_data.corpora import MiniCorpus

    corpus = MiniCorpus(utterances={"test": utterances}, seed=0)
    out = work / "data" / "test"
    write_split(corpus, "test", out, utterances_per_shard=per_shard)
    return out


def run_backend(name: str, command: list[str], conf: Path, out: Path) -> dict[str, Any]:
    """Run one ``espnet-infer`` process tree; its wall time and its summary."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    proc = subprocess.run([*command, "--config", str(conf), "--output_dir", str(out)],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: {' '.join(command)} exited {proc.returncode}:\n"
                           f"{proc.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    utts = int(summary["utterances_decoded"])
    span = float(summary["decode_span_seconds"])
    workers = summary.get("worker_spans", [])
    return {
        "command": " ".join(command),
        "process_wall_s": wall,
        "decode_span_s": span,
        "startup_s": wall - span,
        "utterances": utts,
        "utts_per_s": utts / span if span else None,
        "utts_per_s_end_to_end": utts / wall,
        "workers": summary["workers"],
        # where a two-worker span loses time: a worker that starts late, or one that
        # finishes early and idles (see worker_spans in docs/parallel.md)
        "start_skew_s": max((w["first_started"] for w in workers), default=0.0),
        "end_spread_s": (max(w["last_finished"] for w in workers)
                         - min(w["last_finished"] for w in workers)) if workers else 0.0,
        "worker_spans": workers,
        "hyps": (out / "test" / "hyp.txt").read_text(),
    }


def run(quick: bool = False) -> dict[str, Any]:
    from decode import write_model_folder

    utterances, per_shard = (16, 4) if quick else (192, 12)
    python = [sys.executable, "-m", "espnet_infer.cli"]
    mpiexec = _mpiexec()
    backends = {
        "local": [*python, "--parallel.backend", "local"],
        "mpi_1": [mpiexec, "-n", "1", *python, "--parallel.backend", "mpi"],
        "mpi_2": [mpiexec, "-n", "2", *python, "--parallel.backend", "mpi"],
        "processes_2": [*python, "--parallel.backend", "processes", "--parallel.num_workers", "2"],
    }
    with tempfile.TemporaryDirectory(prefix="bench-infer-scaling-") as tmp:
        work = Path(tmp)
        test_set = make_test_set(work, utterances, per_shard)
        write_model_folder(work / "model", model_block(), token_list())
        conf = work / "inference.yaml"
        conf.write_text(yaml.safe_dump({
            "model_dir": str(work / "model"),
            "test_sets": {"test": str(test_set)},
            "output_dir": str(work / "unused"),
            "decode": {"method": "beam_search", "beam_size": BEAM_SIZE, "ctc_weight": CTC_WEIGHT},
            "parallel": {"threads_per_worker": 1},
            "max_seconds": 30.0,
        }))
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in backends}
        for _ in range(1 if quick else ROUNDS):  # the backends in turn, round after round
            for name, cmd in backends.items():
                out = work / name
                shutil.rmtree(out, ignore_errors=True)
                rounds[name].append(run_backend(name, cmd, conf, out))
        audio_s = sum(r["duration"] for r in _jsonl(work / "local" / "test" / "hyp.jsonl"))
    same = len({r.pop("hyps") for runs in rounds.values() for r in runs}) == 1

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rounds[name])

    throughput = {name: median(name, "utts_per_s") for name in backends}
    startup = {name: median(name, "startup_s") for name in backends}
    one, two, pool = throughput["mpi_1"], throughput["mpi_2"], throughput["processes_2"]
    paired = [b["utts_per_s"] / a["utts_per_s"]
              for a, b in zip(rounds["mpi_1"], rounds["mpi_2"], strict=True)]
    metrics = [metric(f"throughput {name}", "utterances / decode s", value, None,
                      higher_is_better=True) for name, value in throughput.items()]
    metrics += [metric(f"start-up {name}", "s", value, None, higher_is_better=False)
                for name, value in startup.items()]
    return {
        "description": "inference throughput by backend (same shards, 1 thread per worker)",
        "utts_per_s_1": one,
        "utts_per_s_2": two,
        "speedup_2": two / one if one and two else None,
        "speedup_2_by_round": paired,
        "processes_utts_per_s_2": pool,
        "processes_speedup_2": pool / one if one and pool else None,
        "startup_s": startup,
        "hyps_identical_across_backends": same,
        "settings": {"utterances": utterances, "utterances_per_shard": per_shard,
                     "shards": -(-utterances // per_shard), "audio_seconds": audio_s,
                     "beam_size": BEAM_SIZE, "ctc_weight": CTC_WEIGHT,
                     "threads_per_worker": 1, "rounds": len(paired), "quick": quick},
        "runs": rounds,
        "metrics": metrics,
    }


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
