"""train(config): checkpoints, the averaged model folder and the resolved config."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from espnet_infer import DecodeConfig, Speech2Text, load_model_folder
from espnet_train.train import _save_resolved, build_model

from tests._fixtures import Pipeline, read_samples, tiny_model, training_config


def test_outputs_of_a_run(pipeline: Pipeline) -> None:
    exp = pipeline.exp_dir
    assert pipeline.model_dir == exp / "model"
    ckpts = sorted(p.name for p in (exp / "checkpoints").glob("*.ckpt"))
    assert ckpts == ["epoch000.ckpt", "epoch001.ckpt", "last.ckpt"]
    summary = json.loads((exp / "train_summary.json").read_text())
    assert summary["epochs"] == 2
    assert summary["skipped_batches"] == 0
    assert sorted(summary["averaged"]) == ["epoch000.ckpt", "epoch001.ckpt"]
    resolved = yaml.safe_load((exp / "config.yaml").read_text())
    assert resolved["trainer"]["max_epochs"] == 2
    assert resolved["model"]["encoder_conf"]["output_size"] == 32
    assert (exp / "tensorboard").is_dir()
    assert (exp / "csv" / "metrics.csv").is_file()
    images = {p.name for p in (exp / "images").glob("*.png")}
    assert {"loss.png", "acc.png", "loss_ctc.png", "loss_att.png", "lr.png"} <= images
    assert summary["optimizer_steps"] == summary["global_steps"] > 0
    assert summary["trained_batches"] == summary["optimizer_steps"]  # no accumulation, no skips
    config = yaml.safe_load((pipeline.model_dir / "config.yaml").read_text())
    assert config["training"]["epochs"] == 2
    loaded = load_model_folder(pipeline.model_dir)
    assert loaded.sample_rate == 16000
    assert loaded.tokenizer.vocab_size == config["vocab_size"]


def test_resolved_config_is_never_overwritten(pipeline: Pipeline, tmp_path: Path) -> None:
    cfg = training_config(pipeline.data, pipeline.tokenizer, pipeline.stats, tmp_path)
    _save_resolved(cfg, tmp_path)
    (tmp_path / "config.yaml").write_text("first: 1\n")
    _save_resolved(cfg, tmp_path)
    _save_resolved(cfg, tmp_path)
    assert (tmp_path / "config.1.yaml").read_text() == "first: 1\n"
    assert (tmp_path / "config.2.yaml").is_file()
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["exp_dir"] == str(tmp_path)


def test_global_mvn_without_stats_says_what_to_do(pipeline: Pipeline, tmp_path: Path) -> None:
    cfg = training_config(pipeline.data, pipeline.tokenizer, tmp_path / "missing.npz", tmp_path)
    with pytest.raises(FileNotFoundError, match="collect_stats"):
        build_model(cfg, vocab_size=10)


def test_missing_tokenizer_is_named(pipeline: Pipeline, tmp_path: Path) -> None:
    from espnet_train import train

    cfg = training_config(pipeline.data, tmp_path / "no_tok", pipeline.stats, tmp_path / "exp")
    with pytest.raises(FileNotFoundError, match="tokenizer.yaml"):
        train(cfg)


def test_bf16_on_a_cpu_without_native_bf16_trains_in_fp32(tmp_path: Path) -> None:
    from espnet_train.config import TrainerConfig
    from espnet_train.train import _precision, cpu_has_native_bf16

    old = tmp_path / "old_cpuinfo"
    old.write_text("flags\t\t: fpu sse2 avx2 avx512f\n")
    new = tmp_path / "new_cpuinfo"
    new.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert not cpu_has_native_bf16(str(old))
    assert cpu_has_native_bf16(str(new))
    assert cpu_has_native_bf16(str(tmp_path / "absent"))  # unknown: trust the config
    tc = TrainerConfig(accelerator="cpu", precision="bf16-mixed")
    assert _precision(tc) == ("bf16-mixed" if cpu_has_native_bf16() else "32-true")
    assert _precision(TrainerConfig(accelerator="cpu")) == "32-true"


def test_self_conditioned_ctc_and_length_curriculum_train_log_and_decode(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """One epoch with interctc / conditioning and shortest-first batches: the trainer logs
    loss_interctc, and the exported model decodes the same through the frozen encoder."""
    from espnet_train import train

    model = tiny_model()
    model["encoder_conf"] = {**model["encoder_conf"], "num_blocks": 2,
                             "interctc_layer_idx": [1], "interctc_use_conditioning": True}
    model["model_conf"] = {**model["model_conf"], "interctc_weight": 0.5}
    cfg = training_config(pipeline.data, pipeline.tokenizer, pipeline.stats, tmp_path,
                          max_epochs=1, model=model)
    cfg.data.shortest_first_epochs = 1
    model_dir = train(cfg)
    with (tmp_path / "csv" / "metrics.csv").open() as f:
        columns = set(next(csv.reader(f)))
    assert {"train/loss_interctc", "train/loss_interctc_layer1", "valid/loss_interctc"} <= columns
    loaded = load_model_folder(model_dir)
    assert "encoder.conditioning_layer.weight" in loaded.model.state_dict()
    audios = [s["audio"] for s in read_samples(pipeline.data / "test")[:2]]
    fused = Speech2Text(loaded, decode=DecodeConfig(method="ctc_greedy"))
    plain = Speech2Text(loaded, decode=DecodeConfig(method="ctc_greedy", fuse_encoder=False))
    assert fused.frozen_encoder is not None
    assert fused.transcribe(audios) == plain.transcribe(audios)
