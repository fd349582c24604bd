"""pack_model(..., lm_dir=...): the pack carries its language model, from_pretrained fuses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from espnet_infer import DecodeConfig, Speech2Text
from espnet_infer.testing import tiny_lm_folder
from espnet_publish import PublishError, pack_model, verify_manifest
from espnet_publish.testing import tiny_asr_model_folder

# An untrained model's hypotheses run long: cap them at half the encoder frames.
DECODE = {"method": "beam_search", "beam_size": 3, "ctc_weight": 0.3, "maxlenratio": 0.5}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    asr = tiny_asr_model_folder(root / "asr")
    return asr, tiny_lm_folder(root / "lm", asr, favour="o")


@pytest.fixture(scope="module")
def waves() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 12000)]


def _inference_yaml(path: Path, **decode: object) -> Path:
    path.write_text("# resolved by a test\n" + yaml.safe_dump(
        {"model_dir": ".", "test_sets": {"test": "data/test"}, "output_dir": "exp/infer",
         "decode": {**DECODE, **decode}}))
    return path


@pytest.fixture(scope="module")
def packed(folders: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    asr, lm = folders
    root = tmp_path_factory.mktemp("packed")
    inference = _inference_yaml(root / "inference.yaml", lm=str(lm), lm_weight=1.0)
    return pack_model(asr, root / "packed", model_name="tiny", lm_dir=lm, repo_id="me/tiny",
                      extra_files={"inference.yaml": inference}, verify=True)


def test_the_pack_carries_the_lm_with_its_own_manifest(packed: Path) -> None:
    assert sorted(p.relative_to(packed / "lm").as_posix() for p in (packed / "lm").rglob("*")
                  if p.is_file()) == ["config.yaml", "meta.yaml", "model.safetensors",
                                      "tokenizer/tokenizer.yaml", "tokenizer/tokens.txt"]
    verify_manifest(packed)
    verify_manifest(packed / "lm")
    listed = {f["path"] for f in yaml.safe_load((packed / "meta.yaml").read_text())["files"]}
    assert {"lm/model.safetensors", "lm/meta.yaml", "lm/config.yaml"} <= listed
    text = (packed / "inference.yaml").read_text()
    assert text.startswith("# resolved by a test\n# decode.lm: the language model packed in lm/")
    decode = yaml.safe_load(text)["decode"]
    assert decode["lm"] == "lm" and decode["lm_weight"] == 1.0 and decode["beam_size"] == 3


def test_the_card_names_the_lm_and_its_weight(packed: Path) -> None:
    card = (packed / "README.md").read_text()
    assert "| Language model | seq_rnn (nlayers 1, unit 16)" in card and "`lm/`" in card
    assert "| LM weight | 1.0 |" in card
    assert "lm=False" in card and "lm_weight=1.0" in card
    snippet = card.split("```python\n")[1].split("```")[0]
    assert "lm='lm'" not in snippet and "lm_weight=1.0" in snippet


def test_from_pretrained_fuses_the_packed_lm_by_default(
    folders: tuple[Path, Path], packed: Path, waves: list[np.ndarray]
) -> None:
    asr, lm = folders
    decode = DecodeConfig(**DECODE)
    s2t = Speech2Text.from_pretrained(packed, **DECODE)
    assert s2t.uses_lm and s2t.decode.lm == str(packed / "lm") and s2t.decode.lm_weight == 1.0
    want = Speech2Text(asr, decode=decode, lm=lm, lm_weight=1.0).transcribe(waves)
    plain = Speech2Text(asr, decode=decode).transcribe(waves)
    assert want != plain
    assert s2t.transcribe(waves) == want
    off = Speech2Text.from_pretrained(packed, lm=False, **DECODE)
    assert not off.uses_lm and off.transcribe(waves) == plain
    assert not Speech2Text.from_pretrained(packed, lm_weight=0.0, **DECODE).uses_lm
    assert Speech2Text.from_pretrained(packed, lm_weight=0.2, **DECODE).decode.lm_weight == 0.2
    assert not Speech2Text.from_pretrained(packed, method="ctc_greedy").uses_lm


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_tampered_lm_in_a_pack_is_refused(packed: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(packed, tmp_path / "copy"))
    _flip_byte(copy / "lm" / "model.safetensors")
    with pytest.raises(ValueError, match=r"lm/model\.safetensors does not match .*lm/meta\.yaml"):
        Speech2Text.from_pretrained(copy, **DECODE)
    assert not Speech2Text.from_pretrained(copy, lm=False, **DECODE).uses_lm


def test_a_packed_decode_lm_outside_the_pack_is_refused(packed: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(packed, tmp_path / "copy"))
    doc = yaml.safe_load((copy / "inference.yaml").read_text())
    doc["decode"]["lm"] = "../elsewhere"
    (copy / "inference.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match=r"inference\.yaml does not match"):
        Speech2Text.from_pretrained(copy, **DECODE)
    with pytest.raises(ValueError, match="points outside the packed folder"):
        Speech2Text.from_pretrained(copy, verify=False, **DECODE)


def test_an_lm_with_another_tokenizer_is_not_packed(folders: tuple[Path, Path], tmp_path: Path) -> None:
    asr, _ = folders
    other_asr = tiny_asr_model_folder(tmp_path / "other_asr")
    (other_asr / "tokenizer" / "tokens.txt").write_text("<blank>\n<unk>\na\nb\n<sos/eos>\n")
    lm = tiny_lm_folder(tmp_path / "lm", other_asr)
    with pytest.raises(PublishError) as err:
        pack_model(asr, tmp_path / "p", model_name="m", lm_dir=lm, lm_weight=0.5)
    message = str(err.value)
    assert str(lm / "tokenizer" / "tokens.txt") in message and "vocab_size 5" in message
    assert str(asr / "tokenizer" / "tokens.txt") in message
    assert not (tmp_path / "p").exists()


def test_an_lm_needs_a_weight_and_an_unpacked_decode_lm_is_refused(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    asr, lm = folders
    with pytest.raises(PublishError, match="needs the weight it is decoded with"):
        pack_model(asr, tmp_path / "p", model_name="m", lm_dir=lm)
    inference = _inference_yaml(tmp_path / "inference.yaml", lm=str(lm), lm_weight=0.4)
    with pytest.raises(PublishError, match=rf"decode.lm = '{lm}'.*lm_dir="):
        pack_model(asr, tmp_path / "p", model_name="m", extra_files={"inference.yaml": inference})
    with pytest.raises(PublishError, match="task is None, not 'lm'"):
        pack_model(asr, tmp_path / "p", model_name="m", lm_dir=asr, lm_weight=0.5)
    assert not (tmp_path / "p").exists()


def test_without_inference_yaml_the_pack_writes_the_decode_lm(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    asr, lm = folders
    out = pack_model(asr, tmp_path / "p", model_name="m", lm_dir=lm, lm_weight=0.6, verify=True)
    assert yaml.safe_load((out / "inference.yaml").read_text()) == {
        "decode": {"lm": "lm", "lm_weight": 0.6}}
    s2t = Speech2Text.from_pretrained(out, **DECODE)
    assert s2t.uses_lm and s2t.decode.lm_weight == 0.6


def test_the_demo_app_fuses_the_packed_lm(
    folders: tuple[Path, Path], packed: Path, tmp_path: Path, tiny_shards: Path
) -> None:
    import importlib.util

    from espnet_data.audio import read_audio, resample
    from espnet_publish import pack_demo

    asr, lm = folders
    demo = pack_demo(packed, tmp_path / "space", title="tiny")
    spec = importlib.util.spec_from_file_location("space_app_lm", demo / "app.py")
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    flac = sorted((tiny_shards.parent / "audio").glob("*.flac"))[0]
    s2t = app.speech2text()
    assert s2t.uses_lm and s2t.decode.lm == str(demo / "model" / "lm")
    wav, rate = read_audio(flac, channel=None)
    want = Speech2Text(asr, decode=DecodeConfig(**DECODE), lm=lm, lm_weight=1.0)
    assert app.transcribe(str(flac)) == want.transcribe([resample(wav, rate, 16000)])[0]


def test_an_lm_packs_alone_and_loads_from_the_hub(
    folders: tuple[Path, Path], tmp_path: Path, waves: list[np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pack_model(<LM folder>) packs the LM by itself, with an LM's card; Speech2Text(...,
    lm="hf://owner/name") fetches it (here from huggingface_hub's cache, offline)."""
    import shutil

    import huggingface_hub.constants

    asr, lm = folders
    out = pack_model(lm, tmp_path / "packed_lm", model_name="tiny-lm", repo_id="me/tiny-lm",
                     verify=True)
    assert {p.name for p in out.iterdir()} == {"config.yaml", "model.safetensors", "tokenizer",
                                               "README.md", "meta.yaml"}
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["tags"] == ["espnet", "language-model"] and "pipeline_tag" not in front
    assert "An ESPnet language model (en) for shallow fusion" in card
    assert "| Language model | seq_rnn (nlayers 1, unit 16)" in card and "| Encoder" not in card
    assert 'lm="hf://me/tiny-lm", lm_weight=0.3)' in card and "stats.npz" not in card
    with pytest.raises(PublishError, match="lm_dir packs a language model with an ASR model"):
        pack_model(lm, tmp_path / "p", model_name="m", lm_dir=lm, lm_weight=0.5)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--me--tiny-lm"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(out, repo / "snapshots" / commit)
    decode = DecodeConfig(**DECODE)
    s2t = Speech2Text(asr, decode=decode, lm="hf://me/tiny-lm", lm_weight=1.0)
    assert s2t.lm is not None and s2t.lm.path == repo / "snapshots" / commit
    want = Speech2Text(asr, decode=decode, lm=lm, lm_weight=1.0).transcribe(waves)
    assert s2t.transcribe(waves) == want
