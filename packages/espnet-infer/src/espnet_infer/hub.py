"""Find a model folder: a local path, or an explicit Hugging Face Hub reference.

``resolve_model_dir("exp/train/model")`` returns the folder itself, and only that: a
plain string is always a path on disk. ``resolve_model_dir("hf://owner/name")`` (or
``hf://owner/name@revision``) returns the local snapshot that
``huggingface_hub.snapshot_download`` fetches (or finds in its cache when
``HF_HUB_OFFLINE=1``). Either way the folder holds ``config.yaml``, the weights and the
tokenizer, as written by training and packed by ``espnet_publish.pack_model``.

A download is never the fallback of a missing local path: a typo such as ``exp/modle``
must not fetch (and run) someone else's repository called ``exp/modle``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["HUB_PREFIX", "parse_hub_ref", "resolve_model_dir"]

Pathlike = str | os.PathLike[str]

HUB_PREFIX = "hf://"
"""The scheme that marks a Hugging Face Hub repository: ``hf://owner/name[@revision]``."""

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def parse_hub_ref(text: str) -> tuple[str, str | None] | None:
    """``(repo_id, revision)`` of ``hf://owner/name[@revision]``; None for anything else.

    Raises:
        ValueError: ``text`` starts with ``hf://`` but is not ``hf://owner/name[@revision]``.
    """
    if not text.startswith(HUB_PREFIX):
        return None
    ref = text[len(HUB_PREFIX):]
    repo_id, at, revision = ref.partition("@")
    if not _REPO_ID.match(repo_id) or (at and not revision):
        raise ValueError(
            f"{text!r} is not a Hub reference: write hf://owner/name or "
            "hf://owner/name@revision (a branch, tag or commit)"
        )
    return repo_id, revision or None


def _missing_path_message(text: str) -> str:
    message = f"model folder {text!r} does not exist"
    if _REPO_ID.match(text):
        message += (
            f"; a plain path is never looked up on the Hugging Face Hub. If you meant the "
            f"Hub repository {text!r}, write {HUB_PREFIX}{text}"
        )
    else:
        message += "; pass the folder written by training or pack_model"
    return message


def resolve_model_dir(
    name_or_path: Pathlike,
    *,
    revision: str | None = None,
    cache_dir: Pathlike | None = None,
) -> Path:
    """A local model folder for ``name_or_path``.

    Args:
        name_or_path: a folder on disk (a model folder, a packed model, a snapshot), or
            ``hf://owner/name`` / ``hf://owner/name@revision`` for a Hub repository.
        revision: branch, tag or commit of the Hub repository (default: ``main``); the
            same as ``@revision`` in the reference, for ``hf://`` only.
        cache_dir: Hugging Face cache folder (default: ``HF_HUB_CACHE``).

    Raises:
        FileNotFoundError: the local path does not exist (the message says how to fetch
            from the Hub instead when it looks like ``owner/name``), or the repository
            cannot be fetched (or is not in the cache while ``HF_HUB_OFFLINE=1``).
        ValueError: a malformed ``hf://`` reference, two different revisions, or a
            ``revision`` with a local path.
    """
    # only a str can be a Hub reference: a Path is a path (and folds "hf://" to "hf:/")
    hub_ref = parse_hub_ref(name_or_path) if isinstance(name_or_path, str) else None
    text = str(name_or_path)
    if hub_ref is None:
        if revision is not None:
            raise ValueError(
                f"revision={revision!r} applies to Hub repositories only, and {text!r} is a "
                f"local path; write {HUB_PREFIX}owner/name@{revision} to fetch a revision"
            )
        path = Path(text).expanduser()
        if path.is_dir():
            return path
        if path.exists():
            raise FileNotFoundError(
                f"{text!r} is a file, not a model folder; pass the folder that holds "
                "config.yaml (written by training or pack_model)"
            )
        raise FileNotFoundError(_missing_path_message(text))
    repo_id, ref_revision = hub_ref
    if revision is not None and ref_revision is not None and revision != ref_revision:
        raise ValueError(
            f"{text!r} names revision {ref_revision!r} but revision={revision!r} was also "
            "given; pass one of them"
        )
    revision = ref_revision or revision
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:  # pragma: no cover - a dependency of espnet-infer
        raise ImportError(
            f"loading {text!r} from the Hugging Face Hub needs huggingface_hub: "
            "pip install huggingface_hub"
        ) from err
    try:
        folder = snapshot_download(
            repo_id=repo_id,
            revision=revision,
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except Exception as err:  # noqa: BLE001 - re-raised with what to do
        raise FileNotFoundError(
            f"the Hugging Face repo {repo_id!r} (revision {revision or 'main'}) cannot be "
            f"fetched: {err}. Check the repo id and your network, or download the repo once "
            "without HF_HUB_OFFLINE=1"
        ) from err
    return Path(folder)
