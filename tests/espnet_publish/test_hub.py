"""Token resolution and Hub upload with a fake HfApi (the Hub is never contacted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
from espnet_publish import PublishError, pack_model, resolve_token, upload_model
from espnet_publish.testing import dummy_model_folder


class FakeHfApi:
    instances: list[FakeHfApi] = []

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        FakeHfApi.instances.append(self)

    def create_repo(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("create_repo", args, kwargs))
        return f"https://huggingface.co/{args[0]}"

    def create_branch(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("create_branch", args, kwargs))

    def upload_folder(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("upload_folder", args, kwargs))


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> type[FakeHfApi]:
    FakeHfApi.instances = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    return FakeHfApi


@pytest.fixture
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)


@pytest.fixture
def packed(tmp_path: Path) -> Path:
    return pack_model(dummy_model_folder(tmp_path / "model"), tmp_path / "packed", model_name="m")


def test_resolve_token_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "stored")
    monkeypatch.setenv("HF_TOKEN", "env")
    assert resolve_token("explicit") == "explicit"
    assert resolve_token() == "env"
    monkeypatch.delenv("HF_TOKEN")
    assert resolve_token() == "stored"


def test_no_token_fails_before_any_work(
    no_token: None, fake_api: type[FakeHfApi], tmp_path: Path
) -> None:
    with pytest.raises(PublishError) as err:
        resolve_token()
    assert "export HF_TOKEN=" in str(err.value) and "hf auth login" in str(err.value)
    # the folder does not even exist: the token check must come first
    with pytest.raises(PublishError, match="HF_TOKEN"):
        upload_model(tmp_path / "does-not-exist", "bad id")
    assert fake_api.instances == []


def test_upload_calls_create_repo_and_upload_folder(
    no_token: None, fake_api: type[FakeHfApi], packed: Path
) -> None:
    url = upload_model(packed, "me/tiny-asr", token="hf_x", private=True, commit_message="v1")
    assert url == "https://huggingface.co/me/tiny-asr"
    (api,) = fake_api.instances
    assert api.token == "hf_x"
    assert api.calls == [
        ("create_repo", ("me/tiny-asr",), {"repo_type": "model", "exist_ok": True, "private": True}),
        (
            "upload_folder",
            (),
            {
                "repo_id": "me/tiny-asr",
                "folder_path": str(packed),
                "repo_type": "model",
                "revision": None,
                "commit_message": "v1",
            },
        ),
    ]


def test_upload_with_env_token_and_revision(
    monkeypatch: pytest.MonkeyPatch, fake_api: type[FakeHfApi], packed: Path
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    url = upload_model(packed, "me/tiny-asr", revision="v2")
    assert url.endswith("/me/tiny-asr/tree/v2")
    (api,) = fake_api.instances
    assert api.token == "hf_env"
    assert [c[0] for c in api.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[2][2]["revision"] == "v2"


@pytest.mark.parametrize(
    "repo_id", ["no-owner", "a/b/c", "me/", "/name", "me/-bad", "me/bad..name", "me/sp ace"]
)
def test_bad_repo_id_rejected(fake_api: type[FakeHfApi], packed: Path, repo_id: str) -> None:
    with pytest.raises(PublishError, match="owner/name"):
        upload_model(packed, repo_id, token="hf_x")
    assert fake_api.instances == []


def test_tampered_folder_not_uploaded(fake_api: type[FakeHfApi], packed: Path) -> None:
    (packed / "config.yaml").write_text("model: {}\n")
    with pytest.raises(PublishError, match="config.yaml"):
        upload_model(packed, "me/tiny-asr", token="hf_x")
    assert fake_api.instances == []
