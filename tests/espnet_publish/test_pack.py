"""pack_model: folder validation, copies, manifest, model card, overwrite policy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from espnet_publish import PublishError, pack_model, verify_manifest
from espnet_publish.testing import dummy_model_folder, dummy_scores


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return dummy_model_folder(tmp_path / "model", with_stats=True)


def _front_matter(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text[4 : text.index("\n---\n", 4)])


def test_pack_writes_manifest_and_card_with_scores(model_dir: Path, tmp_path: Path) -> None:
    scores = dummy_scores(tmp_path / "scores.json")
    inference = tmp_path / "inference.yaml"
    inference.write_text("beam_size: 4\n")
    out = pack_model(
        model_dir,
        tmp_path / "packed",
        model_name="tiny-asr",
        extra_files={"scores.json": scores, "inference.yaml": inference},
    )
    assert out == tmp_path / "packed"
    manifest = json.loads((out / "MANIFEST.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert paths == {
        "config.yaml",
        "model.pt",
        "tokenizer/tokens.txt",
        "stats.npz",
        "scores.json",
        "inference.yaml",
        "README.md",
    }
    entry = next(f for f in manifest["files"] if f["path"] == "model.pt")
    assert entry["size"] == (model_dir / "model.pt").stat().st_size
    assert len(entry["sha256"]) == 64
    assert "torch" in manifest["packages"] and "espnet-publish" in manifest["packages"]

    meta = _front_matter(out / "README.md")
    assert meta["license"] == "cc-by-4.0" and meta["language"] == ["en"]
    assert meta["library_name"] == "espnet"
    assert meta["tags"] == ["espnet", "automatic-speech-recognition"]
    results = meta["model-index"][0]["results"]
    clean = next(r for r in results if r["dataset"]["name"] == "test_clean")
    assert {"type": "wer", "value": 3.25, "name": "WER"} in clean["metrics"]
    body = (out / "README.md").read_text()
    assert "| test_clean | 3.25 | 1.50 |" in body
    assert "conformer" in body and "load_model_folder" in body and "```python" in body
    verify_manifest(out)
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]


def test_card_without_scores_has_no_metrics(model_dir: Path, tmp_path: Path) -> None:
    out = pack_model(model_dir, tmp_path / "p", model_name="m", license="apache-2.0", language="de")
    meta = _front_matter(out / "README.md")
    assert meta["license"] == "apache-2.0" and meta["language"] == ["de"]
    assert "model-index" not in meta and "metrics" not in meta


def test_missing_tokenizer_file_names_file_and_key(model_dir: Path, tmp_path: Path) -> None:
    (model_dir / "tokenizer" / "tokens.txt").unlink()
    with pytest.raises(PublishError, match=r"tokens\.txt.*tokenizer\.token_list"):
        pack_model(model_dir, tmp_path / "packed", model_name="m")
    assert not (tmp_path / "packed").exists()


def test_missing_config_and_bad_reference(model_dir: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((model_dir / "config.yaml").read_text())
    config["tokenizer"]["token_list"] = "../outside.txt"
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(PublishError, match=r"tokenizer\.token_list.*relative"):
        pack_model(model_dir, tmp_path / "p", model_name="m")
    (model_dir / "config.yaml").unlink()
    with pytest.raises(PublishError, match=r"config\.yaml not found"):
        pack_model(model_dir, tmp_path / "p", model_name="m")


def test_refuses_overwrite_then_replaces(model_dir: Path, tmp_path: Path) -> None:
    out = pack_model(model_dir, tmp_path / "packed", model_name="first")
    (out / "marker.txt").write_text("old")
    with pytest.raises(PublishError, match="overwrite=True"):
        pack_model(model_dir, out, model_name="second")
    assert (out / "marker.txt").exists()
    pack_model(model_dir, out, model_name="second", overwrite=True)
    assert not (out / "marker.txt").exists()
    assert json.loads((out / "MANIFEST.json").read_text())["model_name"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "packed"]


def test_tampering_detected(model_dir: Path, tmp_path: Path) -> None:
    out = pack_model(model_dir, tmp_path / "packed", model_name="m")
    (out / "tokenizer" / "tokens.txt").write_text("x\ny\nz\n")
    with pytest.raises(PublishError, match=r"tokenizer/tokens\.txt"):
        verify_manifest(out)


def test_unlisted_and_missing_files_detected(model_dir: Path, tmp_path: Path) -> None:
    out = pack_model(model_dir, tmp_path / "packed", model_name="m")
    (out / "stats.npz").unlink()
    (out / "notes.txt").write_text("added later")
    with pytest.raises(PublishError) as err:
        verify_manifest(out)
    assert "stats.npz: listed in the manifest but missing" in str(err.value)
    assert "notes.txt: present but not listed" in str(err.value)


def test_extra_file_cannot_replace_reserved_name(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PublishError, match="README.md"):
        pack_model(
            model_dir, tmp_path / "p", model_name="m", extra_files={"README.md": model_dir / "model.pt"}
        )


def test_verify_skips_cleanly_without_espnet_infer(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "espnet_infer", None)  # makes the import fail
    with pytest.warns(UserWarning, match="skipped the load check"):
        out = pack_model(model_dir, tmp_path / "p", model_name="m", verify=True)
    verify_manifest(out)


def test_verify_load_failure_writes_nothing(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    loaded: list[Path] = []

    def load_model_folder(folder: Path) -> None:
        loaded.append(Path(folder))
        raise ValueError("vocab_size mismatch")

    fake = types.ModuleType("espnet_infer")
    fake.load_model_folder = load_model_folder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "espnet_infer", fake)
    with pytest.raises(PublishError, match="vocab_size mismatch"):
        pack_model(model_dir, tmp_path / "p", model_name="m", verify=True)
    assert len(loaded) == 1 and (loaded[0] / "MANIFEST.json").name == "MANIFEST.json"
    assert not (tmp_path / "p").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
