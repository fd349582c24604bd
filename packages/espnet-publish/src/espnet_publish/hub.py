"""Hugging Face Hub upload of packed model folders (and, via :mod:`.demo`, Spaces).

Usage::

    export HF_TOKEN=hf_...            # or: hf auth login
    python - <<'PY'
    from espnet_publish import upload_model
    print(upload_model("exp/asr_conformer/packed", "my-user/librispeech-100-conformer"))
    PY

The token is resolved before anything else happens, so a missing login fails in
milliseconds instead of after hashing a large model; it is passed to ``HfApi`` and never
logged or put in an error message. The endpoint is the ``endpoint`` argument, else
``$HF_ENDPOINT``, else huggingface_hub's default (https://huggingface.co), so a mirror or a
private Hub works the same way. An existing repository is refused unless ``overwrite``
is set (then the folder is pushed as a new commit on top of it).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

from .errors import PublishError
from .manifest import verify_manifest

__all__ = [
    "hub_url", "resolve_endpoint", "resolve_token", "upload_folder_to_hub", "upload_model",
    "validate_repo_id",
]

logger = logging.getLogger(__name__)

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


def resolve_endpoint(endpoint: str | None = None) -> str:
    """The Hub to talk to: ``endpoint``, else ``$HF_ENDPOINT``, else huggingface_hub's default."""
    if endpoint:
        return endpoint.rstrip("/")
    env = os.environ.get("HF_ENDPOINT", "").strip()
    if env:
        return env.rstrip("/")
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def hub_url(
    repo_id: str, *, repo_type: RepoType, revision: str | None = None, endpoint: str | None = None
) -> str:
    """Browser URL of a repository (and revision) on the Hub endpoint."""
    prefix = "spaces/" if repo_type == "space" else ""
    url = f"{resolve_endpoint(endpoint)}/{prefix}{repo_id}"
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
    endpoint: str | None = None,
    overwrite: bool = False,
) -> str:
    """Create the repository and upload ``folder``; return its URL.

    ``token`` must already be resolved. When the repository exists already the upload is
    refused unless ``overwrite`` (then the folder becomes a new commit on top of it).
    Hub HTTP errors become :class:`PublishError` naming the repository and the likely fix.
    """
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError

    endpoint = resolve_endpoint(endpoint)
    api = huggingface_hub.HfApi(endpoint=endpoint, token=token)
    create_kwargs: dict[str, Any] = {"repo_type": repo_type, "exist_ok": False, "private": private}
    if space_sdk is not None:
        create_kwargs["space_sdk"] = space_sdk
    try:
        try:
            api.create_repo(repo_id, **create_kwargs)
        except HfHubHTTPError as e:
            if getattr(getattr(e, "response", None), "status_code", None) != 409:
                raise
            if not overwrite:
                raise PublishError(
                    f"{repo_type} repo {repo_id!r} already exists on {endpoint}; refusing to "
                    f"overwrite it. Set overwrite: true in publish.yaml (overwrite=True) to push "
                    f"this folder as a new commit, or choose another repo id."
                ) from None
            logger.info("%s repo %s exists: uploading a new commit (overwrite)", repo_type, repo_id)
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
    url = hub_url(repo_id, repo_type=repo_type, revision=revision, endpoint=endpoint)
    logger.info("uploaded %s to %s", folder, url)
    return url


def upload_model(
    packed_dir: Pathlike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload ESPnet model (espnet-publish)",
    endpoint: str | None = None,
    overwrite: bool = False,
) -> str:
    """Upload a folder made by :func:`~espnet_publish.pack_model` to a Hub model repository.

    Order: resolve the token (fails first, before any other work), validate ``repo_id``,
    re-hash the folder against ``meta.yaml``, then ``create_repo`` (an existing repository
    is refused unless ``overwrite``) and ``upload_folder``. With ``revision`` the branch is
    created if missing. ``endpoint``: see :func:`resolve_endpoint`.

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
        endpoint=endpoint,
        overwrite=overwrite,
    )
