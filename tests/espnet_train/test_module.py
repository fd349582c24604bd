"""LitESPnetModel: the NaN/Inf policy, the optimizer and the LR schedules."""

from __future__ import annotations

import dataclasses
import math

import lightning as L
import pytest
import torch
from espnet_train import LitESPnetModel, OptimConfig, OptimizationStep
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


def test_skipped_batch_does_not_advance_the_schedule(tmp_path) -> None:  # noqa: ANN001
    optim = OptimConfig(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.0, scheduler="warmuplr", warmup_steps=10)
    lit = LitESPnetModel(_Dummy(), optim)
    _fit(lit, BATCHES, tmp_path)  # 2 good, 2 bad batches
    assert lit.optimizer_steps == 2
    assert lit.optimizers().param_groups[0]["lr"] == pytest.approx(0.1 * 3 / 10)


def test_consecutive_bad_batches_stop_training(tmp_path) -> None:  # noqa: ANN001
    lit = LitESPnetModel(_Dummy(), OptimConfig(), bad_batch_limit=3)
    batches = [_batch(1.0, "ok"), *(_batch(float("nan"), f"bad{i}") for i in range(3)), _batch(1.0, "never")]
    with pytest.raises(RuntimeError, match="3 consecutive batches"):
        _fit(lit, batches, tmp_path)
    lit = LitESPnetModel(_Dummy(), OptimConfig(), bad_batch_limit=3)
    _fit(lit, [_batch(float("nan"), "a"), _batch(float("nan"), "b"), _batch(1.0, "c"),
               _batch(float("nan"), "d"), _batch(float("nan"), "e")], tmp_path)  # never 3 in a row
    assert lit.skipped_batches == 4 and lit.consecutive_bad == 2


def test_gradient_accumulation_steps_every_k_good_batches(tmp_path) -> None:  # noqa: ANN001
    sgd = OptimConfig(name="sgd", lr=0.05, momentum=0.0, weight_decay=0.0, scheduler="constant")
    batches = [_batch(1.0, "a"), _batch(2.0, "b"), _batch(float("nan"), "x"), _batch(3.0, "c"), _batch(1.0, "d")]
    lit = LitESPnetModel(_Dummy(), sgd, accumulate_grad_batches=2)
    _fit(lit, batches, tmp_path)
    assert lit.optimizer_steps == 2 and lit.trained_batches == 4
    # by hand: loss = mean((w x)^2) -> grad 2 w x^2; mean of each pair, one SGD step per pair
    w = 1.0
    for pair in ((1.0, 2.0), (3.0, 1.0)):
        w -= 0.05 * sum(2 * w * x * x for x in pair) / 2
    assert lit.model.w.item() == pytest.approx(w)


def test_accumulated_gradients_are_stepped_when_the_last_batch_is_bad(tmp_path) -> None:  # noqa: ANN001
    sgd = OptimConfig(name="sgd", lr=0.05, momentum=0.0, weight_decay=0.0, scheduler="constant")
    lit = LitESPnetModel(_Dummy(), sgd, accumulate_grad_batches=3)
    _fit(lit, [_batch(1.0, "a"), _batch(float("nan"), "x")], tmp_path)
    assert lit.optimizer_steps == 1 and lit.skipped_batches == 1
    assert lit.model.w.item() == pytest.approx(1 - 0.05 * 2 / 3)  # loss / 3 of the one good batch


def test_gradient_clipping(tmp_path) -> None:  # noqa: ANN001
    sgd = OptimConfig(name="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, scheduler="constant")
    lit = LitESPnetModel(_Dummy(), sgd, gradient_clip_val=0.5)
    _fit(lit, [_batch(3.0, "a")], tmp_path)  # grad 18, clipped to 0.5
    assert lit.model.w.item() == pytest.approx(0.5)
    lit = LitESPnetModel(_Dummy(), dataclasses.replace(sgd, grad_clip=0.25), gradient_clip_val=0.5)
    _fit(lit, [_batch(3.0, "a")], tmp_path)  # the optimizer's own grad_clip wins
    assert lit.model.w.item() == pytest.approx(0.75)


class _GAN(torch.nn.Module):
    """Two independent parameters; ``which`` says which OptimizationSteps forward returns."""

    def __init__(self, which: tuple[str, ...]) -> None:
        super().__init__()
        self.generator = torch.nn.Linear(1, 1, bias=False)
        self.discriminator = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.ones_(self.generator.weight)
        torch.nn.init.ones_(self.discriminator.weight)
        self.which = which

    def forward(self, speech, speech_lengths, text, text_lengths):  # noqa: ANN001
        x = speech[:, :1]
        losses = {"generator": self.generator(x).pow(2).mean(), "discriminator": self.discriminator(x).pow(2).mean()}
        steps = [OptimizationStep(loss=losses[n], name=n) for n in self.which]
        return steps, {"g": losses["generator"].detach()}, None


def _gan_optims() -> dict:
    base = {"name": "sgd", "momentum": 0.0, "weight_decay": 0.0, "scheduler": "constant"}
    return {"generator": OptimConfig(**base, lr=0.1, params="generator."),
            "discriminator": OptimConfig(**base, lr=0.2, params="discriminator.")}


def test_multi_optimizer_routes_each_loss_to_its_optimizer(tmp_path) -> None:  # noqa: ANN001
    lit = LitESPnetModel(_GAN(("generator",)), optims=_gan_optims())
    trainer = _fit(lit, [_batch(1.0, "a")], tmp_path)
    assert lit.model.generator.weight.item() == pytest.approx(1 - 0.1 * 2)
    assert lit.model.discriminator.weight.item() == 1.0  # not named: untouched
    assert "train/generator/loss" in trainer.callback_metrics
    lit = LitESPnetModel(_GAN(("generator", "discriminator")), optims=_gan_optims())
    _fit(lit, [_batch(1.0, "a")], tmp_path)
    assert lit.model.generator.weight.item() == pytest.approx(0.8)
    assert lit.model.discriminator.weight.item() == pytest.approx(1 - 0.2 * 2)
    assert lit.optimizer_steps == 2


def test_unknown_optimizer_name_is_named(tmp_path) -> None:  # noqa: ANN001
    lit = LitESPnetModel(_GAN(("discriminator",)), optims={"critic": OptimConfig(params="")})
    with pytest.raises(KeyError, match=r"\['discriminator'\].*critic"):
        _fit(lit, [_batch(1.0, "a")], tmp_path)


def test_training_steps_read_nothing_back_between_settles(tmp_path) -> None:  # noqa: ANN001
    """The per-step path keeps the NaN check on the device: no .item()/bool() until a settle."""
    from torch.utils._python_dispatch import TorchDispatchMode

    reads: list[int] = []

    class _Reads(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            if func is torch.ops.aten._local_scalar_dense.default:
                reads.append(1)
            return func(*args, **(kwargs or {}))

    lit = LitESPnetModel(_Dummy(), OptimConfig(warmup_steps=1), nan_policy="skip")
    step = lit.training_step
    counts: list[int] = []

    def counted(batch, batch_idx):  # noqa: ANN001, ANN202
        reads.clear()
        with _Reads():
            step(batch, batch_idx)
        counts.append(len(reads))

    lit.training_step = counted
    _fit(lit, [*BATCHES, *BATCHES], tmp_path)  # 8 batches, log_every_n_steps 50: settled at the epoch end
    assert counts == [0] * 8
    assert lit.skipped_batches == 4 and lit.trained_batches == 4 and lit.optimizer_steps == 4
    assert torch.isfinite(lit.model.w).all()
