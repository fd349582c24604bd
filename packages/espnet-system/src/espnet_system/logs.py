"""One log file per stage: rotated, opening with how the stage was run.

``<log_dir>/<stage>.log`` is the newest run; older ones shift to ``<stage>1.log``,
``<stage>2.log``, ... (1 is the most recent of the old ones). The header records the
command line, the config files, the resolved configs, package versions, the machine
(host, torch threads, CUDA devices) and git state; the stage's records follow, and the
log ends with the end time, the elapsed time and whether the stage succeeded.

Under distributed training (DDP, MPI, SLURM) every process runs the stage: only rank 0
writes ``<stage>.log``; the others write nothing unless per-rank logs are asked for, in
which case rank N writes ``<stage>.rankN.log``.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import logging
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

PACKAGES = ("espnet-data", "espnet-model", "espnet-train", "espnet-infer", "espnet-publish",
            "espnet-system", "torch", "torchaudio", "lightning", "jsonargparse", "webdataset",
            "sentencepiece", "huggingface-hub", "safetensors")

#: environment variables that carry a process's global rank, in the order they are trusted
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def process_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's rank in a distributed job (0 when not distributed).

    The first of :data:`RANK_VARIABLES` that is set wins; Lightning's DDP launcher sets
    only ``LOCAL_RANK`` / ``NODE_RANK`` in the processes it starts, so those count too:
    ``NODE_RANK * LOCAL_WORLD_SIZE + LOCAL_RANK`` (``NODE_RANK * 1000 + LOCAL_RANK`` when
    the per-node size is unknown: unique, if not dense).
    """
    env = os.environ if environ is None else environ

    def number(name: str) -> int | None:
        value = env.get(name, "").strip()
        return int(value) if value.isdigit() else None

    for name in RANK_VARIABLES:
        if (rank := number(name)) is not None:
            return rank
    local, node = number("LOCAL_RANK") or 0, number("NODE_RANK") or 0
    if not node:
        return local
    per_node = number("LOCAL_WORLD_SIZE")
    return node * per_node + local if per_node else node * 1000 + local  # unique, if not dense


def stage_log_path(log_dir: Path, stage: str, *, rank: int, per_rank: bool) -> Path | None:
    """Where ``stage`` logs in this process: rank 0's ``<stage>.log``, else per rank or nowhere."""
    if rank == 0:
        return log_dir / f"{stage}.log"
    return log_dir / f"{stage}.rank{rank}.log" if per_rank else None


def rotate(path: Path, keep: int = 20) -> None:
    """Shift ``x.log`` to ``x1.log``, ``x1.log`` to ``x2.log``...; drop beyond ``keep``."""
    stem, suffix = path.stem, path.suffix
    oldest = path.with_name(f"{stem}{keep}{suffix}")
    if oldest.exists():
        oldest.unlink()
    for n in range(keep - 1, 0, -1):
        src = path.with_name(f"{stem}{n}{suffix}")
        if src.exists():
            os.replace(src, path.with_name(f"{stem}{n + 1}{suffix}"))
    if path.exists():
        os.replace(path, path.with_name(f"{stem}1{suffix}"))


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> dict[str, Any]:
    """Host, platform, torch threads and CUDA facts (torch is imported only if it already is
    or can be; a missing torch is reported, not raised)."""
    facts: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "pid": os.getpid(),
        "rank": process_rank(),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    try:
        import torch
    except ImportError:
        facts["torch"] = "not installed"
        return facts
    facts["torch_threads"] = torch.get_num_threads()
    facts["cuda_available"] = torch.cuda.is_available()
    facts["cuda_version"] = torch.version.cuda
    if facts["cuda_available"]:
        facts["cudnn_version"] = torch.backends.cudnn.version()
        facts["cuda_devices"] = [
            f"{i}: {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())
        ]
    return facts


def git_state(cwd: Path) -> dict[str, str]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = run("rev-parse", "HEAD")
    if not commit:
        return {"commit": "not a git checkout"}
    return {"commit": commit, "dirty": str(bool(run("status", "--porcelain")))}


def header(stage: str, config_files: Mapping[str, Path], resolved: Any, cwd: Path) -> str:
    """The commented-YAML head of a stage log (``resolved``: role -> resolved config)."""
    doc = {
        "stage": stage,
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(sys.argv),
        "cwd": str(cwd),
        "config_files": {k: str(v) for k, v in config_files.items()},
        "resolved_config": resolved,
        "versions": versions(),
        "machine": machine(),
        "git": git_state(cwd),
    }
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    return "".join(f"# {line}\n" for line in body.splitlines())


@contextlib.contextmanager
def stage_log(path: Path | None, head: str, *, stage: str = "stage") -> Iterator[None]:
    """Rotate ``path``, write ``head``, copy all log records there during the block, and end
    with the end time, elapsed seconds and status. ``path=None``: log nowhere extra (a
    non-zero rank), but still time the stage."""
    handler: logging.FileHandler | None = None
    root = logging.getLogger()
    previous = root.level
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        rotate(path)
        path.write_text(head)
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    log = logging.getLogger("espnet_system")
    start = time.perf_counter()
    status = "failed"
    try:
        yield
        status = "done"
    except BaseException:
        log.exception("stage %s failed", stage)
        raise
    finally:
        elapsed = time.perf_counter() - start
        ended = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        log.info("stage %s: %s in %.1f s (ended %s)", stage, status, elapsed, ended)
        if handler is not None:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(previous)
