"""The mini recipe end to end: every stage's outputs, reruns, and failures before any stage.

The recipe's own ``conf/`` is copied and shrunk (24/6/6 utterances, a 50k-parameter
conformer, 2 epochs, beam 2) so the whole pipeline runs in well under a minute on CPU;
so is its LM recipe's (``../lm``, trained by ``train_lm`` and fused by ``infer``).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml
from espnet_system.cli import main

from tests._fixtures import SPLITS, tiny_model

RECIPE_CONF = Path(__file__).parents[2] / "egs" / "mini" / "asr" / "conf"
LM_CONF = Path(__file__).parents[2] / "egs" / "mini" / "lm" / "conf"
RUN_ALL = ("create_dataset", "train_tokenizer", "train_lm", "collect_stats", "train", "infer",
           "measure", "pack_model", "pack_demo")
STAGES = ["--stages", "all", "train_lm"]  # a recipe without src/system.py runs train_lm when named

pytestmark = pytest.mark.slow


def _edit(path: Path, **changes: object) -> None:
    doc = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = doc
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def make_recipe(root: Path) -> Path:
    """A copy of egs/mini/asr with its configs shrunk to test size."""
    recipe = root / "mini_asr"
    shutil.copytree(RECIPE_CONF, recipe / "conf")
    conf = recipe / "conf"
    _edit(conf / "data.yaml", corpus__init_args__utterances=dict(SPLITS), utterances_per_shard=4,
          num_workers=1, tokenizer__vocab_size=40)
    _edit(conf / "training.yaml", model=tiny_model(), best_n=2,
          data__max_seconds=30, data__num_workers=0, data__max_batch_size=8,
          optim__warmup_steps=2, optim__horizon="steps",  # no max_time here: a repeatable run
          trainer={"max_epochs": 2, "num_threads": 1, "accelerator": "cpu", "devices": 1,
                   "log_every_n_steps": 1})
    _edit(conf / "inference.yaml", decode__beam_size=2, parallel__backend="local",
          parallel__num_workers=1)
    make_lm_recipe(root)
    return recipe


def make_lm_recipe(root: Path) -> Path:
    """A copy of egs/mini/lm beside it, shrunk: 200 generated sentences, a tiny LSTM."""
    lm = root / "lm"
    shutil.copytree(LM_CONF, lm / "conf")
    for path in (lm / "conf").glob("*.yaml"):  # the ASR recipe here is mini_asr, not asr
        path.write_text(path.read_text().replace("../asr/", "../mini_asr/"))
    data = yaml.safe_load((lm / "conf" / "data.yaml").read_text())
    data["sets"]["train"][1]["init_args"]["num_sentences"] = 200
    data["sentences_per_shard"] = 100
    (lm / "conf" / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    _edit(lm / "conf" / "training.yaml", model__lm_conf__unit=32, data__max_tokens=1000,
          trainer={"max_epochs": 1, "num_threads": 1, "accelerator": "cpu",
                   "enable_progress_bar": False})
    return lm


def _mtimes(folder: Path, pattern: str) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob(pattern))}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recipe = make_recipe(tmp_path_factory.mktemp("e2e"))
    assert main([str(recipe), *STAGES]) == 0
    return recipe


def test_data_stages(recipe: Path) -> None:
    for split, n in SPLITS.items():
        folder = recipe / "data" / split
        shards = sorted(p.name for p in folder.glob("shard-*.tar"))
        assert len(shards) == -(-n // 4)
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["num_utterances"] + summary["num_rejected"] == n
        assert len((folder / "index.jsonl").read_text().splitlines()) == summary["num_utterances"]
    spec = yaml.safe_load((recipe / "exp" / "tokenizer" / "tokenizer.yaml").read_text())
    assert spec["type"] == "sentencepiece"
    assert (recipe / "exp" / "tokenizer" / spec["model"]).is_file()
    import numpy as np

    stats = np.load(recipe / "exp" / "stats" / "feats_stats.npz")
    assert int(stats["count"]) > 0 and stats["sum"].shape == (40,)


def test_train_lm_stage(recipe: Path) -> None:
    lm = recipe.parent / "lm"
    assert yaml.safe_load((lm / "exp" / "lm" / "model" / "config.yaml").read_text())["task"] == "lm"
    scores = json.loads((lm / "exp" / "lm" / "scores.json").read_text())
    assert set(scores) == {"dev", "test"} and scores["dev"]["num_sentences"] == SPLITS["dev"]
    assert (lm / "exp" / "logs" / "train.log").is_file()  # the LM recipe's own logs
    assert "PPL" in (recipe / "exp" / "logs" / "train_lm.log").read_text()


def test_train_stage(recipe: Path) -> None:
    exp = recipe / "exp" / "train"
    ckpts = {p.name for p in (exp / "checkpoints").glob("*.ckpt")}
    assert {"last.ckpt", "epoch000.ckpt", "epoch001.ckpt"} <= ckpts
    assert sorted(p.name for p in (exp / "model").iterdir()) == [
        "config.yaml", "model.pt", "stats.npz", "tokenizer"]
    assert (exp / "config.yaml").is_file()


def test_infer_and_measure_stages(recipe: Path) -> None:
    infer = recipe / "exp" / "infer"
    for name in ("dev", "test"):
        assert len(list((infer / name / "shards").glob("*.jsonl"))) == 2
        hyp = (infer / name / "hyp.txt").read_text().splitlines()
        ref = (infer / name / "ref.txt").read_text().splitlines()
        assert len(hyp) == len(ref) == SPLITS[name]
    scores = json.loads((infer / "scores.json").read_text())
    assert set(scores) == {"dev", "test"}
    for s in scores.values():
        assert {"wer", "cer"} <= set(s) and s["num_utterances"] == 6


def test_publish_stages(recipe: Path) -> None:
    packed = recipe / "exp" / "packed"
    manifest = yaml.safe_load((packed / "meta.yaml").read_text())
    assert manifest
    assert (packed / "README.md").read_text().strip()
    assert (packed / "scores.json").is_file() and (packed / "inference.yaml").is_file()
    demo = recipe / "exp" / "demo"
    assert demo.is_dir() and any(demo.iterdir())
    assert (demo / "model" / "meta.yaml").is_file()
    assert (packed / "model.safetensors").is_file() and not (packed / "model.pt").exists()
    assert (packed / "images" / "loss.png").is_file()  # training curves reach the card
    assert "![loss](images/loss.png)" in (packed / "README.md").read_text()


def test_one_log_per_stage(recipe: Path) -> None:
    logs = recipe / "exp" / "logs"
    assert sorted(p.name for p in logs.glob("*.log")) == sorted(f"{s}.log" for s in RUN_ALL)
    for stage in RUN_ALL:
        text = (logs / f"{stage}.log").read_text()
        assert text.startswith(f"# stage: {stage}\n")
        assert f"stage {stage}: done" in text


def test_stages_typed_out_of_order_run_in_canonical_order(
    recipe: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="espnet_system"):
        assert main([str(recipe), "--stages", "measure", "infer"]) == 0
    starts = [r.getMessage() for r in caplog.records if r.getMessage().endswith(": start")]
    assert starts == ["stage infer: start", "stage measure: start"]


def test_second_run_rotates_logs_and_skips_finished_work(recipe: Path) -> None:
    shards = _mtimes(recipe / "data" / "train", "shard-*.tar")
    infer_shards = _mtimes(recipe / "exp" / "infer" / "test" / "shards", "*.jsonl")
    assert main([str(recipe), *STAGES]) == 0
    logs = recipe / "exp" / "logs"
    for stage in RUN_ALL:
        assert (logs / f"{stage}1.log").is_file()
    assert _mtimes(recipe / "data" / "train", "shard-*.tar") == shards
    assert _mtimes(recipe / "exp" / "infer" / "test" / "shards", "*.jsonl") == infer_shards
    summary = json.loads((recipe / "exp" / "infer" / "summary.json").read_text())
    assert summary["decoded_shards"] == 0 and summary["skipped_shards"] == 4
    assert "resuming from" in (logs / "train.log").read_text()


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    return make_recipe(tmp_path)


def test_missing_config_fails_before_any_stage(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fresh / "conf" / "metrics.yaml").unlink()
    assert main([str(fresh), "--stages", "create_dataset", "measure"]) == 2
    assert "metrics.yaml" in capsys.readouterr().err
    assert not (fresh / "exp").exists() and not (fresh / "data").exists()


def test_bad_config_key_is_named(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(fresh / "conf" / "training.yaml", trainer={"max_epoch": 3})
    assert main([str(fresh), "--stages", "all"]) == 2
    err = capsys.readouterr().err
    assert "max_epoch" in err and "training.yaml" in err
    assert not (fresh / "exp").exists() and not (fresh / "data").exists()


def test_upload_without_token_fails_before_the_network(
    fresh: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import huggingface_hub

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Hub was contacted")

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    monkeypatch.setattr(huggingface_hub, "HfApi", no_network)
    _edit(fresh / "conf" / "publish.yaml", repo_id="me/mini-asr")
    (fresh / "exp" / "packed").mkdir(parents=True)  # a packed model, else the path check stops first
    assert main([str(fresh), "--stages", "upload_model"]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err
