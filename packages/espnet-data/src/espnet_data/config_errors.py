"""One-line messages for config errors, shared by every command line of the toolkit.

jsonargparse (the parser of ``training.yaml``, ``inference.yaml`` and the recipe
configs) reports an unknown key as ``Group 'decode' does not accept option 'beam_sise'``
after the whole usage text. :func:`explain` turns that into the line a user acts on,
the same from ``espnet-run``, ``espnet-train`` and ``espnet-infer``::

    conf/inference.yaml: unknown key 'decode.beam_sise' (did you mean 'decode.beam_size'?);
    valid keys under 'decode': method, beam_size, ctc_weight, ...

It works on the message text and the schema's dotted keys, so this package needs no
parser; a schema may add ``key_hints`` (dotted key -> what to write instead), e.g. for
ESPnet2's spelling of a key.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import inspect
import re
from collections.abc import Mapping
from typing import Any, TypeVar

_GROUP_KEY = re.compile(r"Group '(?P<group>[\w.]+)' does not accept option '(?P<key>[\w.]+)'")
_TOP_KEY = re.compile(r"Option '(?P<key>[\w.]+)' is not accepted")
_CLASS = re.compile(r'Parser key "(?P<group>[\w.]+)":.*?class_path \'(?P<cls>[\w.]+)\'', re.S)


def class_params(dotted: str) -> list[str]:
    """The constructor arguments of the class ``dotted`` names ([] when it cannot be read)."""
    module, _, name = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
        return [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
    except (ImportError, AttributeError, TypeError, ValueError):
        return []


def closest(name: str, candidates: list[str]) -> str | None:
    """The candidate closest to ``name``, or None when none is close."""
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return match[0] if match else None


def explain(message: str, keys: list[str], where: str, hints: Mapping[str, str] | None = None) -> str:
    """Rewrite a jsonargparse error about the config ``where`` into one line.

    Args:
        message: the error text.
        keys: every dotted key the schema accepts.
        where: the file (or command line) the config came from.
        hints: dotted key -> what to write instead (named in the message when it matches).
    """
    flat = " ".join(message.split())
    unknown = _GROUP_KEY.search(flat) or _TOP_KEY.search(flat)
    if not unknown:
        return f"{where}: {flat}"
    group = unknown.groupdict().get("group") or ""
    key = unknown["key"]
    cls = _CLASS.search(message)
    if cls:  # inside a class_path component: its constructor is the schema
        group = f"{cls['group']}.init_args"
        candidates = [f"{group}.{p}" for p in class_params(cls["cls"])]
    elif group:
        candidates = [k for k in keys if k.startswith(f"{group}.")]
    else:
        candidates = list(dict.fromkeys(k.split(".")[0] for k in keys))
    full = f"{group}.{key}" if group else key
    hint = (hints or {}).get(full)
    if hint:
        return f"{where}: unknown key {full!r}: {hint}"
    names = {c.removeprefix(f"{group}.") if group else c: c for c in candidates}
    match = closest(key.split(".")[0], list(names))
    mean = f" (did you mean {names[match]!r}?)" if match else ""
    scope = f"under {group!r}" if group else "at the top level"
    listed = ", ".join(names) or "(none)"
    return f"{where}: unknown key {full!r}{mean}; valid keys {scope}: {listed}"


class ConfigError(ValueError):
    """A config a command line cannot use; the message is one line that says what to fix."""


def config_source(argv: list[str]) -> str:
    """The file a command line's config comes from (the last ``--config``), else ``the command line``."""
    source = "the command line"
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            source = argv[i + 1]
        elif arg.startswith("--config="):
            source = arg.split("=", 1)[1]
    return source


_Schema = TypeVar("_Schema")


def parse_schema(
    parser: Any, schema: type[_Schema], argv: list[str], hints: Mapping[str, str] | None = None
) -> _Schema:
    """``argv`` parsed by ``parser`` (a jsonargparse parser over the dataclass ``schema``'s
    fields, with a ``--config`` file option) into a ``schema`` instance.

    The one parse step of the ``espnet-train`` and ``espnet-infer`` command lines; takes
    the parser as it is, so this package needs no parser of its own.

    Raises:
        ConfigError: one line naming the file, the key (and the closest valid one) and
            the fix, for any error of the parser or of the schema's own checks.
    """
    try:
        cfg = parser.parse_args(argv)
        cfg.pop("config", None)
        init = parser.instantiate(cfg)
        return schema(**{k: init[k] for k in schema.__dataclass_fields__})  # type: ignore[attr-defined]
    except (argparse.ArgumentError, ValueError, TypeError, KeyError) as err:  # the parser's, the schema's
        keys = list(parser.get_defaults().keys())
        raise ConfigError(explain(str(err), keys, config_source(argv), hints)) from None
