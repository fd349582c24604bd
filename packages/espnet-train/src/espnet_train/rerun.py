"""What a rerun of ``train`` may change before it resumes from ``last.ckpt``.

A resumed run restores the weights, the optimizer and the schedule from the checkpoint,
so most edits of ``training.yaml`` would be ignored (a new ``optim.lr``: the saved
optimizer state wins) or fail late (a new model size: a size mismatch deep in
Lightning). :func:`check_rerun` compares the new config with the one the checkpoint
stored (or, for checkpoints written before configs were stored there, with
``exp_dir/config.yaml``) *before anything is written*, and refuses with a key-level
diff unless every changed key is in :data:`SAFE_CHANGES`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from .callbacks import RunConfig
from .checkpoints import load_checkpoint
from .config import DataConfig, TrainingConfig

log = logging.getLogger(__name__)

#: dotted keys a resumed run may change: they take effect from the resume on
SAFE_CHANGES: tuple[str, ...] = (
    "exp_dir",  # the folder was moved or copied
    "resume",
    "trainer.max_epochs",  # train for more (or fewer) epochs
    "trainer.max_time",
    "trainer.log_every_n_steps",
    "trainer.enable_progress_bar",
    "trainer.num_threads",
    "trainer.keep_host_memory",
    "trainer.loggers",  # what is recorded, not what is trained
    "trainer.profiler",
    "trainer.enable_model_summary",
    "data.num_workers",
    "checkpoint_every_n_steps",
    "nan_policy",
    "max_consecutive_bad_batches",
)

#: keys that name a file or folder: the same place spelled another way is no change
PATH_KEYS = ("tokenizer", "stats_file", "data.train", "data.valid", "data.rir", "data.noise", "init_from")
#: free-form blocks: a key missing on one side is a change
_OPEN_BLOCKS = ("model.", "optims.")

Change = tuple[str, Any, Any]
_ABSENT = "<absent>"


class ConfigChangedError(ValueError):
    """The config of a rerun differs from the checkpoint's in keys that cannot change on resume."""


def plain_config(config: TrainingConfig) -> dict[str, Any]:
    """``config`` as plain JSON values (tuples become lists, anything else a string), as stored in checkpoints."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _defaults() -> dict[str, Any]:
    return flatten(plain_config(TrainingConfig(exp_dir="", tokenizer="", data=DataConfig(train="", valid=""))))


def _same(key: str, old: Any, new: Any) -> bool:
    if old == new:
        return True
    if key in PATH_KEYS and isinstance(old, str) and isinstance(new, str):
        return os.path.realpath(old) == os.path.realpath(new)
    return False


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """``(dotted key, old value, new value)`` for each key that differs, sorted by key.

    A schema key the old config lacks (written by an older version) counts as
    unchanged when the new value is its default; a schema key the new one lacks (no
    longer in the schema) is ignored. In ``model`` and ``optims`` a missing key is a change.
    """
    flat_old, flat_new, defaults = flatten(old), flatten(new), _defaults()
    changes: list[Change] = []
    for key in sorted(flat_old.keys() | flat_new.keys()):
        open_block = key.startswith(_OPEN_BLOCKS)
        if key not in flat_old:
            if not open_block and key in defaults and flat_new[key] == defaults[key]:
                continue
            changes.append((key, _ABSENT, flat_new[key]))
        elif key not in flat_new:
            if open_block:
                changes.append((key, flat_old[key], _ABSENT))
        elif not _same(key, flat_old[key], flat_new[key]):
            changes.append((key, flat_old[key], flat_new[key]))
    return changes


def _safe(key: str) -> bool:
    """Whether ``key`` is, or lies inside, one of :data:`SAFE_CHANGES` (``trainer.profiler.init_args.x``)."""
    return any(key == safe or key.startswith(f"{safe}.") for safe in SAFE_CHANGES)


def _show(value: Any) -> str:
    return value if value == _ABSENT else json.dumps(value)


def saved_config(last: Path, resolved: Path) -> tuple[dict[str, Any] | None, Path]:
    """The config ``last`` stored, else the run's ``config.yaml``; and where it came from."""
    stored = load_checkpoint(last).get(RunConfig.KEY)
    if isinstance(stored, dict):
        return stored, last
    if resolved.is_file():
        return yaml.safe_load(resolved.read_text()) or {}, resolved
    return None, last


def check_rerun(config: TrainingConfig, last: Path) -> None:
    """Raise :class:`ConfigChangedError` when ``config`` changes a key outside :data:`SAFE_CHANGES`.

    ``last``: the ``last.ckpt`` the run is about to resume from (read with
    ``weights_only=True``). Writes nothing.
    """
    exp_dir = Path(config.exp_dir)
    old, source = saved_config(last, exp_dir / "config.yaml")
    if old is None:
        log.warning("%s stores no config and %s is missing: cannot check what changed since it "
                    "was written", last, exp_dir / "config.yaml")
        return
    changes = config_changes(old, plain_config(config))
    refused = [c for c in changes if not _safe(c[0])]
    allowed = [c for c in changes if _safe(c[0]) and c[0] != "exp_dir"]
    if not refused:
        for key, a, b in allowed:
            log.info("resuming with %s: %s -> %s (allowed on resume)", key, _show(a), _show(b))
        cosine = [c for c in [config.optim, *config.optims.values()] if c.scheduler == "cosine"]
        if cosine and any(key == "trainer.max_epochs" for key, _, _ in allowed):
            log.warning("trainer.max_epochs changed with scheduler: cosine: the decay is recomputed "
                        "over the new number of steps, so the learning rate jumps at the resume")
        return
    diff = "\n".join(f"  {key}: {_show(a)} -> {_show(b)}" for key, a, b in refused)
    model_changed = any(key.startswith("model.") for key, _, _ in refused)
    fork = (
        "A changed model cannot start from these weights."
        if model_changed else
        f"To continue from these weights with the new values (a fork): set exp_dir to a new "
        f"folder and init_from: {last} (the model weights only; optimizer and schedule start fresh)."
    )
    raise ConfigChangedError(
        f"{exp_dir}: the config differs from the one saved in {source}, in keys that "
        f"a resumed run cannot change (old -> new):\n{diff}\n"
        f"Nothing was written. To resume the run as it was, undo these changes. To start "
        f"over with the new values: move or delete {exp_dir}, or set exp_dir to a new folder. "
        f"{fork} Keys that may change on resume: {', '.join(SAFE_CHANGES)} (docs/training.md)."
    )
