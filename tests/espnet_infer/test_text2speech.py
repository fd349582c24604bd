"""Text2Speech and batched synthesis: a tiny TTS folder and its pack, bad inputs, vocoders,
the runner's resumable results, and loading without Lightning."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import soundfile as sf
import torch
import yaml

from tests._tts_fixtures import FEATS, tiny_tts_folder, tts_data

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("t2s")
    data, tok = tts_data(root, {"train": 8, "test": 5})
    model = tiny_tts_folder(root / "model", tok)
    from espnet_publish import pack_model

    packed = pack_model(model, root / "packed", model_name="tiny-tts", verify=True)
    return {"data": data, "model": model, "packed": packed, "root": root}


def test_speaks_from_folder_and_pack(tiny: dict[str, Path]) -> None:
    from espnet_infer import Text2Speech

    for source in (tiny["model"], tiny["packed"]):
        tts = Text2Speech.from_pretrained(source, griffin_lim_iters=2)
        out = tts("my name is john smith.")
        assert tts.fs == 16000 and out["wav"].dim() == 1 and out["wav"].numel() > 0
        assert out["feat_gen"].shape == (int(out["duration"].sum()), FEATS["n_mels"])
        assert torch.isfinite(out["wav"]).all()


def test_long_text_is_split_at_punctuation(tiny: dict[str, Path]) -> None:
    from espnet_infer import Text2Speech

    tts = Text2Speech.from_pretrained(tiny["model"], griffin_lim_iters=2, max_chunk_chars=30)
    text = "the birch canoe slid on the smooth planks. glue the sheet to the dark blue background."
    chunks = tts.chunks(text)
    assert len(chunks) >= 3 and all(len(c) <= 30 for c in chunks) and " ".join(chunks) == text
    out = tts(text)
    parts = [tts(c)["feat_gen"].shape[0] for c in tts.chunks(text)]
    assert out["feat_gen"].shape[0] == sum(parts)  # each chunk on its own, joined


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("", ValueError, "empty text"),
        ("   ", ValueError, "empty text"),
        ("send it to me@example", ValueError, "'@'"),
        ("word " * 5000, ValueError, "max_text_chars"),
        ("a" * 300, ValueError, "longer than max_chars"),
        (None, TypeError, "must be a str"),
    ],
)
def test_bad_text_is_refused(tiny: dict[str, Path], text: object, error: type, match: str) -> None:
    from espnet_infer import Text2Speech

    tts = Text2Speech.from_pretrained(tiny["model"], griffin_lim_iters=2)
    with pytest.raises(error, match=match):
        tts(text)  # type: ignore[arg-type]


def _vocoder_folder(root: Path, fs: int) -> Path:
    from espnet_model.tts.hifigan import build_hifigan

    block = {"feats_extract_conf": {**FEATS, "fs": fs},
             "generator_params": {"channels": 16, "upsample_scales": [8, 8, 4],
                                  "upsample_kernel_sizes": [16, 16, 8], "resblock_kernel_sizes": [3],
                                  "resblock_dilations": [[1]]}}
    model = build_hifigan(block)
    root.mkdir(parents=True)
    torch.save(model.state_dict(), root / "model.pt")
    (root / "config.yaml").write_text(yaml.safe_dump({"task": "vocoder", "model": block, "sample_rate": fs}))
    return root


def test_vocoder_folder_and_sample_rate_mismatch(tiny: dict[str, Path], tmp_path: Path) -> None:
    from espnet_infer import Text2Speech

    try:
        good = _vocoder_folder(tmp_path / "voc16", 16000)
    except (TypeError, ValueError) as err:  # the generator's argument names changed
        pytest.skip(f"HiFi-GAN block: {err}")
    tts = Text2Speech.from_pretrained(tiny["model"], vocoder=good)
    out = tts("hello there.")
    assert out["wav"].numel() == out["feat_gen"].shape[0] * FEATS["hop_length"]
    bad = _vocoder_folder(tmp_path / "voc22", 22050)
    with pytest.raises(ValueError, match="sample-rate mismatch.*22050 Hz.*16000 Hz"):
        Text2Speech.from_pretrained(tiny["model"], vocoder=bad)
    with pytest.raises(ValueError, match="'tts' model.*Text2Speech's first argument|not a 'vocoder'"):
        Text2Speech.from_pretrained(tiny["model"], vocoder=tiny["model"])


def test_refuses_other_folders_and_tampered_packs(tiny: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    from espnet_infer import Text2Speech

    with pytest.raises(FileNotFoundError, match="does not exist"):
        Text2Speech.from_pretrained(tmp_path / "nothing")
    asr = tmp_path / "asr"
    asr.mkdir()
    (asr / "config.yaml").write_text(yaml.safe_dump({"model": {"encoder": "conformer"}, "sample_rate": 16000}))
    with pytest.raises(ValueError, match="'asr' model.*Speech2Text"):
        Text2Speech.from_pretrained(asr)
    copy = shutil.copytree(tiny["packed"], tmp_path / "tampered")
    (copy / "tokenizer" / "tokens.txt").write_text((copy / "tokenizer" / "tokens.txt").read_text() + "x\n")
    with pytest.raises(ValueError, match="does not match"):
        Text2Speech.from_pretrained(copy)


def _config(tiny: dict[str, Path], out: Path, **kw: object) -> object:
    from espnet_infer.synthesis import SynthesisConfig

    return SynthesisConfig(model_dir=str(tiny["packed"]), test_sets={"test": str(tiny["data"] / "test")},
                           output_dir=str(out), griffin_lim_iters=2, batch_size=2, **kw)


def test_run_synthesis_writes_wavs_and_resumes(tiny: dict[str, Path], tmp_path: Path) -> None:
    from espnet_infer.synthesis import run_synthesis

    cfg = _config(tiny, tmp_path / "infer")
    result = run_synthesis(cfg)
    rows = [json.loads(line) for line in (tmp_path / "infer" / "test" / "index.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and not any("error" in r for r in rows)
    wav, rate = sf.read(tmp_path / "infer" / "test" / rows[0]["wav"])
    assert rate == 16000 and len(wav) / rate == pytest.approx(rows[0]["seconds"], abs=1e-3)
    assert result["sets"]["test"]["rtf"] > 0 and result["synthesised_shards"] == 1
    again = run_synthesis(cfg)  # nothing to do
    assert again["synthesised_shards"] == 0 and again["skipped_shards"] == 1
    changed = run_synthesis(_config(tiny, tmp_path / "infer", max_chunk_chars=150))  # other settings: redone
    assert changed["synthesised_shards"] == 1


def test_run_synthesis_on_a_process_pool(tiny: dict[str, Path], tmp_path: Path) -> None:
    from espnet_infer import ParallelConfig
    from espnet_infer.synthesis import run_synthesis

    result = run_synthesis(_config(tiny, tmp_path / "pool", parallel=ParallelConfig(backend="processes", num_workers=1)))
    assert result["backend"] == "processes" and result["sets"]["test"]["utterances"] == 5


NO_LIGHTNING = textwrap.dedent(
    """
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("lightning", "pytorch_lightning", "espnet_train"):
                raise ImportError(f"{name} is blocked")
            return None

    sys.meta_path.insert(0, Block())
    from espnet_infer import Text2Speech
    tts = Text2Speech.from_pretrained(sys.argv[1], griffin_lim_iters=2)
    out = tts("hello there, my name is john.")
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("lightning", "espnet_train"))
    assert not leaked, leaked
    print("ok", tts.fs, out["wav"].numel())
    """
)


def test_pack_speaks_without_lightning(tiny: dict[str, Path]) -> None:
    proc = subprocess.run([sys.executable, "-c", NO_LIGHTNING, str(tiny["packed"])], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok 16000")
