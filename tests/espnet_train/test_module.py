"""LitESPnetModel: the NaN/Inf policy, the optimizer and the LR schedules."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from espnet_train import LitESPnetModel, OptimConfig
from espnet_train.module import lr_lambda


class _Dummy(torch.nn.Module):
    """Follows the model contract; the loss is NaN when the batch's speech holds a NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, speech, speech_lengths, text, text_lengths):  # noqa: ANN001
        loss = ((self.w * speech) ** 2).mean()
        return loss, {"loss": loss.detach(), "acc": None}, speech.shape[0]


def _batch(value: float, key: str) -> dict:
    return {
        "keys": [key],
        "speech": torch.full((1, 4), value),
        "speech_lengths": torch.tensor([4]),
        "text": torch.tensor([[1]]),
        "text_lengths": torch.tensor([1]),
    }


def _fit(lit: LitESPnetModel, batches: list[dict], tmp_path) -> L.Trainer:  # noqa: ANN001
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    trainer.fit(lit, loader)
    return trainer


BATCHES = [_batch(1.0, "a"), _batch(float("nan"), "bad1"), _batch(2.0, "b"), _batch(float("inf"), "bad2")]


def test_nan_skip_drops_and_counts_the_batches(tmp_path, caplog) -> None:  # noqa: ANN001
    lit = LitESPnetModel(_Dummy(), OptimConfig(warmup_steps=1), nan_policy="skip")
    trainer = _fit(lit, BATCHES, tmp_path)
    assert lit.skipped_batches == 2
    assert torch.isfinite(lit.model.w).all()
    assert lit.model.w.item() != 1.0  # the finite batches trained
    assert "bad1" in caplog.text and "bad2" in caplog.text
    assert trainer.callback_metrics["train/skipped_batches"] == 2


def test_skipped_batches_leave_the_weights_alone(tmp_path) -> None:  # noqa: ANN001
    lit = LitESPnetModel(_Dummy(), OptimConfig(warmup_steps=1), nan_policy="skip")
    _fit(lit, [_batch(float("nan"), "x"), _batch(float("-inf"), "y")], tmp_path)
    assert lit.skipped_batches == 2
    assert lit.model.w.item() == 1.0


def test_nan_raise_stops_training(tmp_path) -> None:  # noqa: ANN001
    lit = LitESPnetModel(_Dummy(), OptimConfig(warmup_steps=1), nan_policy="raise")
    with pytest.raises(FloatingPointError, match="bad1"):
        _fit(lit, BATCHES, tmp_path)


def test_configure_optimizers_is_adamw_stepped_per_step() -> None:
    optim = OptimConfig(lr=0.01, weight_decay=0.1, betas=(0.8, 0.9), scheduler="constant")
    out = LitESPnetModel(_Dummy(), optim).configure_optimizers()
    opt = out["optimizer"]
    assert isinstance(opt, torch.optim.AdamW)
    group = opt.param_groups[0]
    assert group["lr"] == 0.01 and group["weight_decay"] == 0.1 and group["betas"] == (0.8, 0.9)
    assert out["lr_scheduler"]["interval"] == "step"


def test_warmuplr_peaks_at_warmup_then_decays() -> None:
    f = lr_lambda(OptimConfig(scheduler="warmuplr", warmup_steps=10), None)
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)
    assert f(39) == pytest.approx(0.5)  # (10 / 40) ** 0.5


def test_cosine_warms_up_then_reaches_min_lr() -> None:
    optim = OptimConfig(lr=1e-3, min_lr=1e-5, scheduler="cosine", warmup_steps=10)
    f = lr_lambda(optim, total_steps=110)
    assert f(0) == pytest.approx(0.1)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.01 + 0.99 * 0.5)
    assert f(110) == pytest.approx(0.01)
    assert f(1000) == pytest.approx(0.01)
    assert all(math.isfinite(f(s)) for s in range(0, 200, 7))


def test_constant() -> None:
    f = lr_lambda(OptimConfig(scheduler="constant"), 5)
    assert f(0) == f(100) == 1.0
