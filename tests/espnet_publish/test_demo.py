"""pack_demo: Gradio Space folder contents, its transcribe function; upload_demo to a local Hub."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import huggingface_hub
import pytest
import yaml
from espnet_publish import PublishError, pack_demo, pack_model, upload_demo, verify_manifest
from espnet_publish.demo import GRADIO_VERSION
from espnet_publish.testing import dummy_model_folder, tiny_asr_model_folder

from ._hub_server import LocalHub


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
    assert meta["sdk_version"] == GRADIO_VERSION and meta["python_version"] == "3.11"
    reqs = [line for line in (demo / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    # what app.py imports, at compatible ranges; Gradio comes from sdk_version
    assert reqs == ["espnet-data>=0.1.0,<0.2", "espnet-infer>=0.1.0,<0.2", "pyyaml>=6"]
    verify_manifest(demo / "model")
    app = (demo / "app.py").read_text()
    compile(app, "app.py", "exec")
    assert "Speech2Text.from_pretrained(MODEL_DIR" in app and "gr.Audio" in app and repr(title) in app
    assert "SAMPLE_RATE = 16000" in app
    assert f'pip install -r requirements.txt "gradio=={GRADIO_VERSION}"' in app
    assert "TRUST_REMOTE_CODE = False" in app and "trust_remote_code=TRUST_REMOTE_CODE" in app
    trusted = pack_demo(packed, tmp_path / "space2", title=title, trust_remote_code=True)
    assert "TRUST_REMOTE_CODE = True" in (trusted / "app.py").read_text()


def test_pack_demo_refuses_overwrite_and_unpacked_input(packed: Path, tmp_path: Path) -> None:
    pack_demo(packed, tmp_path / "space", title="t")
    with pytest.raises(PublishError, match="overwrite=True"):
        pack_demo(packed, tmp_path / "space", title="t")
    pack_demo(packed, tmp_path / "space", title="t2", overwrite=True)
    assert "t2" in (tmp_path / "space" / "README.md").read_text()
    with pytest.raises(PublishError, match="meta.yaml"):
        pack_demo(tmp_path / "model", tmp_path / "space2", title="t")


def test_transcribe_without_gradio(
    tmp_path: Path, tiny_shards: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from espnet_data.audio import read_audio
    from espnet_infer import DecodeConfig, Speech2Text

    model_dir = tiny_asr_model_folder(tmp_path / "model")
    inference = tmp_path / "inference.yaml"
    inference.write_text("decode: {method: beam_search, beam_size: 2, ctc_weight: 0.5}\n")
    packed = pack_model(model_dir, tmp_path / "packed", model_name="m",
                        extra_files={"inference.yaml": inference})
    demo = pack_demo(packed, tmp_path / "space", title="t")
    monkeypatch.setitem(sys.modules, "gradio", None)  # importing gradio would fail
    spec = importlib.util.spec_from_file_location("space_app", demo / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    flac = sorted((tiny_shards.parent / "audio").glob("*.flac"))[0]
    want = Speech2Text(model_dir, decode=DecodeConfig(method="beam_search", beam_size=2,
                                                      ctc_weight=0.5)).transcribe([read_audio(flac)[0]])
    assert app.transcribe(str(flac)) == want[0]
    assert app.speech2text().decode.beam_size == 2  # the packed inference.yaml is used
    assert "Record or upload" in app.transcribe(None)
    with pytest.raises(ImportError):
        app.build_demo()


def test_upload_demo(packed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    demo = pack_demo(packed, tmp_path / "space", title="t")
    with LocalHub(token="hf_x") as hub:
        with pytest.raises(PublishError, match="hf auth login"):
            upload_demo(demo, "me/demo", endpoint=hub.url)
        with pytest.raises(PublishError, match="owner/name"):
            upload_demo(demo, "demo", token="hf_x", endpoint=hub.url)
        assert hub.requests == []
        url = upload_demo(demo, "me/demo", token="hf_x", endpoint=hub.url)
        assert url == f"{hub.url}/spaces/me/demo"
        space = hub.repos[("space", "me/demo")]
        assert space.sdk == "gradio"
        assert space.files["main"] == {
            p.relative_to(demo).as_posix(): p.read_bytes() for p in demo.rglob("*") if p.is_file()
        }
        assert any(card.get("sdk") == "gradio" for card in hub.cards)
        with pytest.raises(PublishError, match="already exists"):
            upload_demo(demo, "me/demo", token="hf_x", endpoint=hub.url)


def test_the_space_gradio_is_the_locked_one() -> None:
    """sdk_version is the Gradio uv.lock holds (the one espnet-publish[demo] is tested with)."""
    import tomllib

    lock = tomllib.loads((Path(__file__).parents[2] / "uv.lock").read_text(encoding="utf-8"))
    locked = {p["name"]: p["version"] for p in lock["package"] if "version" in p}
    assert locked["gradio"] == GRADIO_VERSION
