"""One log file per stage: rotated, opening with how the stage was run.

``<log_dir>/<stage>.log`` is the newest run; older ones shift to ``<stage>1.log``,
``<stage>2.log``, ... (1 is the most recent of the old ones). The header records the
command line, the config files, the resolved config, package versions and git state.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

PACKAGES = ("espnet-data", "espnet-model", "espnet-train", "espnet-infer", "espnet-publish",
            "espnet-system", "torch", "torchaudio", "lightning", "webdataset")


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
    doc = {
        "stage": stage,
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "cwd": str(cwd),
        "config_files": {k: str(v) for k, v in config_files.items()},
        "resolved_config": resolved,
        "versions": versions(),
        "git": git_state(cwd),
    }
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    return "".join(f"# {line}\n" for line in body.splitlines())


@contextlib.contextmanager
def stage_log(path: Path, head: str) -> Iterator[logging.Handler]:
    """Rotate ``path``, write ``head``, and copy all log records there during the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rotate(path)
    path.write_text(head)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield handler
    except BaseException:
        logging.getLogger("espnet_system").exception("stage failed")
        raise
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()
