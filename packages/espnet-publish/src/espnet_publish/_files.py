"""File-system helpers: staged, atomically swapped folders.

A packed folder is built in a staging directory next to its destination (same parent,
so the final ``os.rename`` never crosses a file system) and only renamed into place once
it is complete. An interrupted run leaves at most a ``.<name>.staging-*`` directory, never
half a model folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import PublishError

__all__ = ["check_relative", "copy_file", "staged_dir"]


def _check_destination(out_dir: Path, *, overwrite: bool, what: str) -> None:
    if out_dir.exists() or out_dir.is_symlink():
        if not overwrite:
            raise PublishError(
                f"{what} destination {out_dir} already exists; refusing to overwrite it. "
                f"Pass overwrite=True to replace it, or choose another out_dir."
            )
        if not out_dir.is_dir() or out_dir.is_symlink():
            raise PublishError(
                f"{what} destination {out_dir} exists and is not a plain directory; "
                f"remove it by hand or choose another out_dir."
            )


@contextmanager
def staged_dir(out_dir: Path, *, overwrite: bool, what: str) -> Iterator[Path]:
    """Yield an empty staging folder; on clean exit move it to ``out_dir``.

    The existence check runs before the caller does any work. When ``out_dir`` exists and
    ``overwrite`` is true, the old folder is renamed aside, the new one renamed in, and
    only then is the old one deleted; if the swap fails the old folder is put back. (POSIX
    cannot rename a directory over a non-empty one, so there is a window of two renames
    in which ``out_dir`` is absent, but never a moment where it is half written.)
    On any exception the staging folder is removed and ``out_dir`` is left untouched.
    """
    out_dir = Path(out_dir)
    _check_destination(out_dir, overwrite=overwrite, what=what)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        yield staging
        _check_destination(out_dir, overwrite=overwrite, what=what)  # may have appeared since
        _swap_in(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_in(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out_dir, old)
    try:
        os.rename(staging, out_dir)
    except BaseException:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def copy_file(src: Path, dst: Path) -> None:
    """Copy one file (contents + mode), creating parent folders."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def check_relative(rel: str, *, where: str) -> Path:
    """Return ``rel`` as a relative path that stays inside its folder, or raise.

    ``where`` names the config key / mapping entry so the error says what to edit.
    """
    p = Path(rel)
    if not rel or p.is_absolute() or ".." in p.parts:
        raise PublishError(
            f"{where} = {rel!r} must be a path relative to the model folder without '..' "
            f"(e.g. 'tokenizer/tokens.txt'), so the packed folder is self-contained."
        )
    return p
