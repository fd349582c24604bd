"""Token resolution and Hub upload against a local Hub on 127.0.0.1 (never the real one)."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
from espnet_publish import PublishError, pack_model, resolve_token, upload_model
from espnet_publish.testing import dummy_model_folder

from ._hub_server import LocalHub

TOKEN = "hf_secret_test_token_123"


@pytest.fixture
def hub() -> LocalHub:
    with LocalHub(token=TOKEN) as server:
        yield server


@pytest.fixture
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)


@pytest.fixture
def packed(tmp_path: Path) -> Path:
    return pack_model(dummy_model_folder(tmp_path / "model"), tmp_path / "packed", model_name="m")


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_resolve_token_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "stored")
    monkeypatch.setenv("HF_TOKEN", "env")
    assert resolve_token("explicit") == "explicit"
    assert resolve_token() == "env"
    monkeypatch.delenv("HF_TOKEN")
    assert resolve_token() == "stored"


def test_no_token_fails_before_any_work(no_token: None, hub: LocalHub, tmp_path: Path) -> None:
    with pytest.raises(PublishError) as err:
        resolve_token()
    assert "export HF_TOKEN=" in str(err.value) and "hf auth login" in str(err.value)
    # the folder does not even exist: the token check must come first
    with pytest.raises(PublishError, match="HF_TOKEN"):
        upload_model(tmp_path / "does-not-exist", "bad id", endpoint=hub.url)
    assert hub.requests == []


def test_upload_arrives_as_packed(
    no_token: None, hub: LocalHub, packed: Path, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with caplog.at_level(logging.DEBUG):
        url = upload_model(packed, "me/tiny-asr", token=TOKEN, private=True, endpoint=hub.url)
    assert url == f"{hub.url}/me/tiny-asr"
    repo = hub.repos[("model", "me/tiny-asr")]
    assert repo.private and len(repo.commits) == 1
    assert repo.files["main"] == _folder_bytes(packed)
    assert {"model.safetensors", "meta.yaml", "README.md", "config.yaml"} <= set(repo.files["main"])
    out = capsys.readouterr()
    assert TOKEN not in caplog.text + out.out + out.err  # the token is never logged


def test_existing_repo_refused_unless_overwrite(hub: LocalHub, packed: Path, tmp_path: Path) -> None:
    upload_model(packed, "me/tiny-asr", token=TOKEN, endpoint=hub.url)
    other = pack_model(dummy_model_folder(tmp_path / "model2"), tmp_path / "packed2",
                       model_name="second")
    with pytest.raises(PublishError, match=r"already exists.*overwrite: true") as err:
        upload_model(other, "me/tiny-asr", token=TOKEN, endpoint=hub.url)
    assert TOKEN not in str(err.value)
    repo = hub.repos[("model", "me/tiny-asr")]
    assert len(repo.commits) == 1
    upload_model(other, "me/tiny-asr", token=TOKEN, endpoint=hub.url, overwrite=True)
    assert len(repo.commits) == 2
    assert repo.files["main"]["meta.yaml"] == (other / "meta.yaml").read_bytes()


def test_endpoint_from_hf_endpoint(
    no_token: None, hub: LocalHub, packed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    url = upload_model(packed, "me/tiny-asr", revision="v2")
    assert url == f"{hub.url}/me/tiny-asr/tree/v2"
    assert hub.repos[("model", "me/tiny-asr")].files["v2"] == _folder_bytes(packed)


def test_wrong_token_is_explained_without_echoing_it(hub: LocalHub, packed: Path) -> None:
    with pytest.raises(PublishError, match="HTTP 401.*write token") as err:
        upload_model(packed, "me/tiny-asr", token="hf_wrong_one", endpoint=hub.url)
    assert "hf_wrong_one" not in str(err.value)
    assert hub.repos == {}


@pytest.mark.parametrize(
    "repo_id", ["no-owner", "a/b/c", "me/", "/name", "me/-bad", "me/bad..name", "me/sp ace"]
)
def test_bad_repo_id_rejected(hub: LocalHub, packed: Path, repo_id: str) -> None:
    with pytest.raises(PublishError, match="owner/name"):
        upload_model(packed, repo_id, token=TOKEN, endpoint=hub.url)
    assert hub.requests == []


def test_tampered_folder_not_uploaded(hub: LocalHub, packed: Path) -> None:
    (packed / "config.yaml").write_text("model: {}\n")
    with pytest.raises(PublishError, match="config.yaml"):
        upload_model(packed, "me/tiny-asr", token=TOKEN, endpoint=hub.url)
    assert hub.requests == []


@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")  # huggingface_hub's
def test_binaries_go_through_git_lfs(packed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As on the real Hub, the weights travel by the LFS batch API, not inside the commit."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # this server has no Xet
    with LocalHub(token=TOKEN, lfs_suffixes=(".safetensors", ".npz")) as hub:
        upload_model(packed, "me/tiny-asr", token=TOKEN, endpoint=hub.url)
        assert hub.repos[("model", "me/tiny-asr")].files["main"] == _folder_bytes(packed)
        weights = (packed / "model.safetensors").read_bytes()
        assert hub.lfs_objects == {hashlib.sha256(weights).hexdigest(): weights}
        assert [r[1] for r in hub.requests if r[0] == "PUT"] == [
            f"/lfs-upload/{hashlib.sha256(weights).hexdigest()}"]


@pytest.mark.slow  # a fresh interpreter importing torch: ~7 s
def test_anyone_loads_the_uploaded_model_with_espnet_infer(tmp_path: Path, tiny_shards: Path) -> None:
    """pack -> upload -> a fresh interpreter with HF_ENDPOINT set runs
    ``Speech2Text.from_pretrained("hf://me/tiny")`` and gets the original model's transcript."""
    from espnet_infer import Speech2Text
    from espnet_publish.testing import tiny_asr_model_folder

    model_dir = tiny_asr_model_folder(tmp_path / "model")
    packed = pack_model(model_dir, tmp_path / "packed", model_name="tiny", repo_id="me/tiny")
    flac = str(sorted((tiny_shards.parent / "audio").glob("*.flac"))[0])
    want = Speech2Text.from_pretrained(model_dir, method="ctc_greedy").transcribe(flac)
    code = (
        "import sys\n"
        "from espnet_infer import Speech2Text\n"
        "s2t = Speech2Text.from_pretrained('hf://me/tiny', method='ctc_greedy')\n"
        f"print(s2t.loaded.path)\nprint(s2t.transcribe({flac!r}))\n"
        "assert 'espnet_publish' not in sys.modules and 'lightning' not in sys.modules\n"
    )
    with LocalHub(token=TOKEN) as hub:
        upload_model(packed, "me/tiny", token=TOKEN, endpoint=hub.url)
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(tmp_path / "cache"),
               "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        env.pop("HF_HUB_OFFLINE", None)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    folder, text = out.stdout.splitlines()[-2:]
    assert text == want
    assert _folder_bytes(Path(folder)) == _folder_bytes(packed)
