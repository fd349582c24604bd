"""Hugging Face Space (Gradio) demo folders around a packed model, and their upload.

Usage::

    export HF_TOKEN=hf_...
    python - <<'PY'
    from espnet_publish import pack_demo, upload_demo
    demo = pack_demo("exp/asr_conformer/packed", "exp/asr_conformer/space",
                     title="LibriSpeech Conformer ASR")
    print(upload_demo(demo, "my-user/librispeech-conformer-demo"))
    PY

Folder layout::

    <out_dir>/README.md         Space front matter (title, sdk: gradio, sdk_version,
                                python_version, app_file: app.py)
    <out_dir>/app.py            microphone / file input -> espnet_infer -> transcript;
                                with a streaming encoder also a live microphone tab
    <out_dir>/requirements.txt  espnet-data, espnet-infer (compatible ranges), numpy, pyyaml
    <out_dir>/model/            copy of the packed model folder (with meta.yaml)

``requirements.txt`` names what ``app.py`` imports, at the releases that read packs
written by this espnet-publish (``espnet-infer>=0.1.0,<0.2``; never exact pins). Gradio is
not in it: a Gradio Space installs the Gradio of the front matter's ``sdk_version``, and a
second one in ``requirements.txt`` would fight it. ``transcribe`` needs no Gradio, so the
folder's app can be checked in a venv made from ``requirements.txt`` alone (the tests do,
offline, from wheels they build).

A model whose encoder streams (``encoder: contextual_block_conformer`` with
``block_size > 0``, and no ``utterance_mvn``, which needs the whole utterance) gets a
"Live" tab too: Gradio's streaming microphone feeds ``espnet_infer.Speech2TextStreaming``
chunk by chunk (``app.live_chunk`` / ``app.live_stop``, also free of Gradio) and the
transcript grows while the person speaks, with the packed ``decode.streaming`` settings.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from ._files import staged_dir
from ._release import compatible_requirement
from ._space_app import render_app
from ._tts_space_app import render_tts_app
from .errors import PublishError
from .hub import resolve_token, upload_folder_to_hub, validate_repo_id
from .manifest import verify_manifest

__all__ = ["GRADIO_VERSION", "PYTHON_VERSION", "pack_demo", "upload_demo"]

Pathlike = str | os.PathLike[str]

_MODEL_SUBDIR = "model"
_DEFAULT_SAMPLE_RATE = 16000
_DEFAULT_BLOCK_SIZE = 40  # encoder_conf.block_size of a contextual block conformer
GRADIO_VERSION = "6.31.0"
"""The Gradio the app is written and tested against (uv.lock's): the Space's ``sdk_version``."""
PYTHON_VERSION = "3.11"
"""The Space's ``python_version``: the Python the packages are tested with."""


def _requirements() -> str:
    """``requirements.txt``: the packages app.py imports, at compatible versions."""
    lines = [
        compatible_requirement("espnet-data"),
        compatible_requirement("espnet-infer"),
        "numpy>=1.26",  # the live tab's chunk handling; espnet-data's own range
        "pyyaml>=6",
    ]
    return (
        "# Installed by the Hugging Face Space builder (pip install -r requirements.txt).\n"
        f"# Gradio comes from README.md's sdk_version ({GRADIO_VERSION}); to run app.py "
        f'elsewhere: pip install -r requirements.txt "gradio=={GRADIO_VERSION}"\n'
        + "\n".join(lines)
        + "\n"
    )


def _space_readme(*, title: str, license: str | None, tts: bool = False, live: bool = False) -> str:
    meta: dict[str, Any] = {
        "title": title,
        "emoji": "🎙️",
        "colorFrom": "blue",
        "colorTo": "green",
        "sdk": "gradio",
        "sdk_version": GRADIO_VERSION,
        "python_version": PYTHON_VERSION,
        "app_file": "app.py",
        "pinned": False,
    }
    if license:
        meta["license"] = license
    front = "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"
    body = (
        f"\n# {title}\n\n"
        "Record from the microphone or upload an audio file to get its transcript. "
        "The ESPnet model in `model/` (see its `README.md` and `meta.yaml`) is loaded "
        "with `espnet_infer.Speech2Text`, which checks its files against `meta.yaml` first.\n"
    )
    if live:  # a streaming encoder: the app has a live microphone tab
        body += (
            "\nIn the *Live* tab the transcript appears while you speak: the model's "
            "streaming encoder is decoded chunk by chunk with "
            "`espnet_infer.Speech2TextStreaming`, and the transcript is final when you stop "
            "recording.\n"
        )
    if tts:  # a text-to-speech model (config.yaml: task: tts)
        body = (
            f"\n# {title}\n\n"
            "Type English text and hear it spoken. The ESPnet text-to-speech model in `model/` "
            "(see its `README.md` and `meta.yaml`) is loaded with `espnet_infer.Text2Speech`, "
            "which checks its files against `meta.yaml` first.\n"
        )
    return front + body


def _read_front_matter(readme: Path) -> dict[str, Any]:
    """Front matter of a packed model card, or ``{}`` when there is none."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---\n", 4)
    data = yaml.safe_load(text[4:end]) if end > 0 else None
    return data if isinstance(data, dict) else {}


def _sample_rate(packed: Path) -> int:
    config = yaml.safe_load((packed / "config.yaml").read_text(encoding="utf-8")) or {}
    value = config.get("sample_rate", _DEFAULT_SAMPLE_RATE) if isinstance(config, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PublishError(
            f"{packed / 'config.yaml'}: sample_rate = {value!r} is not a positive integer; "
            f"fix the model config and re-pack."
        )
    return value


def _task(packed: Path) -> str:
    config = yaml.safe_load((packed / "config.yaml").read_text(encoding="utf-8")) or {}
    return str(config.get("task", "asr")) if isinstance(config, dict) else "asr"


def _streams(packed: Path) -> bool:
    """Whether the packed model can be decoded as it hears (``Speech2TextStreaming``): a
    contextual block conformer encoder cutting blocks (``block_size``, ESPnet2's default
    40, above 0) without ``normalize: utterance_mvn``, which needs the whole utterance."""
    config = yaml.safe_load((packed / "config.yaml").read_text(encoding="utf-8")) or {}
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict) or model.get("encoder") != "contextual_block_conformer":
        return False
    block_size = (model.get("encoder_conf") or {}).get("block_size", _DEFAULT_BLOCK_SIZE)
    return (
        isinstance(block_size, int) and block_size > 0 and model.get("normalize") != "utterance_mvn"
    )


def pack_demo(
    packed_model_dir: Pathlike,
    out_dir: Pathlike,
    *,
    title: str,
    overwrite: bool = False,
    trust_remote_code: bool = False,
) -> Path:
    """Build a Gradio Space folder at ``out_dir`` around a packed model folder.

    The packed folder is verified against its manifest first, copied to ``model/`` and
    verified again there. The Space is staged next to ``out_dir`` and renamed into place;
    an existing ``out_dir`` is replaced only with ``overwrite=True``.

    ``trust_remote_code=True`` makes ``app.py`` load a model whose block names its own
    code (``class_path``); the Space then runs that code. Off by default.

    A model whose encoder streams (see the module docstring) gets a live microphone tab
    besides the record-or-upload one; other models get the record-or-upload app only.

    Returns:
        ``out_dir`` as a ``Path``.
    """
    packed, out_dir = Path(packed_model_dir), Path(out_dir)
    if not title.strip():
        raise PublishError("title is empty; pass e.g. title='LibriSpeech Conformer ASR'.")
    verify_manifest(packed)
    sample_rate = _sample_rate(packed)
    license = _read_front_matter(packed / "README.md").get("license")
    tts = _task(packed) == "tts"  # a text-to-speech model: the app speaks typed text
    live = not tts and _streams(packed)  # a streaming encoder: a live microphone tab too
    with staged_dir(out_dir, overwrite=overwrite, what="pack_demo") as staging:
        shutil.copytree(packed, staging / _MODEL_SUBDIR)
        verify_manifest(staging / _MODEL_SUBDIR)
        (staging / "README.md").write_text(
            _space_readme(
                title=title,
                license=license if isinstance(license, str) else None,
                tts=tts,
                live=live,
            ),
            encoding="utf-8",
        )
        (staging / "app.py").write_text(
            render_tts_app(title=title, sample_rate=sample_rate, gradio_version=GRADIO_VERSION)
            if tts
            else render_app(
                title=title,
                sample_rate=sample_rate,
                trust_remote_code=trust_remote_code,
                gradio_version=GRADIO_VERSION,
                live=live,
            ),
            encoding="utf-8",
        )
        (staging / "requirements.txt").write_text(_requirements(), encoding="utf-8")
    return out_dir


def upload_demo(
    demo_dir: Pathlike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload ESPnet demo Space (espnet-publish)",
    endpoint: str | None = None,
    overwrite: bool = False,
) -> str:
    """Upload a folder made by :func:`pack_demo` to a Gradio Space; return the Space URL.

    Order: resolve the token (first, before any other work), validate ``repo_id``, check
    the folder has ``app.py`` and a verified ``model/``, then ``create_repo(repo_type=
    "space", space_sdk="gradio")`` (an existing Space is refused unless ``overwrite``) and
    ``upload_folder``.
    """
    resolved = resolve_token(token)
    validate_repo_id(repo_id)
    folder = Path(demo_dir)
    if not (folder / "app.py").is_file():
        raise PublishError(
            f"{folder / 'app.py'} not found: {folder} is not a demo folder; "
            f"create one with espnet_publish.pack_demo(...)."
        )
    verify_manifest(folder / _MODEL_SUBDIR)
    return upload_folder_to_hub(
        folder,
        repo_id,
        token=resolved,
        repo_type="space",
        private=private,
        commit_message=commit_message,
        space_sdk="gradio",
        endpoint=endpoint,
        overwrite=overwrite,
    )
