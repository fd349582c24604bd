"""A rerun with an edited config is refused, before anything is written, unless the change is safe."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from espnet_train import train
from espnet_train.average import model_state
from espnet_train.checkpoints import load_checkpoint
from espnet_train.devices import resolve
from espnet_train.rerun import SAFE_CHANGES, ConfigChangedError, config_changes, plain_config
from espnet_train.train import build_model, init_weights

from tests._fixtures import Pipeline, tiny_model, training_config


@pytest.fixture
def moved(pipeline: Pipeline, tmp_path: Path) -> Path:
    """A copy of the shared pipeline's finished experiment folder."""
    return Path(shutil.copytree(pipeline.exp_dir, tmp_path / "exp"))


def _config(pipeline: Pipeline, exp: Path, **extra: object):  # noqa: ANN202
    return training_config(pipeline.data, pipeline.tokenizer, pipeline.stats, exp, max_epochs=2, **extra)


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_config_changes_are_listed_by_dotted_key() -> None:
    old = {"optim": {"lr": 0.002, "betas": [0.9, 0.98]}, "model": {"encoder_conf": {"output_size": 32}},
           "trainer": {"max_epochs": 2}}
    new = {"optim": {"lr": 0.001, "betas": [0.9, 0.98]}, "model": {"encoder_conf": {"output_size": 64}},
           "trainer": {"max_epochs": 2, "num_threads": None}}
    assert config_changes(old, new) == [
        ("model.encoder_conf.output_size", 32, 64),
        ("optim.lr", 0.002, 0.001),
    ]  # trainer.num_threads: absent from an older config, and its default: no change
    assert config_changes({"model": {"specaug": "specaug"}}, {"model": {}}) == [
        ("model.specaug", "specaug", "<absent>"),
    ]


def test_a_changed_lr_is_refused_before_anything_is_written(pipeline: Pipeline, moved: Path) -> None:
    before = _snapshot(moved)
    resolved = (moved / "config.yaml").read_text()
    cfg = _config(pipeline, moved)
    cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, lr=0.001))
    with pytest.raises(ConfigChangedError) as err:
        train(cfg)
    message = str(err.value)
    assert "optim.lr: 0.002 -> 0.001" in message
    assert str(moved / "checkpoints" / "last.ckpt") in message
    assert f"move or delete {moved}" in message and "set exp_dir to a new folder" in message
    assert f"init_from: {moved / 'checkpoints' / 'last.ckpt'}" in message  # how to fork
    assert "trainer.max_epochs" in message  # what may change
    assert _snapshot(moved) == before
    assert (moved / "config.yaml").read_text() == resolved


def test_a_changed_model_size_is_refused_with_a_diff(pipeline: Pipeline, moved: Path) -> None:
    before = _snapshot(moved)
    model = tiny_model()
    model["encoder_conf"] = {**model["encoder_conf"], "output_size": 64}
    with pytest.raises(ConfigChangedError) as err:
        train(_config(pipeline, moved, model=model))
    assert "model.encoder_conf.output_size: 32 -> 64" in str(err.value)
    assert "A changed model cannot start from these weights" in str(err.value)
    assert _snapshot(moved) == before


def test_without_a_stored_config_the_runs_config_yaml_is_compared(pipeline: Pipeline, moved: Path) -> None:
    last = moved / "checkpoints" / "last.ckpt"
    ckpt = load_checkpoint(last)
    del ckpt["espnet_train_config"]  # as written before checkpoints stored their config
    torch.save(ckpt, last)
    cfg = _config(pipeline, moved)
    with pytest.raises(ConfigChangedError, match=r"saved in .*config\.yaml, in keys.*\n  seed: 0 -> 1"):
        train(dataclasses.replace(cfg, seed=1))


def test_safe_changes_resume(pipeline: Pipeline, moved: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert {"trainer.max_epochs", "trainer.max_time", "data.num_workers"} <= set(SAFE_CHANGES)
    cfg = _config(pipeline, moved)
    cfg = dataclasses.replace(
        cfg,
        trainer=dataclasses.replace(cfg.trainer, max_epochs=3, log_every_n_steps=5),
        max_consecutive_bad_batches=7,
    )
    with caplog.at_level(logging.INFO, logger="espnet_train"):
        train(cfg)
    assert "resuming with trainer.max_epochs: 2 -> 3 (allowed on resume)" in caplog.text
    assert json.loads((moved / "train_summary.json").read_text())["epochs"] == 3
    assert yaml.safe_load((moved / "config.yaml").read_text())["trainer"]["max_epochs"] == 3
    assert (moved / "config.1.yaml").is_file()  # the previous one, kept
    # what the checkpoint stores is the config as resolved for this machine (precision: auto -> 32-true)
    stored = load_checkpoint(moved / "checkpoints" / "last.ckpt")["espnet_train_config"]
    assert stored == plain_config(resolve(cfg)) and stored["trainer"]["precision"] == "32-true"


def test_a_fork_starts_from_the_weights_with_new_values(pipeline: Pipeline, tmp_path: Path) -> None:
    last = pipeline.exp_dir / "checkpoints" / "last.ckpt"
    cfg = _config(pipeline, tmp_path / "fork", init_from=str(last))
    model = build_model(cfg, vocab_size=_vocab(pipeline))
    init_weights(model, str(last))
    expected = model_state(last)
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    init_weights(model, str(pipeline.model_dir / "model.pt"))  # the exported average works too

    other = build_model(_config(pipeline, tmp_path, model=tiny_model(
        encoder_conf={**tiny_model()["encoder_conf"], "output_size": 64})), vocab_size=_vocab(pipeline))
    with pytest.raises(ValueError, match=r"init_from: .*last\.ckpt: its weights do not fit"):
        init_weights(other, str(last))
    with pytest.raises(FileNotFoundError, match=r"init_from: .*absent\.ckpt does not exist"):
        init_weights(model, str(tmp_path / "absent.ckpt"))


def test_train_with_init_from_starts_from_those_weights(pipeline: Pipeline, tmp_path: Path) -> None:
    import lightning as L

    last = pipeline.exp_dir / "checkpoints" / "last.ckpt"
    seen: dict[str, torch.Tensor] = {}

    class _AtStart(L.Callback):
        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            seen.update({k: v.detach().clone() for k, v in pl_module.model.state_dict().items()})

    cfg = _config(pipeline, tmp_path / "fork", init_from=str(last))
    cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, lr=0.001),
                              trainer=dataclasses.replace(cfg.trainer, max_epochs=1))
    train(cfg, callbacks=[_AtStart()])
    expected = model_state(last)
    assert seen.keys() == expected.keys()
    for key in expected:
        assert torch.equal(seen[key], expected[key]), key


def _vocab(pipeline: Pipeline) -> int:
    from espnet_data import load_tokenizer_dir

    return load_tokenizer_dir(pipeline.tokenizer).vocab_size


def test_loggers_and_profiler_may_change_on_resume_callbacks_may_not() -> None:
    from espnet_train.rerun import _safe

    old = {"trainer": {"profiler": None, "loggers": [], "callbacks": []}}
    new = {"trainer": {"profiler": {"class_path": "lightning.pytorch.profilers.SimpleProfiler", "init_args": {}},
                       "loggers": [{"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {}}],
                       "callbacks": [{"class_path": "lightning.pytorch.callbacks.EarlyStopping"}]}}
    changed = {key for key, _, _ in config_changes(old, new)}
    assert {k for k in changed if _safe(k)} == changed - {"trainer.callbacks"}
    assert "trainer.callbacks" in changed and not _safe("trainer.callbacks")
