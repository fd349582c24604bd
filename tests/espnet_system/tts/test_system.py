"""TTSSystem: every stage on a tiny recipe (espeak-ng corpus, aligner, FastSpeech2, synthesis,
ASR scoring with a tiny ASR pack, pack and demo), and the checks that run before any stage."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from espnet_system import TTSSystem, load_system
from espnet_system.inputs import MissingInputsError
from espnet_system.stages import StageError

from tests._tts_fixtures import FEATS, TINY_ALIGNER, tiny_tts

ROOT = Path(__file__).parents[3]


def _write(path: Path, body: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(body, sort_keys=False))


def _training(task: str, exp_dir: str, model: dict, **extra: object) -> dict:
    return {"task": task, "exp_dir": exp_dir, "tokenizer": "exp/tokenizer", "seed": 0,
            "data": {"train": "data/train", "valid": "data/dev", "max_seconds": 20, "max_batch_size": 8,
                     "buffer_size": 100, "num_workers": 0},
            "model": model, "optim": {"lr": 0.002, "scheduler": "constant", "warmup_steps": 1},
            "trainer": {"max_epochs": 1, "num_threads": 1, "log_every_n_steps": 1, "accelerator": "cpu",
                        "devices": 1, "enable_progress_bar": False},
            "best_n": 1, **extra}


def make_recipe(root: Path, *, asr_pack: bool = True) -> Path:
    """``root/tts`` with tiny configs, and (``asr_pack``) a tiny ASR pack in ``root/asr/exp/packed``."""
    recipe = root / "tts"
    conf = recipe / "conf"
    _write(conf / "data.yaml", {
        "corpus": {"class_path": "espnet_data.corpora.MiniTTSCorpus",
                   "init_args": {"seed": 0, "utterances": {"train": 16, "dev": 4, "test": 3}}},
        "shard": {"sample_rate": 16000}, "utterances_per_shard": 8, "num_workers": 1})
    _write(conf / "training.yaml", _training("tts", "exp/tts", tiny_tts(normalize="global_mvn"),
                                             stats_file="exp/stats/feats_stats.npz"))
    _write(conf / "aligner.yaml", _training("tts_aligner", "exp/aligner", dict(TINY_ALIGNER)))
    _write(conf / "inference.yaml", {"model_dir": "exp/tts/model", "test_sets": {"test": "data/test"},
                                     "output_dir": "exp/infer", "griffin_lim_iters": 2, "batch_size": 2})
    _write(conf / "metrics.yaml", {"test_sets": {"test": "data/test"}, "asr_pack": "../asr/exp/packed",
                                   "asr_decode": {"method": "ctc_greedy"}})
    _write(conf / "publish.yaml", {"model_dir": "exp/tts/model", "model_name": "tiny-tts"})
    if asr_pack:
        from espnet_publish import pack_model
        from espnet_publish.testing import tiny_asr_model_folder

        pack_model(tiny_asr_model_folder(root / "asr" / "exp" / "model"), root / "asr" / "exp" / "packed",
                   model_name="tiny-asr")
    return recipe


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recipe = make_recipe(tmp_path_factory.mktemp("tts_recipe"))
    system = load_system(recipe)
    assert isinstance(system, TTSSystem)
    assert system.run(["all"]) == ["create_dataset", "train_tokenizer", "collect_stats", "train", "infer",
                                   "measure", "pack_model", "pack_demo"]
    return recipe


def test_collect_stats_writes_stats_aligner_and_durations(ran: Path) -> None:
    from espnet_data.tts import PhonemeTokenizer, read_durations, read_tts_samples

    assert (ran / "exp" / "stats" / "feats_stats.npz").is_file()
    aligner = yaml.safe_load((ran / "exp" / "aligner" / "model" / "config.yaml").read_text())
    assert aligner["task"] == "tts_aligner" and aligner["model"]["feats_extract_conf"] == FEATS
    tok = PhonemeTokenizer.load(ran / "exp" / "tokenizer")
    for split in ("train", "dev"):
        durations = read_durations(ran / "data" / split / "durations.jsonl")
        samples = list(read_tts_samples(ran / "data" / split))
        assert set(durations) == {s.key for s in samples}
        for s in samples:  # one duration per token, summing to the mel frames of the TTS model
            assert len(durations[s.key]) == len(tok.encode(s.text))
            assert sum(durations[s.key]) == len(s.audio) // FEATS["hop_length"] + 1
    assert not (ran / "data" / "test" / "durations.jsonl").exists()


def test_train_infer_measure(ran: Path) -> None:
    assert yaml.safe_load((ran / "exp" / "tts" / "model" / "config.yaml").read_text())["task"] == "tts"
    rows = [json.loads(line) for line in (ran / "exp" / "infer" / "test" / "index.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all((ran / "exp" / "infer" / "test" / r["wav"]).is_file() for r in rows)
    scores = json.loads((ran / "exp" / "infer" / "scores.json").read_text())
    assert {"asr_cer", "asr_wer", "real_cer", "real_wer", "mcd_db", "rtf"} <= set(scores)
    assert scores["sets"]["test"]["num_utterances"] == 3 and scores["asr_cer"] >= 0
    with contextlib.chdir(ran):  # as espnet-run prints it: relative to the recipe
        report = load_system(ran).report(["measure"])
    assert "ASR CER % (synth)" in report and "CER % (real)" in report


def test_pack_and_demo(ran: Path) -> None:
    packed = ran / "exp" / "packed"
    card = (packed / "README.md").read_text()
    assert "pipeline_tag: text-to-speech" in card and "Text2Speech.from_pretrained" in card
    assert (packed / "tokenizer" / "tokens.txt").is_file() and (packed / "stats.npz").is_file()
    demo = ran / "exp" / "demo"
    proc = subprocess.run([sys.executable, "-c", "import app; sr, w = app.speak('hello there.'); print(sr, w.dtype)"],
                          cwd=demo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "16000 int16"


def test_missing_asr_pack_stops_before_any_stage(tmp_path: Path) -> None:
    system = load_system(make_recipe(tmp_path, asr_pack=False))
    with pytest.raises(MissingInputsError, match="just asr mini all"):
        system.run(["all"])
    assert not (tmp_path / "tts" / "data").exists()


def test_aligner_config_is_checked(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path, asr_pack=False)
    conf = recipe / "conf" / "aligner.yaml"
    body = yaml.safe_load(conf.read_text())
    _write(conf, {**body, "model": {**body["model"], "feats_extract_conf": {**FEATS, "hop_length": 128}}})
    with pytest.raises(StageError, match="hop_length \\(128 vs 256\\)"):
        load_system(recipe).check(["collect_stats"])
    training = recipe / "conf" / "training.yaml"
    _write(training, {**yaml.safe_load(training.read_text()), "task": "asr", "model": {}})
    with pytest.raises(StageError, match="set task: tts"):
        load_system(recipe).check(["train"])


def test_recipes_parse() -> None:
    """egs/mini/tts, egs/ljspeech/tts and egs/TEMPLATE/tts: every config parses."""
    for corpus in ("mini", "ljspeech", "TEMPLATE"):
        recipe = ROOT / "egs" / corpus / "tts"
        system = load_system(recipe)
        assert isinstance(system, TTSSystem)
        system.check(system.resolve(["all"]))
