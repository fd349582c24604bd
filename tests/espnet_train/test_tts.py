"""espnet-train's TTS tasks: config checks, batches, and tts / tts_aligner runs to the exported folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests._tts_fixtures import tts_data, tts_training_dict


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tts_data(tmp_path_factory.mktemp("tts"))


def _config(d: dict) -> object:
    from espnet_system.parse import parse_config  # the YAML path users take

    path = Path(d["exp_dir"]).parent / f"{Path(d['exp_dir']).name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(d))
    from espnet_train import TrainingConfig

    return parse_config(TrainingConfig, path)


@pytest.mark.parametrize(
    ("task", "change", "message"),
    [
        ("tts", {"model": {"lm": "transformer"}}, "tts: fastspeech2"),
        ("tts", {"data": {"speed_perturb": [0.9, 1.0]}}, "data.speed_perturb would alter"),
        ("tts", {"data": {"reverb": True}}, "data.reverb would alter"),
        ("vocoder", {"model": {"vocoder": "hifigan"}}, "optims"),
        ("tts_aligner", {"model": {"tts": "fastspeech2"}}, "set task: tts"),
    ],
)
def test_config_refuses(task: str, change: dict, message: str, tmp_path: Path) -> None:
    from espnet_train import DataConfig, TrainingConfig

    data = DataConfig(train="a", valid="b", **change.get("data", {}))
    with pytest.raises(ValueError, match=message):
        TrainingConfig(exp_dir=str(tmp_path), tokenizer="t", data=data, task=task, model=change.get("model", {}))


def test_asr_task_refuses_a_tts_block(tmp_path: Path) -> None:
    from espnet_train import DataConfig, TrainingConfig

    with pytest.raises(ValueError, match="set task: tts"):
        TrainingConfig(exp_dir=str(tmp_path), tokenizer="t", data=DataConfig(train="a", valid="b"),
                       model={"tts": "fastspeech2"})


def test_collate_pads_ids_and_durations_with_zero() -> None:
    from espnet_train.tts import collate_tts

    batch = collate_tts([
        {"key": "a", "text": "x", "audio": np.ones(5, np.float32), "ids": [3, 4], "durations": [1, 2]},
        {"key": "b", "text": "y", "audio": np.ones(3, np.float32), "ids": [5], "durations": [4]},
    ])
    assert batch["text"].tolist() == [[3, 4], [5, 0]]
    assert batch["durations"].tolist() == [[1, 2], [4, 0]]
    assert batch["text_lengths"].tolist() == [2, 1] and batch["speech_lengths"].tolist() == [5, 3]


def test_stages_skip_and_count_bad_samples() -> None:
    from espnet_train.tts import SkipCounter, _durations_stage, _tokenize_stage

    def tokenize(text: str) -> list[int]:
        if "@" in text:
            raise ValueError("character '@' cannot be spoken")
        return [2] * len(text.split())

    skipped = SkipCounter("test")
    samples = [{"key": "ok", "text": "a b"}, {"key": "bad", "text": "a @"}, {"key": "nodur", "text": "c"},
               {"key": "wrong", "text": "a b c"}]
    out = list(_durations_stage({"ok": [3, 4], "wrong": [1]}, "d.jsonl", skipped)(
        _tokenize_stage(tokenize, skipped)(samples)))
    assert [s["key"] for s in out] == ["ok"] and out[0]["durations"] == [3, 4]
    assert sum(skipped.counts.values()) == 3
    assert any("no durations" in r for r in skipped.counts) and any("1 durations for 3" in r for r in skipped.counts)


def test_tts_task_needs_durations(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    from espnet_train import train

    data, tok = corpus
    d = tts_training_dict(data, tok, tmp_path / "exp")
    d["data"]["train"] = str(data / "test")  # no durations.jsonl there
    with pytest.raises(FileNotFoundError, match="durations.jsonl is missing.*collect_stats"):
        train(_config(d))


@pytest.mark.parametrize("task", ["tts", "tts_aligner"])
def test_trains_and_exports(task: str, corpus: tuple[Path, Path], tmp_path: Path) -> None:
    from espnet_train import train

    data, tok = corpus
    out = train(_config(tts_training_dict(data, tok, tmp_path / "exp", task=task)))
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["task"] == task and config["sample_rate"] == 16000
    assert config["tokenizer"] == {"type": "phoneme", "token_list": "tokenizer/tokens.txt",
                                   "config": "tokenizer/tokenizer.json"}
    assert (out / "tokenizer" / "tokens.txt").read_text() == (tok / "tokens.txt").read_text()
    assert config["vocab_size"] == len((tok / "tokens.txt").read_text().split())
    state = torch.load(out / "model.pt", weights_only=True)
    assert state and all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
