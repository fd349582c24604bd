"""pack_demo: Gradio Space folder contents; upload_demo with a fake HfApi."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
import yaml
from espnet_publish import PublishError, pack_demo, pack_model, upload_demo, verify_manifest
from espnet_publish.testing import dummy_model_folder


@pytest.fixture
def packed(tmp_path: Path) -> Path:
    return pack_model(dummy_model_folder(tmp_path / "model"), tmp_path / "packed", model_name="m")


def test_pack_demo_layout(packed: Path, tmp_path: Path) -> None:
    title = 'Tiny "ASR" demo'
    demo = pack_demo(packed, tmp_path / "space", title=title)
    text = (demo / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(text[4 : text.index("\n---\n", 4)])
    assert meta["title"] == title and meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["license"] == "cc-by-4.0"
    reqs = (demo / "requirements.txt").read_text().split()
    assert {"espnet-infer", "gradio"} <= set(reqs)
    verify_manifest(demo / "model")
    app = (demo / "app.py").read_text()
    compile(app, "app.py", "exec")
    assert "Speech2Text(MODEL_DIR" in app and "gr.Audio" in app and repr(title) in app
    assert "SAMPLE_RATE = 16000" in app


def test_pack_demo_refuses_overwrite_and_unpacked_input(packed: Path, tmp_path: Path) -> None:
    pack_demo(packed, tmp_path / "space", title="t")
    with pytest.raises(PublishError, match="overwrite=True"):
        pack_demo(packed, tmp_path / "space", title="t")
    pack_demo(packed, tmp_path / "space", title="t2", overwrite=True)
    assert "t2" in (tmp_path / "space" / "README.md").read_text()
    with pytest.raises(PublishError, match="MANIFEST.json"):
        pack_demo(tmp_path / "model", tmp_path / "space2", title="t")


def test_upload_demo(packed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    class FakeHfApi:
        def __init__(self, token: str | None = None) -> None:
            calls.append(("init", (), {"token": token}))

        def create_repo(self, *args: Any, **kwargs: Any) -> None:
            calls.append(("create_repo", args, kwargs))

        def upload_folder(self, *args: Any, **kwargs: Any) -> None:
            calls.append(("upload_folder", args, kwargs))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    demo = pack_demo(packed, tmp_path / "space", title="t")
    with pytest.raises(PublishError, match="hf auth login"):
        upload_demo(demo, "me/demo")
    assert calls == []
    with pytest.raises(PublishError, match="owner/name"):
        upload_demo(demo, "demo", token="hf_x")
    url = upload_demo(demo, "me/demo", token="hf_x")
    assert url == "https://huggingface.co/spaces/me/demo"
    assert calls[0] == ("init", (), {"token": "hf_x"})
    assert calls[1] == (
        "create_repo",
        ("me/demo",),
        {"repo_type": "space", "exist_ok": True, "private": False, "space_sdk": "gradio"},
    )
    assert calls[2][2]["repo_type"] == "space" and calls[2][2]["folder_path"] == str(demo)
