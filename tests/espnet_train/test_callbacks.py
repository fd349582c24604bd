"""EpochHistory (per-epoch rows, plots, reduce_on_plateau), AtomicCheckpoint, BatchStream."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from espnet_train import LitESPnetModel, OptimConfig
from espnet_train.callbacks import AtomicCheckpoint, EpochHistory
from espnet_train.data import BatchStream

from tests.espnet_train.test_module import _batch, _Dummy


def _trainer(tmp_path: Path, callbacks: list, epochs: int) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, callbacks=callbacks, num_sanity_val_steps=0,
        enable_checkpointing=any(isinstance(c, AtomicCheckpoint) for c in callbacks),
    )


def test_history_plots_and_plateau(tmp_path: Path) -> None:
    # the valid loss falls every epoch; with monitor_mode max that is "no improvement"
    optim = OptimConfig(name="sgd", lr=0.01, momentum=0.0, weight_decay=0.0, scheduler="reduce_on_plateau",
                        plateau_factor=0.5, plateau_patience=0, min_lr=0.0)
    lit = LitESPnetModel(_Dummy(), optim, monitor="valid/loss", monitor_mode="max")
    history = EpochHistory(tmp_path / "images")
    train = BatchStream([_batch(1.0, "a"), _batch(2.0, "b")])
    valid = BatchStream([_batch(1.0, "v")], name="valid")
    _trainer(tmp_path, [history], epochs=3).fit(lit, train, valid)
    assert [row["epoch"] for row in history.history] == [1, 2, 3]
    assert {"train/loss", "valid/loss", "lr"} <= set(history.history[0])
    assert history.history[0]["train/loss"] == pytest.approx((1.0 + 4 * (1 - 0.02) ** 2) / 2, rel=1e-4)
    assert lit.optimizers().param_groups[0]["lr"] == pytest.approx(0.01 * 0.25)
    assert sorted(p.name for p in (tmp_path / "images").glob("*.png")) == ["loss.png", "lr.png"]
    assert history.state_dict()["history"] == history.history


def test_atomic_checkpoint_leaves_no_partial_file(tmp_path: Path) -> None:
    ckpt = AtomicCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_top_k=0, save_last=True,
                            enable_version_counter=False)
    lit = LitESPnetModel(_Dummy(), OptimConfig())
    _trainer(tmp_path, [ckpt], epochs=1).fit(lit, BatchStream([_batch(1.0, "a"), _batch(2.0, "b")]))
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["last.ckpt"]
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 2 and state["espnet_train"]["optimizer_steps"] == 2


def test_batch_stream_resumes_inside_its_epoch_only() -> None:
    stream = BatchStream(list(range(5)))
    stream.load_state_dict({"epoch": 1, "consumed": 3})
    stream.set_epoch(1)
    assert list(stream) == [3, 4]
    assert list(stream) == [0, 1, 2, 3, 4]  # the skip applies once
    stream.load_state_dict({"epoch": 1, "consumed": 5})
    stream.set_epoch(2)  # the saved epoch was complete: the next one starts at 0
    assert list(stream) == [0, 1, 2, 3, 4]


def test_atomic_checkpoint_keeps_model_checkpoints_state_key() -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    # older checkpoints (written by ModelCheckpoint) restore their best-k scores
    assert AtomicCheckpoint(monitor="valid/acc", mode="max").state_key == \
        ModelCheckpoint(monitor="valid/acc", mode="max").state_key


def test_epoch_log_writes_one_line_per_epoch_through_logging(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from espnet_train.callbacks import EpochLog

    lit = LitESPnetModel(_Dummy(), OptimConfig(name="sgd", lr=0.01, momentum=0.0, scheduler="constant"))
    history = EpochHistory(None)
    epoch_log = EpochLog(history, max_time_s=3600.0, sample_rate=4)  # 4 samples per batch: 1 s each
    train = BatchStream([_batch(1.0, "a"), _batch(2.0, "b")])
    valid = BatchStream([_batch(1.0, "v")], name="valid")
    with caplog.at_level("INFO", logger="espnet_train.callbacks"):
        _trainer(tmp_path, [history, epoch_log], epochs=2).fit(lit, train, valid)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(lines) == 2, lines
    assert lines[0].startswith("epoch 1/2: train loss ")
    assert "| valid loss " in lines[0]
    assert " audio s/s)" in lines[0] and "padded" not in lines[0]  # the lengths were on the CPU
    assert lines[0].split("| ETA ")[1].count(":") == 2  # H:MM:SS
    assert lines[1].startswith("epoch 2/2: ") and lines[1].endswith("ETA 0:00:00")


def test_epoch_log_eta_is_capped_by_max_time() -> None:
    from espnet_train.callbacks import EpochLog

    log = EpochLog(EpochHistory(None), max_time_s=100.0)
    log._fit_start, log._epoch_seconds = 0.0, [60.0]
    assert log.eta(1, 10, now=60.0) == "0:00:40"  # 9 epochs of 60 s, but max_time stops it in 40 s
    log.max_time_s = None
    assert log.eta(1, 10, now=60.0) == "0:09:00"
    assert log.eta(1, None, now=60.0) == "unknown"


def test_step_timer_checks_the_clock_every_n_batches(tmp_path: Path) -> None:
    import time

    from espnet_train.callbacks import StepTimer

    class _Slow(L.Callback):
        def on_train_batch_end(self, *args: object) -> None:
            time.sleep(0.6)

    timer = StepTimer(duration="00:00:00:01", every=3)  # out of time after batch 2, seen after batch 3
    lit = LitESPnetModel(_Dummy(), OptimConfig())
    trainer = _trainer(tmp_path, [_Slow(), timer], epochs=1)
    trainer.fit(lit, BatchStream([_batch(1.0, str(i)) for i in range(10)]))
    assert trainer.global_step == 3
