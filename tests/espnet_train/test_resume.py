"""A run killed mid-epoch and started again ends with the weights of an unbroken run."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from espnet_train import train
from espnet_train.average import model_state

from tests._fixtures import Pipeline, tiny_model, training_config


class _Killed(RuntimeError):
    pass


class _KillAt(L.Callback):
    """Raise at the end of the batch that reaches ``step`` optimizer steps.

    Checkpoint callbacks run after every other callback, so the checkpoint of this
    step is never written: the rerun starts from the one before, as after a SIGKILL.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step >= self.step:
            raise _Killed(f"killed at step {trainer.global_step}")


def _config(pipeline: Pipeline, exp: Path):  # noqa: ANN202
    # dropout on, so the random state must be restored as well as the data position
    model = tiny_model()
    model["encoder_conf"] = {**model["encoder_conf"], "dropout_rate": 0.1}
    return training_config(
        pipeline.data, pipeline.tokenizer, pipeline.stats, exp, max_epochs=2,
        model=model, checkpoint_every_n_steps=1, best_n=1,
    )


def test_killed_run_resumes_to_the_same_weights(pipeline: Pipeline, tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    train(_config(pipeline, whole))
    summary = json.loads((whole / "train_summary.json").read_text())
    steps = summary["optimizer_steps"]
    assert steps >= 4 and summary["epochs"] == 2

    broken = tmp_path / "broken"
    kill_at = steps // 2 + 2  # inside the second epoch, after its first step checkpoint
    with pytest.raises(_Killed):
        train(_config(pipeline, broken), callbacks=[_KillAt(kill_at)])
    partial = torch.load(broken / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert partial["global_step"] == kill_at - 1
    train(_config(pipeline, broken))

    resumed = json.loads((broken / "train_summary.json").read_text())
    assert resumed["optimizer_steps"] == steps
    assert resumed["trained_batches"] == summary["trained_batches"]
    a = model_state(whole / "checkpoints" / "last.ckpt")
    b = model_state(broken / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    # the per-epoch history (train means, valid metrics, lr) is that of the unbroken run
    rows = [torch.load(d / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
            ["callbacks"]["EpochHistory"]["history"] for d in (whole, broken)]
    assert [r["epoch"] for r in rows[1]] == [1, 2]
    for a_row, b_row in zip(*rows, strict=True):
        assert b_row.keys() == a_row.keys()
        assert b_row == pytest.approx(a_row, rel=1e-5)
    assert {p.name for p in (broken / "images").glob("*.png")} >= {"loss.png", "acc.png", "lr.png"}


@pytest.mark.slow
def test_sigkilled_cli_run_resumes_to_the_same_weights(pipeline: Pipeline, tmp_path: Path) -> None:
    """``espnet-train`` killed with SIGKILL right after its first step checkpoint, then rerun."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml
    from espnet_train.cli import main

    from tests._fixtures import training_dict

    def body(exp: Path) -> dict:
        return training_dict(pipeline.data, pipeline.tokenizer, pipeline.stats, exp, max_epochs=2,
                             checkpoint_every_n_steps=1, best_n=1)

    whole, broken = tmp_path / "whole", tmp_path / "broken"
    conf = tmp_path / "broken.yaml"
    conf.write_text(yaml.safe_dump(body(broken)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "espnet_train.cli", "--config", str(conf)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )
    last = broken / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training ended before it could be killed"
    assert not (broken / "model").exists()
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["global_step"]

    assert main(["--config", str(conf)]) == 0
    whole_conf = tmp_path / "whole.yaml"
    whole_conf.write_text(yaml.safe_dump(body(whole)))
    assert main(["--config", str(whole_conf)]) == 0

    steps = json.loads((whole / "train_summary.json").read_text())["optimizer_steps"]
    assert 1 <= killed_at < steps
    assert json.loads((broken / "train_summary.json").read_text())["optimizer_steps"] == steps
    a = model_state(whole / "checkpoints" / "last.ckpt")
    b = model_state(broken / "checkpoints" / "last.ckpt")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    assert not list((broken / "checkpoints").glob("*.partial"))
