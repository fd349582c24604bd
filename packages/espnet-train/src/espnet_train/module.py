"""The LightningModule around the model contract.

Any ``torch.nn.Module`` whose ``forward(**batch)`` returns ``(loss, stats, weight)``
(the ESPnet2 convention, see ``espnet_model.ASRModel``) or a list of
:class:`~espnet_train.contract.OptimizationStep` in place of ``loss`` trains here.

The module optimizes by hand (Lightning's manual optimization) because it owns what
automatic optimization cannot do together: a NaN/Inf batch is skipped on every DDP
rank at once (one all-reduced flag) without stepping the optimizer or the LR schedule;
gradient accumulation counts only good batches; each loss of a multi-optimizer model
goes to its named optimizer, with that optimizer's clipping; ``bad_batch_limit``
bad batches in a row stop training with an error.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any

import lightning as L
import numpy as np
import torch

from .config import OptimConfig
from .contract import OptimizationStep, unpack_output
from .optim import build_optimizer, build_scheduler, lr_lambda, split_parameters

log = logging.getLogger(__name__)

MODEL_INPUTS = ("speech", "speech_lengths", "text", "text_lengths")
MAIN = "main"  # the name of the single optimizer of ``optim:``

__all__ = ["LitESPnetModel", "lr_lambda"]


class LitESPnetModel(L.LightningModule):
    """Train any model that follows the ``(loss, stats, weight)`` contract.

    Args:
        model: the wrapped model (kept as ``self.model``; checkpoints hold ``model.*``).
        optim: the single optimizer (``optim:`` of training.yaml).
        optims: named optimizers for multi-optimizer models (replaces ``optim``).
        nan_policy: ``skip`` or ``raise`` on a non-finite loss or gradient.
        bad_batch_limit: consecutive bad batches that stop training (``skip``).
        total_steps: expected optimizer steps of the whole run (cosine schedule).
        gradient_clip_val: global gradient-norm clip (None or 0: none).
        accumulate_grad_batches: good batches per optimizer step.
        monitor, monitor_mode: the metric ``reduce_on_plateau`` follows.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optim: OptimConfig | None = None,
        *,
        optims: dict[str, OptimConfig] | None = None,
        nan_policy: str = "skip",
        bad_batch_limit: int = 100,
        total_steps: int | None = None,
        gradient_clip_val: float | None = None,
        accumulate_grad_batches: int = 1,
        monitor: str = "valid/loss",
        monitor_mode: str = "min",
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = model
        if optims and optim is not None and optim != OptimConfig():
            raise ValueError("set either optim (one optimizer) or optims (named optimizers), not both")
        self.optim_confs: dict[str, OptimConfig] = dict(optims) if optims else {MAIN: optim or OptimConfig()}
        if accumulate_grad_batches < 1:
            raise ValueError(f"trainer.accumulate_grad_batches: {accumulate_grad_batches} must be >= 1")
        if accumulate_grad_batches > 1 and len(self.optim_confs) > 1:
            raise ValueError("trainer.accumulate_grad_batches > 1 is not supported with several optims")
        self.optim = next(iter(self.optim_confs.values()))
        self.nan_policy = nan_policy
        self.bad_batch_limit = bad_batch_limit
        self.total_steps = total_steps
        self.gradient_clip_val = gradient_clip_val
        self.accumulate_grad_batches = accumulate_grad_batches
        self.monitor = monitor
        self.monitor_mode = monitor_mode
        # counters (saved in checkpoints)
        self.skipped_batches = 0
        self.consecutive_bad = 0
        self.trained_batches = 0
        self.optimizer_steps = 0
        self._pending = 0  # good batches whose gradients wait for the next optimizer step
        self._sums: dict[str, torch.Tensor] = {}
        self._weights: dict[str, torch.Tensor] = {}
        self._rng_to_restore: dict[str, Any] | None = None

    # ---------------------------------------------------------------- forward

    def _forward(self, batch: dict[str, Any]) -> tuple[list[OptimizationStep], dict[str, Any], int]:
        out = self.model(**{k: batch[k] for k in MODEL_INPUTS if k in batch})
        steps, loss, stats, weight = unpack_output(self.model, out)
        if steps is None:
            assert loss is not None
            steps = [OptimizationStep(loss=loss, name=MAIN)] if len(self.optim_confs) == 1 else []
            if not steps:
                raise TypeError(
                    f"{type(self.model).__name__}.forward returned one loss but optims has "
                    f"{list(self.optim_confs)}: return a list of OptimizationStep(loss=..., name=...)"
                )
            if MAIN not in self.optim_confs:  # optims with one entry: route to it
                steps = [OptimizationStep(loss=loss, name=next(iter(self.optim_confs)))]
        else:
            unknown = [s.name for s in steps if s.name not in self.optim_confs]
            if unknown:
                raise KeyError(
                    f"{type(self.model).__name__} returned OptimizationStep names {unknown} that are not "
                    f"in optims (configured: {list(self.optim_confs)}); add them under optims:"
                )
            for step in steps:
                stats.setdefault(f"{step.name}/loss", step.loss.detach())
        if weight is None:
            keys = batch.get("keys")
            weight = len(keys) if keys is not None else 1
        return steps, stats, weight

    def _any_rank(self, flag: bool) -> bool:
        """True when ``flag`` is True on any rank (all ranks learn it together)."""
        if self.trainer.world_size <= 1:
            return flag
        value = torch.tensor(float(flag), device=self.device)
        return bool(self.trainer.strategy.reduce(value, reduce_op="sum").item() > 0)

    # ---------------------------------------------------------------- training

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._rng_to_restore is not None:  # the first batch after a resume
            _set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        steps, stats, weight = self._forward(batch)
        bad = not all(bool(torch.isfinite(s.loss)) for s in steps)
        optimizers = self._optimizers_by_name()
        if self._any_rank(bad):
            if self._pending and self.trainer.is_last_batch:  # gradients of earlier good batches
                for name, opt in optimizers.items():
                    self._clip_and_step(name, opt)
                self._pending = 0
            self._bad_batch(batch, "loss", [float(s.loss.detach()) for s in steps])
            return
        accum = self.accumulate_grad_batches
        self._pending += 1
        due = self._pending >= accum or self.trainer.is_last_batch
        bad_grad = False
        for i, step in enumerate(steps):
            opt = optimizers[step.name]
            if accum == 1:
                opt.zero_grad(set_to_none=True)
            loss = step.loss / accum if accum > 1 else step.loss
            self.manual_backward(loss, retain_graph=i < len(steps) - 1)
            if due:
                bad_grad |= not self._clip_and_step(step.name, opt)
        if due:
            self._pending = 0
        if bad_grad:
            self._bad_batch(batch, "gradient", None)
            return
        self.consecutive_bad = 0
        self.trained_batches += 1
        self._record(stats, weight)
        if len(optimizers) == 1:
            self.log("train/lr", next(iter(optimizers.values())).param_groups[0]["lr"], batch_size=weight)
        else:
            for name, opt in optimizers.items():
                self.log(f"train/lr_{name}", opt.param_groups[0]["lr"], batch_size=weight)

    def _clip_and_step(self, name: str, opt: Any) -> bool:
        """Clip, step the optimizer and its step-based schedule; False on a non-finite gradient."""
        clip = self.optim_confs[name].grad_clip
        clip = self.gradient_clip_val if clip is None else clip
        params = [p for g in opt.param_groups for p in g["params"]]
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            # 16-mixed: the plugin unscales first and the scaler skips inf/nan steps itself
            if clip:
                self.clip_gradients(opt, gradient_clip_val=clip, gradient_clip_algorithm="norm")
            finite = True
        else:
            norm = torch.nn.utils.clip_grad_norm_(params, clip if clip else math.inf)
            finite = bool(torch.isfinite(norm))  # identical on every rank: DDP averaged the grads
        if finite:
            opt.step()
            self.optimizer_steps += 1
            scheduler = self._schedulers_by_name().get(name)
            if scheduler is not None and not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step()
        opt.zero_grad(set_to_none=True)
        return finite

    def _bad_batch(self, batch: dict[str, Any], what: str, losses: list[float] | None) -> None:
        keys = list(batch.get("keys", []))[:3]
        if self.nan_policy == "raise":
            raise FloatingPointError(
                f"non-finite {what} {losses if losses is not None else ''} on batch {keys}...; "
                "set nan_policy: skip to drop such batches"
            )
        self.skipped_batches += 1
        self.consecutive_bad += 1
        log.warning("skipping a batch with non-finite %s on some rank (keys here %s...)", what, keys)
        self.log("train/skipped_batches", float(self.skipped_batches), batch_size=1)
        if self.consecutive_bad >= self.bad_batch_limit:
            raise RuntimeError(
                f"{self.consecutive_bad} consecutive batches had a non-finite loss or gradient "
                f"(max_consecutive_bad_batches: {self.bad_batch_limit}); training stopped. Lower "
                "optim.lr, raise warmup_steps, check the data, or use precision: 32-true"
            )

    def _record(self, stats: dict[str, Any], weight: int) -> None:
        for name, value in stats.items():
            if value is None:
                continue
            value = value.detach().float() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
            self.log(f"train/{name}", value, batch_size=weight, prog_bar=name == "loss")
            w = torch.tensor(float(weight), device=value.device)
            self._sums[name] = torch.as_tensor(self._sums.get(name, 0.0)).to(value.device) + value * w
            self._weights[name] = torch.as_tensor(self._weights.get(name, 0.0)).to(value.device) + w

    def epoch_train_means(self) -> dict[str, float]:
        """The batch-size-weighted means of this epoch's training stats on all ranks; resets them."""
        keys = sorted(self._sums)
        if not keys:
            return {}
        packed = torch.stack(
            [torch.as_tensor(self._sums[k]).to(self.device) for k in keys]
            + [torch.as_tensor(self._weights[k]).to(self.device) for k in keys]
        )
        packed = self.trainer.strategy.reduce(packed, reduce_op="sum")
        self._sums, self._weights = {}, {}
        n = len(keys)
        return {k: float(packed[i] / packed[n + i]) for i, k in enumerate(keys) if packed[n + i] > 0}

    def on_train_epoch_start(self) -> None:
        self._sums, self._weights = {}, {}

    def step_epoch_schedulers(self, metrics: dict[str, Any]) -> None:
        """Step ``reduce_on_plateau`` schedules on the monitored metric (once per epoch)."""
        for name, scheduler in self._schedulers_by_name().items():
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                if self.monitor not in metrics:
                    raise KeyError(
                        f"optims.{name}: reduce_on_plateau follows monitor {self.monitor!r}, which the "
                        f"validation did not log (logged: {sorted(k for k in metrics if k.startswith('valid/'))})"
                    )
                scheduler.step(float(metrics[self.monitor]))

    # ---------------------------------------------------------------- validation

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        _, stats, weight = self._forward(batch)
        for name, value in stats.items():
            if value is not None:
                self.log(
                    f"valid/{name}", value, batch_size=weight, on_epoch=True,
                    prog_bar=name in ("loss", "acc"), sync_dist=True,
                )

    # ---------------------------------------------------------------- optimizers

    def configure_optimizers(self) -> Any:
        if len(self.optim_confs) == 1 and MAIN in self.optim_confs:
            groups = {MAIN: [p for p in self.model.parameters() if p.requires_grad]}
        else:
            groups = split_parameters(self.model, self.optim_confs)
        optimizers, schedulers = [], []
        for name, conf in self.optim_confs.items():
            opt = build_optimizer(conf, groups[name])
            sched = build_scheduler(conf, opt, self.total_steps, mode=self.monitor_mode)
            optimizers.append(opt)
            entry: dict[str, Any] = {"scheduler": sched, "interval": "step", "name": f"lr_{name}"}
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                entry.update(interval="epoch", monitor=self.monitor)
            schedulers.append(entry)
        if len(optimizers) == 1:
            return {"optimizer": optimizers[0], "lr_scheduler": schedulers[0]}
        return optimizers, schedulers

    def _optimizers_by_name(self) -> dict[str, Any]:
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        return dict(zip(self.optim_confs, opts, strict=True))

    def _schedulers_by_name(self) -> dict[str, Any]:
        scheds = self.lr_schedulers()
        if scheds is None:
            return {}
        scheds = scheds if isinstance(scheds, list) else [scheds]
        return dict(zip(self.optim_confs, scheds, strict=True))

    # ---------------------------------------------------------------- checkpoints

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["espnet_train"] = {
            "skipped_batches": self.skipped_batches,
            "consecutive_bad": self.consecutive_bad,
            "trained_batches": self.trained_batches,
            "optimizer_steps": self.optimizer_steps,
            "rng": _get_rng_state(),
            # this epoch's running sums, so a mid-epoch resume keeps the epoch means whole
            "epoch_sums": {k: torch.as_tensor(v).detach().cpu() for k, v in self._sums.items()},
            "epoch_weights": {k: torch.as_tensor(v).detach().cpu() for k, v in self._weights.items()},
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("espnet_train")
        if not state:
            return
        self.skipped_batches = state["skipped_batches"]
        self.consecutive_bad = state["consecutive_bad"]
        self.trained_batches = state["trained_batches"]
        self.optimizer_steps = state["optimizer_steps"]
        self._rng_to_restore = state["rng"]  # applied at the first training batch
        # a mid-epoch restart does not call on_train_epoch_start: the sums continue as saved
        self._sums = dict(state.get("epoch_sums", {}))
        self._weights = dict(state.get("epoch_weights", {}))


def _get_rng_state() -> dict[str, Any]:
    # plain types and tensors only: Lightning loads checkpoints with weights_only=True
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
