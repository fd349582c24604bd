"""Parsing a recipe config against its typed schema, with errors a user can act on.

jsonargparse does the parsing (typed dataclass fields are the schema; ``class_path`` /
``init_args`` swap components). Its errors are caught and rewritten so they name the
file, the full dotted key, and, for an unknown key, the closest valid one::

    conf/inference.yaml: unknown key 'decode.beam_sise' (did you mean 'decode.beam_size'?);
    valid keys under 'decode': method, beam_size, ctc_weight, ...

A key written twice in one mapping is an error too (YAML loaders keep the last one
silently), found by reading the file's node tree before jsonargparse sees it::

    conf/inference.yaml: key 'decode.beam_size' is written twice, at line 9 and line 12;
    keep one (the last one would silently win)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from espnet_data import config_errors
from jsonargparse import ArgumentParser

from .stages import StageError


def _parser(schema: type) -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(schema, as_group=False)
    return parser


def valid_keys(schema: type) -> list[str]:
    """Every dotted key ``schema`` accepts (nested dataclasses flattened)."""
    return list(_parser(schema).get_defaults().keys())


def explain(message: str, schema: type, path: Path) -> str:
    """Rewrite a jsonargparse error about ``path`` into one line that says what to fix
    (:func:`espnet_data.config_errors.explain`, with the schema's ``key_hints``)."""
    return config_errors.explain(message, valid_keys(schema), str(path), getattr(schema, "key_hints", None))


def duplicate_keys(text: str) -> list[tuple[str, int, int]]:
    """``(dotted key, first line, repeated line)`` for every key written twice in one
    mapping of the YAML ``text`` (lines from 1). Merge keys (``<<``) are left to YAML.

    Raises:
        yaml.YAMLError: ``text`` is not one YAML document.
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    found: list[tuple[str, int, int]] = []
    seen: set[int] = set()  # an anchored node is walked once (aliases may recurse)

    def walk(node: yaml.Node, prefix: str) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}  # (tag, text): 1 and "1" differ
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is None or key_node.tag == "tag:yaml.org,2002:merge":
                    walk(value_node, prefix)
                    continue
                dotted = f"{prefix}{key}"
                line = key_node.start_mark.line + 1
                ident = (key_node.tag, key)
                if ident in first:
                    found.append((dotted, first[ident], line))
                else:
                    first[ident] = line
                walk(value_node, f"{dotted}.")
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{prefix.removesuffix('.')}[{i}].")

    if root is not None:
        walk(root, "")
    return sorted(found, key=lambda item: item[2])


def check_duplicate_keys(path: Path) -> None:
    """Raise when a key of the YAML file ``path`` is written twice in one mapping.

    A file that is not valid YAML is left to jsonargparse, whose error names it.

    Raises:
        StageError: naming the file, each repeated key and both lines.
    """
    try:
        repeated = duplicate_keys(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return
    if repeated:
        listed = "; ".join(
            f"key {key!r} is written twice, at line {a} and line {b}" for key, a, b in repeated
        )
        raise StageError(f"{path}: {listed}; keep one (the last one would silently win)")


def parse_and_dump(schema: type, path: str | Path) -> tuple[Any, str]:
    """Parse a YAML file against a dataclass schema; return the config and its resolved YAML.

    The YAML has every default filled in and components as ``class_path`` + ``init_args``:
    it is itself a valid config (what ``--print_config`` prints and stage logs record).

    Raises:
        StageError: naming the file, the key and (for an unknown key) the closest valid one;
            or a key written twice, with both lines.
    """
    path = Path(path)
    if path.is_file():
        check_duplicate_keys(path)
    parser = _parser(schema)
    try:
        cfg = parser.parse_path(str(path))
    except Exception as err:  # jsonargparse raises its own ArgumentError types
        raise StageError(explain(str(err), schema, path)) from err
    resolved = parser.dump(cfg, skip_unset=False)
    try:
        init = parser.instantiate(cfg)
        value = schema(**{f.name: init[f.name] for f in dataclasses.fields(schema)})
    except ValueError as err:  # the schema's own checks (e.g. the model block's): one line
        raise StageError(explain(str(err), schema, path)) from err
    except Exception as err:  # a component's constructor rejected its arguments
        raise StageError(f"{path}: {type(err).__name__}: {' '.join(str(err).split())}") from err
    return value, resolved


def parse_config(schema: type, path: str | Path) -> Any:
    """Parse a YAML file against a dataclass schema (see :func:`parse_and_dump`)."""
    return parse_and_dump(schema, path)[0]


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
