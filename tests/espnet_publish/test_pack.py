"""pack_model: folder validation, copies, manifest, model card, overwrite policy."""

from __future__ import annotations

import hashlib
import platform
import sys
from pathlib import Path

import pytest
import yaml
from espnet_publish import PublishError, pack_model, verify_manifest
from espnet_publish.testing import dummy_model_folder, dummy_scores, tiny_asr_model_folder


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
    manifest = yaml.safe_load((out / "meta.yaml").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert paths == {
        "config.yaml",
        "model.safetensors",
        "tokenizer/tokens.txt",
        "stats.npz",
        "scores.json",
        "inference.yaml",
        "README.md",
    }
    for entry in manifest["files"]:
        assert entry["size"] == (out / entry["path"]).stat().st_size
        assert entry["sha256"] == hashlib.sha256((out / entry["path"]).read_bytes()).hexdigest()
    assert {"torch", "espnet-publish", "safetensors"} <= set(manifest["packages"])
    assert manifest["python"] == platform.python_version()

    meta = _front_matter(out / "README.md")
    assert meta["license"] == "cc-by-4.0" and meta["language"] == ["en"]
    assert meta["library_name"] == "espnet-infer"  # not ESPnet2's loader
    assert meta["tags"] == ["espnet", "automatic-speech-recognition"]
    results = meta["model-index"][0]["results"]
    clean = next(r for r in results if r["dataset"]["name"] == "test_clean")
    assert {"type": "wer", "value": 3.25, "name": "WER"} in clean["metrics"]
    body = (out / "README.md").read_text()
    assert "| test_clean | 3.25 | 1.50 |" in body
    assert "conformer" in body and "```python" in body
    assert 'Speech2Text.from_pretrained("hf://<owner>/tiny-asr")\n' in body  # no decode block
    assert "a plain string is a local folder only" in body
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
    assert yaml.safe_load((out / "meta.yaml").read_text())["model_name"] == "second"
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

    def load_model_folder(folder: Path, *, trust_remote_code: bool) -> None:
        assert trust_remote_code is False  # the default
        loaded.append(Path(folder))
        raise ValueError("vocab_size mismatch")

    fake = types.ModuleType("espnet_infer")
    fake.load_model_folder = load_model_folder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "espnet_infer", fake)
    with pytest.raises(PublishError, match="vocab_size mismatch"):
        pack_model(model_dir, tmp_path / "p", model_name="m", verify=True)
    assert len(loaded) == 1 and loaded[0].name.startswith(".p.staging-")  # checked before the swap
    assert not (tmp_path / "p").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def _pack_real(tmp_path: Path) -> tuple[Path, Path]:
    model_dir = tiny_asr_model_folder(tmp_path / "model")
    curves = tmp_path / "curves"
    curves.mkdir()
    (curves / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\n fake png bytes")
    inference = tmp_path / "inference.yaml"
    inference.write_text("decode: {method: beam_search, beam_size: 2, ctc_weight: 0.5}\n")
    packed = pack_model(model_dir, tmp_path / "packed", model_name="tiny",
                        extra_files={"inference.yaml": inference},
                        images=[curves / "loss.png"], repo_id="me/tiny", verify=True)
    return model_dir, packed


def test_packed_weights_are_safetensors_and_decode_like_the_original(
    tmp_path: Path, tiny_shards: Path
) -> None:
    from espnet_data.audio import read_audio
    from espnet_infer import DecodeConfig, Speech2Text
    from safetensors.torch import load_file

    model_dir, packed = _pack_real(tmp_path)
    assert (packed / "model.safetensors").is_file() and not (packed / "model.pt").exists()
    import torch

    original = torch.load(model_dir / "model.pt", weights_only=True)
    converted = load_file(packed / "model.safetensors")
    assert original.keys() == converted.keys()
    assert all(torch.equal(original[k], converted[k]) for k in original)
    assert (packed / "images" / "loss.png").is_file()
    body = (packed / "README.md").read_text()
    assert "![loss](images/loss.png)" in body
    load = ('s2t = Speech2Text.from_pretrained("hf://me/tiny", method=\'beam_search\', beam_size=2, '
            "ctc_weight=0.5)")
    assert load in body

    audios = [read_audio(p)[0] for p in sorted((tiny_shards.parent / "audio").glob("*.flac"))[:3]]
    decode = DecodeConfig(method="ctc_greedy")  # an untrained model's beams run to full length
    want = Speech2Text(model_dir, decode=decode).transcribe(audios)
    assert Speech2Text(packed, decode=decode).transcribe(audios) == want

    # the card's snippet, pointed at the local folder and a real file, gives the same
    snippet = body.split("```python\n")[1].split("```")[0]
    flac = sorted((tiny_shards.parent / "audio").glob("*.flac"))[0]
    snippet = snippet.replace('"hf://me/tiny"', repr(str(packed))).replace('"speech.wav"', repr(str(flac)))
    snippet = snippet.replace("method='beam_search', beam_size=2, ctc_weight=0.5", "method='ctc_greedy'")
    printed: list[str] = []
    exec(snippet, {"print": printed.append})  # noqa: S102 (our own generated snippet)
    assert printed == [want[0]]


def test_non_image_curve_is_rejected(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PublishError, match="not an image"):
        pack_model(model_dir, tmp_path / "p", model_name="m", images=[model_dir / "config.yaml"])


def test_pack_transcribes_a_file_as_infer_did(tmp_path: Path, tiny_shards: Path) -> None:
    """The acceptance check: Speech2Text on the pack gives infer's hypothesis for each file."""
    from espnet_data.audio import read_audio, resample
    from espnet_infer import DecodeConfig, InferenceConfig, Speech2Text, run_inference
    from espnet_infer.scoring import read_text_file

    model_dir, packed = _pack_real(tmp_path)
    decode = DecodeConfig(method="ctc_greedy")  # an untrained model's beams run to full length
    run_inference(InferenceConfig(model_dir=str(model_dir), test_sets={"t": str(tiny_shards)},
                                  output_dir=str(tmp_path / "infer"), decode=decode))
    hyps = read_text_file(tmp_path / "infer" / "t" / "hyp.txt")
    s2t = Speech2Text(packed, decode=decode)
    assert len(hyps) == 6 and all(hyps.values())
    for key, hyp in hyps.items():
        wav, rate = read_audio(tiny_shards.parent / "audio" / f"{key}.flac", channel=None)
        assert s2t.transcribe([resample(wav, rate, s2t.sample_rate)])[0] == hyp, key


def test_card_says_how_the_scores_were_decoded() -> None:
    from espnet_publish.card import render_model_card

    card = render_model_card(config={"model": {}}, model_name="m", license="mit", language="en",
                             scores={"test": {"wer": 5.0, "cer": 2.0}}, repo_id="me/m",
                             decode={"method": "beam_search", "beam_size": 10, "nbest": 1})
    assert "| test | 5.00 | 2.00 |" in card
    assert "Decoded as `inference.yaml` says: method beam_search, beam_size 10." in card
    assert 'Speech2Text.from_pretrained("hf://me/m", method=\'beam_search\', beam_size=10)' in card


def test_weights_that_are_not_a_state_dict_are_refused(model_dir: Path, tmp_path: Path) -> None:
    import torch

    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 3}, model_dir / "model.pt")
    with pytest.raises(PublishError, match=r"model\.pt: entries \['epoch', 'model'\] are not tensors"):
        pack_model(model_dir, tmp_path / "p", model_name="m")
    assert not (tmp_path / "p").exists()


