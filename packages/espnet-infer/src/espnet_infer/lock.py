"""One run at a time per output folder: an exclusive ``flock`` on a lock file in it.

Usage::

    from espnet_infer.lock import OutputLocked, output_lock
    with output_lock("exp/infer"):      # raises OutputLocked at once if another run holds it
        ...                             # read, reset and write results

The kernel drops a ``flock`` when its process ends, however it ends, so a killed run
never leaves a lock behind that blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCK_FILE", "OutputLocked", "output_lock"]

#: the lock file in ``output_dir`` that one run at a time holds
LOCK_FILE = ".espnet-infer.lock"


class OutputLocked(RuntimeError):
    """Another run holds the output folder's lock (:func:`output_lock`)."""


def _lock_holder(path: Path) -> str:
    """Who holds the lock, from what it wrote into the lock file."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if "pid" not in info:
        return "pid unknown (it is just starting)"
    return (f"pid {info['pid']} on {info.get('host', '?')}, started {info.get('started', '?')}"
            f" ({info.get('command', '?')})")


@contextlib.contextmanager
def output_lock(output_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``<output_dir>/.espnet-infer.lock``, an exclusive ``flock``, for the block.

    Raises :class:`OutputLocked` at once when another process holds it (no waiting).
    The lock belongs to the open file, not to the file's existence: the kernel drops it
    when the process ends, however it ends (SIGKILL, out of memory), so a killed run
    never leaves a lock that blocks the next one. The file stays (removing it would let
    two runs lock two different files); it holds the holder's pid, host, start time and
    command, which the next run's message quotes. On NFS, Linux maps ``flock`` to NFS
    locks, so runs on different machines exclude each other too.
    """
    path = Path(output_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputLocked(
                f"output_dir {output_dir} is in use by another espnet-infer run: "
                f"{_lock_holder(path)} holds the lock file {path}. Two runs in one "
                "output_dir would mix their results: wait for that run to end (or stop "
                "it), or give this run another output_dir"
            ) from None
        except OSError as err:
            raise OSError(
                err.errno, f"cannot lock {path} ({err.strerror}): the file system of "
                "output_dir does not support flock; put output_dir on a local disk or NFS"
            ) from err
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "command": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
