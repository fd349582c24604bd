"""Reading checkpoints safely, and the ranking of the best ones kept inside the folder.

Every checkpoint this package reads (to resume, to check a rerun's config, to average,
to start a fork from) goes through :func:`load_checkpoint`: ``torch.load`` with
``weights_only=True``, which rebuilds tensors and plain Python values (dicts, lists,
tuples, numbers, strings) and refuses any other pickled object instead of running its
code. Checkpoints written by ``train`` hold nothing else.

``checkpoints/ranking.json`` lists the best-N epoch checkpoints, best first, by file
name relative to that folder, with their scores::

    {"monitor": "valid/loss", "mode": "min",
     "checkpoints": [{"file": "epoch004.ckpt", "score": 1.23}, ...]}

It is rewritten (atomically) after every checkpoint save, so a moved or copied
experiment folder keeps its ranking. Without it, :func:`rank_checkpoints` ranks the
``epoch*.ckpt`` files by the score each one stored for itself; ``last.ckpt`` is never
ranked (it is the newest state, not a best one).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from espnet_data.atomic import write_json

log = logging.getLogger(__name__)

RANKING_FILE = "ranking.json"
LAST = "last.ckpt"


class UnsafeCheckpointError(ValueError):
    """A checkpoint file holds pickled objects other than tensors and plain values."""


def _unpickling_reason(err: Exception) -> str:
    """The one informative line of torch's weights-only error (the blocked GLOBAL or opcode)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or line.startswith("Unsupported"):
            return line
    return lines[-1] if lines else type(err).__name__


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint at ``path`` on the CPU, unpickled with ``weights_only=True``.

    Raises :class:`UnsafeCheckpointError` (naming the file and the refused object) when
    the file holds anything but tensors and plain values, without running any of it;
    ``ValueError`` when it is not a readable checkpoint at all.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such checkpoint") from None
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{path}: refused to load this checkpoint: it is not made of tensors and plain "
            f"values only ({_unpickling_reason(err)}): it holds a pickled object whose unpickling "
            "could run code, or it is damaged. Checkpoints written by espnet-train are neither, "
            "so this file was written or altered by something else: move it out of the folder "
            "(or delete it) and run again"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise ValueError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "a kill cannot leave a half-written one (saves are atomic), so it was damaged or "
            "replaced: move it away (or delete it) and run again"
        ) from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: holds a {type(ckpt).__name__}, not a checkpoint dict")
    return ckpt


# ------------------------------------------------------------------ ranking


def write_ranking(ckpt_dir: Path, scores: dict[str, float], *, monitor: str, mode: str) -> Path:
    """Write ``ckpt_dir/ranking.json``: the checkpoints of ``scores`` (path -> score), best first."""
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=mode == "max")
    path = ckpt_dir / RANKING_FILE
    write_json(path, {
        "monitor": monitor,
        "mode": mode,
        "checkpoints": [{"file": os.path.relpath(p, ckpt_dir), "score": float(s)} for p, s in ranked],
    }, sort_keys=False)
    return path


def read_ranking(ckpt_dir: Path, *, monitor: str) -> list[tuple[Path, float]] | None:
    """``(path, score)`` from ``ranking.json``, best first; None when the file is absent.

    Raises ``ValueError`` naming the file when it is unreadable or ranks by another
    metric than ``monitor``.
    """
    path = ckpt_dir / RANKING_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        entries = [(ckpt_dir / e["file"], float(e["score"])) for e in data["checkpoints"]]
        ranked_by = data["monitor"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path}: not a checkpoint ranking ({err!r}); delete it and run again: the "
            "ranking is then rebuilt from the scores the checkpoints stored"
        ) from None
    if ranked_by != monitor:
        raise ValueError(
            f"{path}: ranks by {ranked_by!r} but monitor is {monitor!r}: set monitor: {ranked_by} "
            "again, or train into a fresh exp_dir to rank by the new metric"
        )
    return entries


def stored_score(ckpt: dict[str, Any], monitor: str) -> float | None:
    """The ``monitor`` score a Lightning checkpoint stored for itself (its ModelCheckpoint state)."""
    for state in (ckpt.get("callbacks") or {}).values():
        if isinstance(state, dict) and state.get("monitor") == monitor and state.get("current_score") is not None:
            return float(state["current_score"])
    return None


def rank_checkpoints(ckpt_dir: Path, *, monitor: str, mode: str) -> list[tuple[Path, float]]:
    """Every ``*.ckpt`` but ``last.ckpt`` in ``ckpt_dir``, ranked by its own stored score, best first.

    Raises ``ValueError`` naming a file that stored no ``monitor`` score.
    """
    scores: dict[str, float] = {}
    for path in sorted(ckpt_dir.glob("*.ckpt")):
        if path.name == LAST:
            continue
        score = stored_score(load_checkpoint(path), monitor)
        if score is None:
            raise ValueError(
                f"{path}: stores no {monitor!r} score, so it cannot be ranked (and "
                f"{ckpt_dir / RANKING_FILE} is missing): move it out of {ckpt_dir}, or set "
                "monitor: to the metric the run was ranked by"
            )
        scores[str(path)] = score
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=mode == "max")
    return [(Path(p), s) for p, s in ranked]


def ranked_checkpoints(ckpt_dir: Path, *, monitor: str, mode: str) -> list[tuple[Path, float]]:
    """The epoch checkpoints of ``ckpt_dir`` and their scores, best first.

    From ``ranking.json`` when it is there; otherwise ranked by the scores the
    checkpoints stored (with a warning that says so). ``last.ckpt`` is never one of them.
    """
    ranked = read_ranking(ckpt_dir, monitor=monitor)
    if ranked is None:
        log.warning("%s is missing: ranking the checkpoints of %s by the %s each one stored",
                    ckpt_dir / RANKING_FILE, ckpt_dir, monitor)
        ranked = rank_checkpoints(ckpt_dir, monitor=monitor, mode=mode)
    return ranked


def best_checkpoints(
    ckpt_dir: Path, n: int, *, monitor: str, mode: str, ranked: list[tuple[Path, float]] | None = None
) -> list[Path]:
    """The ``n`` best epoch checkpoints of ``ckpt_dir``, best first.

    ``ranked``: the result of :func:`ranked_checkpoints`, when the caller has it already.
    Raises ``FileNotFoundError`` when a ranked file is missing or nothing can be ranked.
    """
    if ranked is None:
        ranked = ranked_checkpoints(ckpt_dir, monitor=monitor, mode=mode)
    missing = [str(p) for p, _ in ranked[:n] if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"{ckpt_dir / RANKING_FILE} ranks {missing}, which do not exist: put them back, or "
            "delete the ranking to rank the checkpoints that are there by their stored scores"
        )
    if not ranked:
        raise FileNotFoundError(
            f"{ckpt_dir}: no epoch checkpoint to average (last.ckpt is never averaged): "
            "train at least one epoch with validation"
        )
    return [p for p, _ in ranked[:n]]