def rebuild(vocab_size: int, block: dict) -> object:
    """A model factory outside espnet_model, for a ``class_path`` model block."""
    from espnet_model import build_asr_model

    return build_asr_model(block, vocab_size=vocab_size)


def _set_model_block(model_dir: Path, block: dict) -> None:
    path = model_dir / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["model"] = block
    path.write_text(yaml.safe_dump(config))


def test_verify_does_not_run_the_code_a_config_names(tmp_path: Path) -> None:
    """pack_model(verify=True) loads the pack: a class_path such as os.system must not run."""
    model_dir = tiny_asr_model_folder(tmp_path / "model")
    marker = tmp_path / "ran"
    _set_model_block(model_dir, {"class_path": "os.system",
                                 "init_args": {"command": f"touch {marker}"}})
    with pytest.raises(PublishError, match=r"model\.class_path = 'os\.system'.*trust_remote_code"):
        pack_model(model_dir, tmp_path / "p", model_name="m", verify=True)
    assert not marker.exists() and not (tmp_path / "p").exists()


def test_verify_builds_a_custom_model_when_trusted(tmp_path: Path) -> None:
    from espnet_publish.testing import TINY_ASR_MODEL

    model_dir = tiny_asr_model_folder(tmp_path / "model")
    _set_model_block(model_dir, {"class_path": f"{__name__}.rebuild",
                                 "init_args": {"block": TINY_ASR_MODEL}})
    with pytest.raises(PublishError, match="trust_remote_code"):
        pack_model(model_dir, tmp_path / "p", model_name="m", verify=True)
    pack_model(model_dir, tmp_path / "p", model_name="m", verify=True, trust_remote_code=True)
    verify_manifest(tmp_path / "p")


def test_a_tampered_pack_does_not_load(tmp_path: Path) -> None:
    """One flipped byte in model.safetensors: Speech2Text names the file and both digests."""
    from espnet_infer import Speech2Text

    _, packed = _pack_real(tmp_path)
    weights = packed / "model.safetensors"
    meta = yaml.safe_load((packed / "meta.yaml").read_text())
    expected = next(f["sha256"] for f in meta["files"] if f["path"] == "model.safetensors")
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x40
    weights.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(ValueError) as err:
        Speech2Text(packed)
    assert str(weights) in str(err.value)
    assert f"sha256 {actual}, expected {expected}" in str(err.value)
    Speech2Text(packed, verify=False)  # documented: load it anyway
