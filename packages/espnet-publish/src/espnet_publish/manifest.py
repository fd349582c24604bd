"""``meta.yaml``: the inventory (path, size, sha256) of a packed model folder.

Every file of a packed folder except ``meta.yaml`` itself is listed, together with the
Python version and the versions of the espnet-* packages, torch and the other libraries
that wrote it (ESPnet model zoo packs carry a ``meta.yaml`` of the same purpose).
:func:`verify_manifest` re-hashes the folder and is run before every upload;
``espnet_infer.load_model_folder`` (and so ``Speech2Text``) checks the files it reads
(``config.yaml``, the weights, the tokenizer files) against it before every load, unless
called with ``verify=False``. The digests catch corruption and edits of single files;
whoever can rewrite the files can rewrite ``meta.yaml`` too, so they do not replace
trusting the source (pin a Hub revision: ``hf://owner/name@<commit>``).

Format (``format_version`` 2)::

    format: espnet-publish-meta
    format_version: 2
    created_utc: '2025-01-01T00:00:00+00:00'
    model_name: librispeech-conformer
    python: 3.11.9
    packages: {espnet-infer: 0.1.0, torch: 2.5.1, safetensors: 0.4.5, ...}
    files:
    - {path: config.yaml, size: 812, sha256: ...}
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from espnet_data.atomic import atomic_open
from espnet_data.download import file_digest

from ._files import check_relative
from .errors import PublishError

__all__ = ["MANIFEST_NAME", "package_versions", "verify_manifest", "write_manifest"]

MANIFEST_NAME = "meta.yaml"
_FORMAT = "espnet-publish-meta"
_FORMAT_VERSION = 2
_ESPNET_DIST = re.compile(r"^espnet[-_]")
_OTHER_DISTS = ("torch", "torchaudio", "safetensors", "sentencepiece", "huggingface-hub")
Pathlike = str | os.PathLike[str]


def package_versions() -> dict[str, str]:
    """Installed versions of every ``espnet-*`` distribution and of torch & co (when installed)."""
    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").strip()
        if _ESPNET_DIST.match(name.lower()):
            versions[name.lower().replace("_", "-")] = dist.version
    for name in _OTHER_DISTS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return dict(sorted(versions.items()))


def _list_files(folder: Path) -> list[str]:
    """Relative POSIX paths of all regular files under ``folder``, sorted, manifest excluded."""
    out: list[str] = []
    for path in folder.rglob("*"):
        if path.is_file():
            rel = path.relative_to(folder).as_posix()
            if rel != MANIFEST_NAME:
                out.append(rel)
    return sorted(out)


def write_manifest(folder: Path, *, model_name: str) -> dict[str, Any]:
    """Hash every file under ``folder`` and write ``folder/meta.yaml``; return its content."""
    folder = Path(folder)
    files = [
        {"path": rel, "size": (folder / rel).stat().st_size, "sha256": file_digest(folder / rel)}
        for rel in _list_files(folder)
    ]
    manifest: dict[str, Any] = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model_name": model_name,
        "python": platform.python_version(),
        "packages": package_versions(),
        "files": files,
    }
    with atomic_open(folder / MANIFEST_NAME) as f:
        yaml.safe_dump(manifest, f, sort_keys=False, allow_unicode=True)
    return manifest


def _load_manifest(folder: Path) -> list[dict[str, Any]]:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise PublishError(
            f"{path} not found: {folder} is not a packed model folder. "
            f"Create one with espnet_publish.pack_model(model_dir=..., out_dir=...)."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise PublishError(f"{path} is not valid YAML ({e}); re-run pack_model.") from e
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise PublishError(
            f"{path}: key 'format' is {data.get('format') if isinstance(data, dict) else None!r}, "
            f"expected {_FORMAT!r}; re-run pack_model to write a fresh manifest."
        )
    if data.get("format_version") != _FORMAT_VERSION:
        raise PublishError(
            f"{path}: format_version {data.get('format_version')!r} is not supported "
            f"(this espnet-publish reads {_FORMAT_VERSION}); re-pack with this version."
        )
    files = data.get("files")
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and {"path", "size", "sha256"} <= f.keys() for f in files
    ):
        raise PublishError(
            f"{path}: key 'files' must be a list of {{path, size, sha256}} entries; "
            f"re-run pack_model."
        )
    return files


def verify_manifest(packed_dir: Pathlike) -> None:
    """Re-hash ``packed_dir`` against its ``meta.yaml``; raise on any difference.

    Every problem is collected first and reported together: missing files, size or
    sha256 mismatches, and files present in the folder but not listed (they would be
    uploaded unverified). Each line names the file.

    Usage::

        python -c "from espnet_publish import verify_manifest; verify_manifest('exp/packed')"
    """
    folder = Path(packed_dir)
    entries = _load_manifest(folder)
    problems: list[str] = []
    listed: set[str] = set()
    for entry in entries:
        rel = str(entry["path"])
        check_relative(rel, where=f"{folder / MANIFEST_NAME} entry 'path'")
        listed.add(rel)
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel}: listed in the manifest but missing")
            continue
        size = path.stat().st_size
        if size != entry["size"]:
            problems.append(f"{rel}: size {size} bytes, manifest says {entry['size']}")
            continue
        digest = file_digest(path)
        if digest != entry["sha256"]:
            problems.append(f"{rel}: sha256 {digest[:12]}..., manifest says {entry['sha256'][:12]}...")
    for rel in _list_files(folder):
        if rel not in listed:
            problems.append(f"{rel}: present but not listed in the manifest")
    if problems:
        raise PublishError(
            f"{folder} does not match its {MANIFEST_NAME}:\n  - "
            + "\n  - ".join(problems)
            + "\nThe folder was modified after packing. Re-run pack_model(..., overwrite=True) "
            "from the original model folder, or restore the listed files."
        )
