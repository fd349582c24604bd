"""Find and read the files of an ESPnet2 experiment folder or model-zoo pack.

Shared by the ASR loader (:mod:`espnet_model.espnet2`) and the LM loader
(:mod:`espnet_model.lm.espnet2`): both accept a ``config.yaml``, an experiment folder,
a zoo pack whose ``meta.yaml`` names the config and checkpoint, or a folder with one
experiment below ``exp/``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Pathlike = str | os.PathLike[str]


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping (errors name the file)."""
    import yaml

    try:
        with path.open(encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def resolve(value: str, config_file: Path) -> Path:
    """A path from ``config.yaml``: as written, else relative to the folder or its parents."""
    candidate = Path(value)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    for base in (config_file.parent, *config_file.parents):
        if (base / candidate).exists():
            return base / candidate
    return candidate


def pick_model_file(folder: Path, config_file: Path, names: Sequence[str], what: str) -> Path:
    """The first of ``names`` in ``folder``, else its only ``*.pth`` (not ``checkpoint.pth``)."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    others = sorted(p for p in folder.glob("*.pth") if p.name != "checkpoint.pth")
    if len(others) == 1:
        return others[0]
    raise FileNotFoundError(
        f"{folder}: no ESPnet2 {what} checkpoint next to {config_file.name} (looked for "
        f"{', '.join(names)}; found {[p.name for p in others] or 'no *.pth'}); "
        "pass model_file= explicitly"
    )


def find_files(
    path: Pathlike,
    *,
    names: Sequence[str],
    meta_keys: tuple[str, str],
    exp_glob: str,
    what: str,
) -> tuple[Path, Path]:
    """``(config.yaml, checkpoint)`` of an ESPnet2 experiment folder, zoo pack or config file.

    ``names``: checkpoint names, most preferred first; ``meta_keys``: the pack's
    ``meta.yaml`` keys ``(yaml_files.<config>, files.<model>)``; ``exp_glob``: the
    experiment folders below a recipe (``exp/*``); ``what``: ``ASR``, ``LM``... in messages.
    """
    root = Path(path)
    if root.is_file():
        return root, pick_model_file(root.parent, root, names, what)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such ESPnet2 {what} experiment folder or config.yaml")
    if (root / "config.yaml").is_file():
        return root / "config.yaml", pick_model_file(root, root / "config.yaml", names, what)
    config_key, model_key = meta_keys
    if (root / "meta.yaml").is_file():
        meta = read_yaml(root / "meta.yaml")
        try:
            config = root / meta["yaml_files"][config_key]
            model = root / meta["files"][model_key]
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"{root / 'meta.yaml'}: missing yaml_files.{config_key} or files.{model_key} "
                f"({err}); is this an ESPnet2 {what} pack?"
            ) from err
        for needed in (config, model):
            if not needed.is_file():
                raise FileNotFoundError(f"{root / 'meta.yaml'} names {needed}, which does not exist")
        return config, model
    configs = sorted(root.glob(f"{exp_glob}/config.yaml"))
    if len(configs) == 1:
        return configs[0], pick_model_file(configs[0].parent, configs[0], names, what)
    raise FileNotFoundError(
        f"{root}: found neither config.yaml, meta.yaml nor a single {exp_glob}/config.yaml "
        f"(found {len(configs)}); point to the {what} experiment folder or its config.yaml"
    )


def read_token_list(config: dict[str, Any], config_file: Path) -> Any:
    """``token_list`` as written (a list, or anything else for the caller to refuse), or
    the first column of the token file it names (relative to the folder or its parents)."""
    tokens = config.get("token_list")
    if isinstance(tokens, str):
        path = resolve(tokens, config_file)
        if not path.is_file():
            raise FileNotFoundError(f"{config_file}: token_list={tokens!r} does not exist")
        tokens = [line.rstrip("\n").split(" ")[0] for line in path.open(encoding="utf-8")]
    return tokens
