"""BaseSystem: named stages, configs by role, canonical order, one log per stage.

A system lists its stages in canonical order and says which config role each stage
reads (``conf/<role>.yaml``) and the typed schema of each role. ``run`` resolves the
requested stages, parses every config those stages need *before* running any of them
(so a missing file or a bad key fails fast), then runs each stage inside its log.
Subclasses add stages by extending ``stages`` and ``config_roles`` (and
``config_schemas`` for a new role) and writing a method with no arguments of the same
name; ``stage_log_mapping`` places a stage's log elsewhere than ``exp/logs``.

Each stage also declares the paths it reads (``stage_inputs``: config keys, and the
stage that writes each). ``run`` looks at all of them before any stage runs and stops
with one error listing every missing path, unless an earlier stage of the same run
writes it (see :mod:`espnet_system.inputs`).

Relative paths in configs are relative to the recipe folder: configs are parsed and
stages run with the recipe folder as the working directory, wherever ``espnet-run`` was
started from.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import yaml

from .inputs import MissingInputsError, Reads, StageInput, expand
from .logs import header, process_rank, stage_log, stage_log_path
from .parse import parse_and_dump, parse_config, to_plain
from .stages import StageError, resolve_stages

__all__ = ["BaseSystem", "parse_config", "to_plain"]

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\{(\w+)\.(\w+)\}")


class BaseSystem:
    """The stage machinery shared by every system (ASR, and later LM, ST, TTS...)."""

    stages: ClassVar[tuple[str, ...]] = ()
    #: stages left out of ``all`` (they publish to the outside world, or are slow extras)
    explicit_only: ClassVar[frozenset[str]] = frozenset()
    #: stage -> config role (file ``<conf_dir>/<role>.yaml``)
    config_roles: ClassVar[dict[str, str]] = {}
    #: config role -> dataclass schema
    config_schemas: ClassVar[dict[str, type]] = {}
    #: stage -> folder of its log, relative to the recipe; ``{role.field}`` is replaced by
    #: that field of the parsed config, e.g. ``{"train": "{training.exp_dir}/logs"}``.
    #: Stages not listed log to ``exp/logs``.
    stage_log_mapping: ClassVar[dict[str, str]] = {}
    #: stages every process of a distributed job runs (DDP training, MPI decoding); in a
    #: process of rank > 0 the other stages are skipped: rank 0 runs them. Lightning's DDP
    #: launcher re-runs the command line in each new rank, which would otherwise redo
    #: every stage before ``train`` there.
    distributed_stages: ClassVar[frozenset[str]] = frozenset()
    #: stage -> the paths it reads, as keys of its config role and the stage writing each
    #: (:class:`~espnet_system.inputs.Reads`); checked before any stage runs. Systems
    #: add paths a key cannot name (a corpus's folders) by extending :meth:`inputs`.
    stage_inputs: ClassVar[dict[str, tuple[Reads, ...]]] = {}

    def __init__(
        self,
        recipe_dir: str | os.PathLike[str],
        conf_dir: str = "conf",
        *,
        per_rank_logs: bool = False,
    ) -> None:
        self.recipe_dir = Path(recipe_dir).resolve()
        if not self.recipe_dir.is_dir():
            raise StageError(f"recipe folder {self.recipe_dir} does not exist")
        self.conf_dir = self.recipe_dir / conf_dir
        self.log_dir = self.recipe_dir / "exp" / "logs"
        self.per_rank_logs = per_rank_logs
        self._configs: dict[str, Any] = {}
        self._resolved: dict[str, str] = {}

    @contextlib.contextmanager
    def in_recipe(self) -> Iterator[None]:
        """Run the block with the recipe folder as working directory (relative paths)."""
        with contextlib.chdir(self.recipe_dir):
            yield

    def config_path(self, role: str) -> Path:
        return self.conf_dir / f"{role}.yaml"

    def config(self, role: str) -> Any:
        """The parsed config of ``role`` (parsed once, relative to the recipe folder)."""
        if role not in self._configs:
            path = self.config_path(role)
            if not path.is_file():
                stages = [s for s, r in self.config_roles.items() if r == role]
                raise StageError(
                    f"{path} is missing: stage(s) {stages} need it. Create it (see "
                    f"docs/configs.md) or leave those stages out"
                )
            if role not in self.config_schemas:
                raise StageError(
                    f"{type(self).__name__} has no schema for config role {role!r}: add it to "
                    f"config_schemas (role -> dataclass)"
                )
            with self.in_recipe():
                value, resolved = parse_and_dump(self.config_schemas[role], path)
            self._configs[role], self._resolved[role] = value, resolved
        return self._configs[role]

    def resolved_config(self, role: str) -> str:
        """``role``'s config as YAML with every default filled in (a valid config itself)."""
        self.config(role)
        return self._resolved[role]

    def resolve(self, requested: Sequence[str]) -> list[str]:
        return resolve_stages(requested, self.stages, skip_in_all=self.explicit_only)

    def log_path(self, stage: str) -> Path | None:
        """This process's log file for ``stage`` (None: a non-zero rank without per-rank logs)."""
        template = self.stage_log_mapping.get(stage)
        folder = self.log_dir
        if template is not None:
            def field(match: re.Match[str]) -> str:
                role, name = match.groups()
                cfg = self.config(role)
                if not hasattr(cfg, name):
                    raise StageError(
                        f"{type(self).__name__}.stage_log_mapping[{stage!r}] = {template!r}: "
                        f"config role {role!r} ({self.config_path(role)}) has no field {name!r}"
                    )
                return str(getattr(cfg, name))

            folder = self.recipe_dir / _PLACEHOLDER.sub(field, template)
        return stage_log_path(folder, stage, rank=process_rank(), per_rank=self.per_rank_logs)

    def check(self, stages: Sequence[str]) -> None:
        """Parse every config the stages need and place their logs; fail before any stage runs."""
        for stage in stages:
            if not callable(getattr(self, stage, None)):
                raise StageError(f"{type(self).__name__} lists stage {stage!r} but has no method for it")
            role = self.config_roles.get(stage)
            if role:
                self.config(role)
            self.log_path(stage)

    def inputs(self, stage: str) -> list[StageInput]:
        """The paths ``stage`` reads, from :attr:`stage_inputs` and its parsed config.

        Systems extend it for paths no single key names (a corpus's folders), or drop
        paths a setting makes unread; :meth:`stage_input` builds one entry.
        """
        declared = self.stage_inputs.get(stage, ())
        if not declared:
            return []
        where = f"{type(self).__name__}.stage_inputs[{stage!r}]"
        role = self.config_roles.get(stage)
        if role is None:
            raise StageError(f"{where} names config keys, but stage {stage!r} has no config "
                             f"role: add it to config_roles")
        found = []
        for reads in declared:
            if reads.made_by is not None and reads.made_by not in self.stages:
                raise StageError(f"{where}: made_by={reads.made_by!r} is not a stage of "
                                 f"{type(self).__name__}; its stages are {', '.join(self.stages)}")
            try:
                paths = expand(reads, self.config(role))
            except (KeyError, TypeError) as err:
                raise StageError(
                    f"{where}: key {reads.key!r} does not name a path of config role {role!r} "
                    f"({self.config_path(role)}): {err}"
                ) from err
            found += [
                self.stage_input(stage, key, value, made_by=reads.made_by, holds=reads.holds,
                                 what=reads.what)
                for key, value in paths
            ]
        return found

    def stage_input(self, stage: str, key: str, value: str, *, made_by: str | None = None,
                    holds: tuple[str, ...] = (), what: str = "") -> StageInput:
        """One path ``stage`` reads: ``key`` of its config is ``value`` (relative to the recipe)."""
        role = self.config_roles.get(stage)
        return StageInput(
            stage, key, value, self.recipe_dir / value,
            config=self._rel(self.config_path(role)) if role else "",
            made_by=made_by, holds=holds, what=what,
        )

    def missing_inputs(self, stages: Sequence[str]) -> list[tuple[StageInput, str]]:
        """Every path ``stages`` read that is not there and that no earlier stage of
        ``stages`` writes, with why (stages in canonical order, as :meth:`resolve` gives)."""
        missing = []
        for n, stage in enumerate(stages):
            for inp in self.inputs(stage):
                if inp.made_by in stages[:n]:
                    continue  # an earlier stage of this run writes it
                problem = inp.problem()
                if problem:
                    missing.append((inp, problem))
        return missing

    def preflight(self, stages: Sequence[str]) -> None:
        """Stop before any stage runs when a path ``stages`` read is missing.

        Raises:
            MissingInputsError: listing every missing path (stage, config key, value,
                which stage makes it or how to fix it).
        """
        missing = self.missing_inputs(stages)
        if missing:
            raise MissingInputsError(missing, stages, self.recipe_dir, self.stages)

    def plan(self, requested: Sequence[str]) -> str:
        """What ``run(requested)`` would do: stages in order, config files, the paths each
        reads (and whether they are there), resolved configs. It does not raise for a
        missing path: call :meth:`preflight` for that."""
        stages = self.resolve(requested)
        self.check(stages)
        lines = [f"{type(self).__name__} in {self.recipe_dir} would run, in this order:"]
        for n, stage in enumerate(stages, 1):
            role = self.config_roles.get(stage)
            conf = self._rel(self.config_path(role)) if role else "(no config)"
            log = self.log_path(stage)
            lines.append(f"  {n}. {stage:<16} {conf:<24} log: {self._rel(log) if log else '-'}")
            for inp in self.inputs(stage):
                if inp.made_by in stages[: n - 1]:
                    state = f"written by {inp.made_by} before"
                else:
                    problem = inp.problem()
                    state = f"MISSING: {problem}" if problem else "present"
                lines.append(f"       reads {inp.key} = {inp.value} ({state})")
        lines.append("relative paths are relative to the recipe folder")
        lines.append(self.print_configs(stages))
        return "\n".join(lines)

    def print_configs(self, stages: Sequence[str]) -> str:
        """The resolved YAML of every config ``stages`` read, one document per role."""
        roles = list(dict.fromkeys(r for s in stages if (r := self.config_roles.get(s))))
        return "".join(
            f"--- # {self._rel(self.config_path(r))} ({self.config_schemas[r].__qualname__})\n"
            f"{self.resolved_config(r)}"
            for r in roles
        )

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.recipe_dir)) if path.is_relative_to(self.recipe_dir) else str(path)

    def run(self, requested: Sequence[str]) -> list[str]:
        """Run the requested stages in canonical order; return the names run.

        In a process of rank > 0 only :attr:`distributed_stages` run.
        """
        stages = self.resolve(requested)
        self.check(stages)
        self.preflight(stages)  # all requested stages: rank 0 runs those other ranks skip
        rank = process_rank()
        if rank:
            skipped = [s for s in stages if not self.runs_on_every_rank(s)]
            stages = [s for s in stages if self.runs_on_every_rank(s)]
            if skipped:
                log.info("rank %d: skipping %s (rank 0 runs them)", rank, ", ".join(skipped))
        with self.in_recipe():
            for stage in stages:
                self.run_stage(stage)
        return stages

    def runs_on_every_rank(self, stage: str) -> bool:
        """Whether every process of a distributed job runs ``stage`` (default: it is one of
        :attr:`distributed_stages`); systems refine it from the stage's config."""
        return stage in self.distributed_stages

    def report(self, stages: Sequence[str]) -> str:
        """A short summary printed after ``stages`` ran: after ``measure``, the scores file
        (``metrics.out_file``) as :meth:`format_scores` draws it; empty otherwise."""
        if "measure" not in stages or "metrics" not in self.config_schemas:
            return ""
        path = Path(getattr(self.config("metrics"), "out_file", "") or "")
        if not path.is_file():
            return ""
        return f"{path}:\n" + self.format_scores(json.loads(path.read_text()))

    @staticmethod
    def format_scores(scores: dict[str, Any]) -> str:
        """The table :meth:`report` prints from ``measure``'s scores file; systems fill it."""
        return ""

    def run_stage(self, stage: str) -> None:
        """Run one stage inside its rotated log (cross-cutting concerns live here)."""
        role = self.config_roles.get(stage)
        files = {role: self.config_path(role)} if role else {}
        resolved = {role: yaml.safe_load(self.resolved_config(role))} if role else None
        head = header(stage, files, resolved, self.recipe_dir)
        with stage_log(self.log_path(stage), head, stage=stage):
            log.info("stage %s: start", stage)
            getattr(self, stage)()
