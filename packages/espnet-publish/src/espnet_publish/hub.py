"""Hugging Face Hub upload of packed model folders (and, via :mod:`.demo`, Spaces).

Usage::

    export HF_TOKEN=hf_...            # or: hf auth login
    python - <<'PY'
    from espnet_publish import upload_model
    print(upload_model("exp/asr_conformer/packed", "my-user/librispeech-100-conformer"))
    PY

The token is resolved before anything else happens, so a missing login fails in
milliseconds instead of after hashing a large model. ``huggingface_hub`` is imported
lazily and looked up as ``huggingface_hub.HfApi`` at call time (tests replace it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from .errors import PublishError
from .manifest import verify_manifest

__all__ = ["hub_url", "resolve_token", "upload_folder_to_hub", "upload_model", "validate_repo_id"]

Pathlike = str | os.PathLike[str]
RepoType = Literal["model", "space"]

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_TOKEN_HELP = (
    "No Hugging Face token found. Provide one in any of these ways:\n"
    "  export HF_TOKEN=hf_...        # a write token from https://huggingface.co/settings/tokens\n"
    "  hf auth login                 # stores the token for huggingface_hub.get_token()\n"
    "  pass token='hf_...' to the upload function"
)


def resolve_token(token: str | None = None) -> str:
    """Return the token to use: ``token`` if given, else ``$HF_TOKEN``, else the stored login.

    Raises:
        PublishError: if none is available; the message says how to provide one.
    """
    if token:
        return token
    env = os.environ.get("HF_TOKEN", "").strip()
    if env:
        return env
    import huggingface_hub

    stored = huggingface_hub.get_token()
    if stored:
        return stored
    raise PublishError(_TOKEN_HELP)


def validate_repo_id(repo_id: str) -> str:
    """Check ``repo_id`` is ``owner/name`` with Hub-legal parts; return it unchanged."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(
        _NAME.match(p) and "--" not in p and ".." not in p for p in parts
    ):
        raise PublishError(
            f"repo_id {repo_id!r} is not a valid Hugging Face repository id. Use 'owner/name' "
            f"(your user or organisation, a slash, then a name of letters, digits, '-', '_' or "
            f"'.', at most 96 characters, not starting or ending with '-' or '.'), "
            f"e.g. 'my-user/librispeech-conformer'."
        )
    return repo_id


def hub_url(repo_id: str, *, repo_type: RepoType, revision: str | None = None) -> str:
    """Browser URL of a repository (and revision) on the configured Hub endpoint."""
    from huggingface_hub import constants

    prefix = "spaces/" if repo_type == "space" else ""
    url = f"{constants.ENDPOINT.rstrip('/')}/{prefix}{repo_id}"
    return f"{url}/tree/{revision}" if revision else url


def upload_folder_to_hub(
    folder: Path,
    repo_id: str,
    *,
    token: str,
    repo_type: RepoType,
    private: bool,
    commit_message: str,
    revision: str | None = None,
    space_sdk: str | None = None,
) -> str:
    """Create the repository if needed and upload ``folder``; return its URL.

    ``token`` must already be resolved. Hub HTTP errors become :class:`PublishError`
    naming the repository and the likely fix.
    """
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError

    api = huggingface_hub.HfApi(token=token)
    create_kwargs: dict[str, Any] = {"repo_type": repo_type, "exist_ok": True, "private": private}
    if space_sdk is not None:
        create_kwargs["space_sdk"] = space_sdk
    try:
        api.create_repo(repo_id, **create_kwargs)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type=repo_type,
            revision=revision,
            commit_message=commit_message,
        )
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        hint = (
            "the token is invalid or lacks write access to this namespace; create a write "
            "token at https://huggingface.co/settings/tokens"
            if status in (401, 403)
            else "check the repository id, your network and the Hub status"
        )
        raise PublishError(
            f"uploading {folder} to {repo_type} repo {repo_id!r} failed (HTTP {status}): "
            f"{hint}.\n{e}"
        ) from e
    return hub_url(repo_id, repo_type=repo_type, revision=revision)


def upload_model(
    packed_dir: Pathlike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload ESPnet model (espnet-publish)",
) -> str:
    """Upload a folder made by :func:`~espnet_publish.pack_model` to a Hub model repository.

    Order: resolve the token (fails first, before any other work), validate ``repo_id``,
    re-hash the folder against ``MANIFEST.json``, then ``create_repo(exist_ok=True)`` and
    ``upload_folder``. With ``revision`` the branch is created if missing.

    Returns:
        The repository URL, e.g. ``https://huggingface.co/my-user/my-model``.
    """
    resolved = resolve_token(token)
    validate_repo_id(repo_id)
    folder = Path(packed_dir)
    verify_manifest(folder)
    return upload_folder_to_hub(
        folder,
        repo_id,
        token=resolved,
        repo_type="model",
        private=private,
        revision=revision,
        commit_message=commit_message,
    )
