"""The paths each stage reads, declared per system and checked before any stage runs.

A system names, for each stage, the config keys whose values are paths the stage reads
and the stage that writes each one (:class:`Reads`, in ``BaseSystem.stage_inputs``).
Before a run, every declared path is looked at; one that an earlier stage of the same
run writes need not exist yet. Whatever is missing is reported at once, in one error
that names, for each path, the stage, the config file and key, the value, and which
stage makes it or how to fix it::

    2 paths that the requested stages read are missing; nothing was run (recipe /r):
      - create_dataset: corpus.init_args.dirs.dev in conf/data.yaml is /corpus/dev, which
        does not exist. No stage makes it: point the key at a Kaldi data directory ...
      - infer: test_sets.test in conf/inference.yaml is data/test, which does not exist.
        The create_dataset stage writes it and is not in this run: run it first ...

Corpora read their own folders: :func:`corpus_paths` lists them (a corpus class may
describe its paths with an ``input_paths(splits)`` method).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .stages import StageError

__all__ = ["CorpusPath", "MissingInputsError", "Reads", "StageInput", "corpus_paths"]

_FIELD = re.compile(r"\{([\w.]+)\}")


@dataclass(frozen=True)
class Reads:
    """A path a stage reads, named by a key of the stage's config.

    Args:
        key: dotted key in the stage's config role (``data.train``), or a template of such
            keys (``{out_dir}/{tokenizer.train_split}``). A mapping value gives one path
            per entry (``test_sets`` -> ``test_sets.dev``, ``test_sets.test``), a list one
            per item; ``None`` (a setting left off) gives none.
        made_by: the stage that writes the path. When it runs earlier in the same run, the
            path need not exist yet. ``None``: data the user provides.
        holds: files a folder must contain to count as made (``index.jsonl``: a split
            folder whose ``create_dataset`` finished).
        what: what the path should be, for the error message.
    """

    key: str
    made_by: str | None = None
    holds: tuple[str, ...] = ()
    what: str = ""


@dataclass(frozen=True)
class StageInput:
    """One path a stage reads, resolved from its config.

    ``value`` is the path as written in the config; ``path`` is it resolved against the
    recipe folder (relative config paths are relative to the recipe).
    """

    stage: str
    key: str
    value: str
    path: Path
    config: str = ""
    made_by: str | None = None
    holds: tuple[str, ...] = ()
    what: str = ""

    def problem(self) -> str | None:
        """Why the path is not usable (``does not exist``...), or None when it is there."""
        if not self.path.exists():
            return "does not exist"
        if self.holds and not self.path.is_dir():
            return f"is not a folder (it should hold {', '.join(self.holds)})"
        missing = [name for name in self.holds if not (self.path / name).exists()]
        if missing:
            return f"exists but holds no {', '.join(missing)}"
        return None

    def describe(self, problem: str, stages: Sequence[str], order: Sequence[str] = ()) -> str:
        """Where the path comes from and what to change (``stages``: those of the run;
        ``order``: the system's canonical order, for the suggested ``--stages``)."""
        where = f" in {self.config}" if self.config else ""
        head = f"{self.stage}: {self.key}{where} is {self.value}, which {problem}."
        target = f"point {self.key} at {self.what or 'an existing path'}"
        if self.made_by is None:
            return f"{head} No stage makes it: {target}."
        if self.made_by in stages:  # declared to run after the stage that reads it
            return (f"{head} The {self.made_by} stage writes it but runs after {self.stage}: "
                    f"fix the system's stage_inputs, or {target}.")
        run = " ".join(s for s in order or stages if s in stages or s == self.made_by)
        return (f"{head} The {self.made_by} stage writes it and is not in this run: run it "
                f"first (--stages {run}), or {target}.")


class MissingInputsError(StageError):
    """Paths the requested stages read are missing; ``missing`` lists (input, problem)."""

    def __init__(self, missing: list[tuple[StageInput, str]], stages: Sequence[str],
                 recipe_dir: Path, order: Sequence[str] = ()) -> None:
        self.missing = missing
        count = f"{len(missing)} path{'s' if len(missing) > 1 else ''}"
        lines = [f"{count} that the requested stages read "
                 f"{'are' if len(missing) > 1 else 'is'} missing; nothing was run "
                 f"(recipe {recipe_dir}; relative paths are relative to it):"]
        lines += [f"  - {inp.describe(problem, stages, order)}" for inp, problem in missing]
        super().__init__("\n".join(lines))


def lookup(config: Any, key: str) -> Any:
    """The value of a dotted ``key`` in a parsed config (None: a mapping lacks it, or a
    setting on the way is None).

    Raises:
        KeyError: a part of the key is no field of the config.
    """
    value = config
    for part in key.split("."):
        if value is None:
            return None
        if isinstance(value, Mapping):
            value = value.get(part)
        elif hasattr(value, part):
            value = getattr(value, part)
        else:
            raise KeyError(part)
    return value


def expand(reads: Reads, config: Any) -> list[tuple[str, str]]:
    """``(key, path)`` for each path ``reads`` names in ``config`` (see :class:`Reads`).

    Raises:
        KeyError: the key names no field; TypeError: a value is not a path.
    """
    if "{" in reads.key:
        parts = {name: lookup(config, name) for name in _FIELD.findall(reads.key)}
        if any(v is None for v in parts.values()):
            return []
        return [(reads.key, _FIELD.sub(lambda m: str(parts[m[1]]), reads.key))]
    value = lookup(config, reads.key)
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        return [(reads.key, os.fspath(value))]
    if isinstance(value, Mapping):
        return [(f"{reads.key}.{k}", os.fspath(v)) for k, v in value.items() if v is not None]
    if isinstance(value, list | tuple):
        return [(f"{reads.key}[{i}]", os.fspath(v)) for i, v in enumerate(value) if v is not None]
    raise TypeError(f"{reads.key} is a {type(value).__name__}, not a path")


class CorpusPath(NamedTuple):
    """A path a corpus reads: its key under ``init_args``, the path, what it must hold."""

    key: str
    value: str
    holds: tuple[str, ...] = ()
    what: str = ""


def corpus_paths(corpus: Any, splits: Sequence[str]) -> list[CorpusPath]:
    """The paths ``corpus`` reads to list and load ``splits`` (that must already exist).

    A corpus class describes its own with ``input_paths(splits) -> {init_args key: path}``;
    the corpora espnet-data ships are known here. A corpus that downloads what it lacks,
    or makes its audio (``MiniCorpus``), needs nothing on disk.
    """
    own = getattr(corpus, "input_paths", None)
    if callable(own):
        return [CorpusPath(k, os.fspath(v)) for k, v in own(list(splits)).items()]
    from espnet_data.corpora import AN4Corpus, KaldiDirCorpus, LibriSpeechCorpus

    if isinstance(corpus, KaldiDirCorpus):
        return [
            CorpusPath(f"dirs.{split}", corpus.dirs[split], ("wav.scp", "text"),
                       "a Kaldi data directory (wav.scp, text, optional utt2spk and segments)")
            for split in splits if split in corpus.dirs
        ]
    if isinstance(corpus, AN4Corpus) and not corpus.download:
        root = corpus.root or os.environ.get("AN4_ROOT")
        key = "root" if corpus.root else "root (unset: $AN4_ROOT)"
        return [CorpusPath(key, root, (), "the folder that holds an4/, or set download: true")] if root else []
    if isinstance(corpus, LibriSpeechCorpus) and not corpus.download:
        key = "root" if corpus.root else "root (unset: $LIBRISPEECH_ROOT, else downloads)"
        return [CorpusPath(key, str(corpus.root_dir()), (),
                           "the folder that holds LibriSpeech/, or set download: true")]
    return []
