"""BaseSystem: named stages, configs by role, canonical order, one log per stage.

A system lists its stages in canonical order and says which config role each stage
reads (``conf/<role>.yaml``) and the typed schema of each role. ``run`` resolves the
requested stages, parses every config those stages need *before* running any of them
(so a missing file or a bad key fails fast), then runs each stage inside its log.
Subclasses add stages by extending ``stages`` and ``config_roles`` and writing a
method with no arguments of the same name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from jsonargparse import ArgumentParser

from .logs import header, stage_log
from .stages import StageError, resolve_stages

log = logging.getLogger(__name__)


def parse_config(schema: type, path: Path) -> Any:
    """Parse a YAML file against a dataclass schema with jsonargparse."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(schema, as_group=False)
    try:
        cfg = parser.parse_path(str(path))
    except Exception as err:  # jsonargparse raises its own ArgumentError types
        raise StageError(f"{path}: {err}".replace("\n", " ")) from err
    init = parser.instantiate(cfg)
    return schema(**{f.name: init[f.name] for f in dataclasses.fields(schema)})


def to_plain(obj: Any) -> Any:
    """A YAML-friendly view of a parsed config (dataclasses, objects, paths)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            "class": type(obj).__qualname__,
            **{f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)},
        }
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    return repr(obj)


class BaseSystem:
    """The stage machinery shared by every system (ASR, and later LM, ST, TTS...)."""

    stages: ClassVar[tuple[str, ...]] = ()
    #: stages left out of ``all`` (they publish to the outside world)
    explicit_only: ClassVar[frozenset[str]] = frozenset()
    #: stage -> config role (file ``<conf_dir>/<role>.yaml``)
    config_roles: ClassVar[dict[str, str]] = {}
    #: config role -> dataclass schema
    config_schemas: ClassVar[dict[str, type]] = {}

    def __init__(self, recipe_dir: str | os.PathLike[str], conf_dir: str = "conf") -> None:
        self.recipe_dir = Path(recipe_dir).resolve()
        if not self.recipe_dir.is_dir():
            raise StageError(f"recipe folder {self.recipe_dir} does not exist")
        self.conf_dir = self.recipe_dir / conf_dir
        self.log_dir = self.recipe_dir / "exp" / "logs"
        self._configs: dict[str, Any] = {}

    def config_path(self, role: str) -> Path:
        return self.conf_dir / f"{role}.yaml"

    def config(self, role: str) -> Any:
        """The parsed config of ``role`` (parsed once)."""
        if role not in self._configs:
            path = self.config_path(role)
            if not path.is_file():
                stages = [s for s, r in self.config_roles.items() if r == role]
                raise StageError(
                    f"{path} is missing: stage(s) {stages} need it. Create it (see "
                    f"docs/configs.md) or leave those stages out"
                )
            if role not in self.config_schemas:
                raise StageError(f"{type(self).__name__} has no schema for config role {role!r}")
            self._configs[role] = parse_config(self.config_schemas[role], path)
        return self._configs[role]

    def resolve(self, requested: Sequence[str]) -> list[str]:
        return resolve_stages(requested, self.stages, skip_in_all=self.explicit_only)

    def check(self, stages: Sequence[str]) -> None:
        """Parse every config the stages need; fail before any stage runs."""
        for stage in stages:
            if not callable(getattr(self, stage, None)):
                raise StageError(f"{type(self).__name__} lists stage {stage!r} but has no method for it")
            role = self.config_roles.get(stage)
            if role:
                with contextlib.chdir(self.recipe_dir):
                    self.config(role)

    def run(self, requested: Sequence[str]) -> list[str]:
        """Run the requested stages in canonical order; return the names run."""
        stages = self.resolve(requested)
        self.check(stages)
        with contextlib.chdir(self.recipe_dir):
            for stage in stages:
                self.run_stage(stage)
        return stages

    def report(self, stages: Sequence[str]) -> str:
        """A short summary printed after ``stages`` ran (e.g. scores); empty by default."""
        return ""

    def run_stage(self, stage: str) -> None:
        """Run one stage inside its rotated log (cross-cutting concerns live here)."""
        role = self.config_roles.get(stage)
        files = {role: self.config_path(role)} if role else {}
        resolved = to_plain(self.config(role)) if role else None
        head = header(stage, files, resolved, self.recipe_dir)
        with stage_log(self.log_dir / f"{stage}.log", head):
            log.info("stage %s: start", stage)
            start = time.perf_counter()
            getattr(self, stage)()
            log.info("stage %s: done in %.1f s", stage, time.perf_counter() - start)
