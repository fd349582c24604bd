"""pack_demo: Gradio Space folder contents, its transcribe function, the live microphone
functions of a streaming model's app; upload_demo to a local Hub."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import huggingface_hub
import numpy as np
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
    reqs = [
        line
        for line in (demo / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    # what app.py imports, at compatible ranges; Gradio comes from sdk_version
    assert reqs == [
        "espnet-data>=0.1.0,<0.2",
        "espnet-infer>=0.1.0,<0.2",
        "numpy>=1.26",
        "pyyaml>=6",
    ]
    verify_manifest(demo / "model")
    app = (demo / "app.py").read_text()
    compile(app, "app.py", "exec")
    assert (
        "Speech2Text.from_pretrained(MODEL_DIR" in app and "gr.Audio" in app and repr(title) in app
    )
    assert "SAMPLE_RATE = 16000" in app
    assert f'pip install -r requirements.txt "gradio=={GRADIO_VERSION}"' in app
    assert "TRUST_REMOTE_CODE = False" in app and "trust_remote_code=TRUST_REMOTE_CODE" in app
    trusted = pack_demo(packed, tmp_path / "space2", title=title, trust_remote_code=True)
    assert "TRUST_REMOTE_CODE = True" in (trusted / "app.py").read_text()
    assert "streaming=True" not in app and "live_chunk" not in app  # not a streaming encoder
    assert "Live" not in text


def _with_model_block(model_dir: Path, **changes: object) -> Path:
    config = yaml.safe_load((model_dir / "config.yaml").read_text(encoding="utf-8"))
    config["model"].update(changes)
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return model_dir


def test_pack_demo_gives_a_streaming_encoder_a_live_tab(tmp_path: Path) -> None:
    def demo_of(name: str, **changes: object) -> Path:
        model = _with_model_block(dummy_model_folder(tmp_path / f"{name}_model"), **changes)
        packed = pack_model(model, tmp_path / f"{name}_packed", model_name="m")
        return pack_demo(packed, tmp_path / f"{name}_space", title="t")

    live = demo_of("live", encoder="contextual_block_conformer", normalize="global_mvn")
    app = (live / "app.py").read_text()
    compile(app, "app.py", "exec")
    assert 'gr.Audio(sources=["microphone"], streaming=True' in app
    assert ".stream(live_chunk" in app and ".stop_recording(live_stop" in app
    assert "def transcribe(" in app and 'gr.Tab("Record or upload")' in app  # kept
    assert "*Live* tab" in (live / "README.md").read_text()
    # blocks switched off, or per-utterance MVN (needs the whole utterance): no live tab
    for name, changes in {
        "off": {"encoder_conf": {"block_size": 0}},
        "mvn": {"normalize": "utterance_mvn"},
    }.items():
        app = (
            demo_of(name, encoder="contextual_block_conformer", **changes) / "app.py"
        ).read_text()
        assert "streaming=True" not in app and "live_chunk" not in app, name


def test_pack_demo_refuses_overwrite_and_unpacked_input(packed: Path, tmp_path: Path) -> None:
    pack_demo(packed, tmp_path / "space", title="t")
    with pytest.raises(PublishError, match="overwrite=True"):
        pack_demo(packed, tmp_path / "space", title="t")
    pack_demo(packed, tmp_path / "space", title="t2", overwrite=True)
    assert "t2" in (tmp_path / "space" / "README.md").read_text()
    with pytest.raises(PublishError, match="meta.yaml"):
        pack_demo(tmp_path / "model", tmp_path / "space2", title="t")


def _load_app(demo: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN202 (a module)
    """The demo's app.py as a module, with Gradio made unimportable."""
    monkeypatch.setitem(sys.modules, "gradio", None)  # importing gradio would fail
    spec = importlib.util.spec_from_file_location("space_app", demo / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def test_transcribe_without_gradio(
    tmp_path: Path, tiny_shards: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from espnet_data.audio import read_audio
    from espnet_infer import DecodeConfig, Speech2Text

    model_dir = tiny_asr_model_folder(tmp_path / "model")
    inference = tmp_path / "inference.yaml"
    inference.write_text("decode: {method: beam_search, beam_size: 2, ctc_weight: 0.5}\n")
    packed = pack_model(
        model_dir, tmp_path / "packed", model_name="m", extra_files={"inference.yaml": inference}
    )
    demo = pack_demo(packed, tmp_path / "space", title="t")
    app = _load_app(demo, monkeypatch)
    flac = sorted((tiny_shards.parent / "audio").glob("*.flac"))[0]
    want = Speech2Text(
        model_dir, decode=DecodeConfig(method="beam_search", beam_size=2, ctc_weight=0.5)
    ).transcribe([read_audio(flac)[0]])
    assert app.transcribe(str(flac)) == want[0]
    assert app.speech2text().decode.beam_size == 2  # the packed inference.yaml is used
    assert "Record or upload" in app.transcribe(None)
    with pytest.raises(ImportError):
        app.build_demo()


def test_live_microphone_without_gradio(
    tmp_path: Path, tiny_shards: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gradio's microphone chunks (int16, 44.1 kHz, some stereo, some empty) fed while
    recording give, when recording stops, Speech2TextStreaming's transcript of the whole
    recording; bad chunks are refused without harm; the next recording is a new stream."""
    from espnet_data.audio import read_audio, resample
    from espnet_infer import DecodeConfig, Speech2Text, Speech2TextStreaming

    model_dir = tiny_asr_model_folder(tmp_path / "model", streaming=True)
    inference = tmp_path / "inference.yaml"
    inference.write_text(
        "decode: {beam_size: 2, ctc_weight: 0.5, streaming: {mode: joint, chunk_ms: 320}}\n"
    )
    packed = pack_model(
        model_dir, tmp_path / "packed", model_name="m", extra_files={"inference.yaml": inference}
    )
    app = _load_app(pack_demo(packed, tmp_path / "space", title="t"), monkeypatch)

    flac = sorted((tiny_shards.parent / "audio").glob("*.flac"))[1]
    wav, rate = read_audio(flac)
    recording = np.round(resample(wav, rate, 44100) * 32767).astype(np.int16)
    reference = Speech2TextStreaming.from_speech2text(
        Speech2Text(model_dir, decode=DecodeConfig(beam_size=2, ctc_weight=0.5)), mode="joint"
    )
    want = reference.transcribe(resample(recording / np.float32(32768), 44100, 16000)).text
    assert want, "the sharpened tiny model should emit tokens"

    def record(seed: int, session=None):  # noqa: ANN001, ANN202
        rng = np.random.default_rng(seed)
        position, partials = 0, []
        while position < recording.size:
            size = int(rng.integers(0, 44100))  # Gradio: about 0.5 s
            chunk = recording[position : position + size]
            if rng.random() < 0.3:
                chunk = np.stack([chunk, chunk], axis=1)  # stereo: mixed down
            session, text = app.live_chunk(session, (44100, chunk))
            partials.append(text)
            position += size
            if len(partials) == 2:  # bad chunks mid-recording: refused, nothing changes
                for bad in [
                    (44100, np.array([0.1, np.nan], np.float32)),
                    (44100, np.zeros(10, np.uint8)),
                    (16000, np.zeros(10, np.int16)),
                ]:
                    with pytest.raises(ValueError, match="microphone chunk"):
                        app.live_chunk(session, bad)
                assert app.live_chunk(session, None) == (session, text)
                assert app.live_chunk(session, (44100, np.zeros(0, np.int16))) == (session, text)
        return app.live_stop(session), partials

    (session, final), partials = record(0)
    assert final == want and partials[-1] and all(isinstance(t, str) for t in partials)
    assert app.live_stop(session) == (session, final)  # stopping twice changes nothing
    (again, final_again), _ = record(1, session)  # the next recording: a new stream
    assert again is not session and final_again == want
    assert app.live_stop(None) == (None, "")
    assert (
        app.speech2text_streaming().beam_size == 2 and app.speech2text_streaming().mode == "joint"
    )


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
