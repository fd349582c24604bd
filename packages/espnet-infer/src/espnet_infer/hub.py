"""Find a model folder: a local path, or a Hugging Face Hub repository snapshot.

``resolve_model_dir("exp/train/model")`` returns the folder itself;
``resolve_model_dir("user/librispeech-conformer")`` returns the local snapshot that
``huggingface_hub.snapshot_download`` fetches (or finds in its cache when
``HF_HUB_OFFLINE=1``). Either way the folder holds ``config.yaml``, ``model.pt`` and
the tokenizer, as written by training and packed by ``espnet_publish.pack_model``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["resolve_model_dir"]

Pathlike = str | os.PathLike[str]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def resolve_model_dir(
    name_or_path: Pathlike,
    *,
    revision: str | None = None,
    cache_dir: Pathlike | None = None,
) -> Path:
    """A local model folder for ``name_or_path``.

    Args:
        name_or_path: a folder on disk (a model folder, a packed model, a snapshot) or a
            Hub repository id ``owner/name``.
        revision: branch, tag or commit of the Hub repository (default: ``main``).
        cache_dir: Hugging Face cache folder (default: ``HF_HUB_CACHE``).

    Raises:
        FileNotFoundError: the path does not exist and is not a repository id, or the
            repository is not in the cache while ``HF_HUB_OFFLINE=1``.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    text = str(name_or_path)
    if path.exists() or not _REPO_ID.match(text):
        raise FileNotFoundError(
            f"{text!r} is neither a model folder on disk nor a Hugging Face repo id "
            "('owner/name'); pass the folder written by training or pack_model"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:  # pragma: no cover - a dependency of espnet-infer
        raise ImportError(
            f"loading {text!r} from the Hugging Face Hub needs huggingface_hub: "
            "pip install huggingface_hub"
        ) from err
    try:
        folder = snapshot_download(
            repo_id=text,
            revision=revision,
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except Exception as err:  # noqa: BLE001 - re-raised with what to do
        raise FileNotFoundError(
            f"no folder {text!r} on disk, and the Hugging Face repo {text!r} (revision "
            f"{revision or 'main'}) cannot be fetched: {err}. Check the path or repo id and "
            "your network, or download the repo once without HF_HUB_OFFLINE=1"
        ) from err
    return Path(folder)
