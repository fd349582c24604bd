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

The step does not wait for the device. With one optimizer that can skip a step on a
device-side flag (torch's fused Adam/AdamW/SGD, ``found_inf``, as ``GradScaler`` uses
them) and no gradient accumulation, whether a batch is bad stays a tensor: the loss
flag is all-reduced on the device (no host barrier), the backward always runs (on every
rank, so DDP never hangs), and the fused step skips itself when the loss or the
gradient norm is not finite. The host reads the flags of the last
``trainer.log_every_n_steps`` batches at once (:meth:`LitESPnetModel.settle`: one
device-to-host copy), counts, logs and raises then, and rewinds the LR schedule by the
batches it skipped; it also settles at every epoch end and before every checkpoint.
Other set-ups (several optimizers, accumulation, ``16-mixed``'s scaler, an optimizer
without ``found_inf``) check each batch on the host as before.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any

import lightning as L
import numpy as np
import torch

from .budget import TrainingBudget
from .config import OptimConfig
from .contract import OptimizationStep, unpack_output
from .optim import build_optimizer, build_scheduler, lr_lambda, split_parameters

log = logging.getLogger(__name__)

MODEL_INPUTS = ("speech", "speech_lengths", "text", "text_lengths", "durations", "durations_lengths")
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
        budget: the run's clock, for schedules with ``horizon: time``.
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
        budget: TrainingBudget | None = None,
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
        self.budget = budget
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
        # deferred checks: per batch since the last settle, the (loss bad, grad bad) flags on
        # the device and the first keys; the window's stat sums for the progress bar
        self._window: list[tuple[torch.Tensor, list[str]]] = []
        self._wsums: dict[str, torch.Tensor] = {}
        self._wweights: dict[str, torch.Tensor | float] = {}
        self.host_stats: dict[str, float] = {}  # the last settled window's mean stats (good batches)

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

    def _any_rank_on_device(self, flag: torch.Tensor) -> torch.Tensor:
        """``flag`` (a bool tensor) OR-ed over the ranks, staying on the device.

        ``dist.all_reduce`` itself, not ``strategy.reduce``: Lightning's reduce puts a
        barrier first, which under NCCL blocks the host until the device is idle.
        """
        if self.trainer.world_size <= 1:
            return flag
        value = flag.to(torch.float32)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.SUM)
        return value > 0

    def _deferred(self, steps: list[OptimizationStep], optimizers: dict[str, Any]) -> bool:
        """Whether this batch can be checked without waiting for the device (see the module doc)."""
        if len(steps) != 1 or len(optimizers) != 1 or self.accumulate_grad_batches != 1:
            return False
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            return False
        opt = next(iter(optimizers.values()))
        inner = getattr(opt, "optimizer", opt)  # LightningOptimizer wraps the torch one
        return bool(getattr(inner, "_step_supports_amp_scaling", False)) and all(
            g.get("fused") for g in inner.param_groups
        )

    # ---------------------------------------------------------------- training

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._rng_to_restore is not None:  # the first batch after a resume
            _set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        steps, stats, weight = self._forward(batch)
        optimizers = self._optimizers_by_name()
        if self._deferred(steps, optimizers):
            self._deferred_step(batch, steps[0], optimizers[steps[0].name], stats, weight)
        else:
            self._checked_step(batch, steps, optimizers, stats, weight)
        if len(self._window) >= max(1, self.trainer.log_every_n_steps or 1):
            self.settle()
            if self.skipped_batches:
                self.log("train/skipped_batches", torch.tensor(float(self.skipped_batches)), batch_size=1)

    def _deferred_step(self, batch: dict[str, Any], step: OptimizationStep, opt: Any,
                       stats: dict[str, Any], weight: int) -> None:
        """One batch without a host-device synchronisation: the fused step skips itself."""
        bad_loss = self._any_rank_on_device(~torch.isfinite(step.loss.detach()))
        opt.zero_grad(set_to_none=True)
        self.manual_backward(step.loss)  # on every rank, good or bad: DDP never waits
        norm = self._grad_norm(step.name, opt)
        bad_grad = ~torch.isfinite(norm)  # identical on every rank: DDP averaged the grads
        inner = getattr(opt, "optimizer", opt)
        inner.found_inf = (bad_loss | bad_grad).to(torch.float32)
        try:
            opt.step()
        finally:
            del inner.found_inf
        scheduler = self._schedulers_by_name().get(step.name)
        if scheduler is not None and not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step()  # rewound by settle() for every batch it finds skipped
        opt.zero_grad(set_to_none=True)
        self._window.append((torch.stack([bad_loss, bad_grad]), [str(k) for k in list(batch.get("keys", []))[:3]]))
        self._record(stats, weight, good=~(bad_loss | bad_grad))
        self._log_lr(opt, weight)

    def _checked_step(self, batch: dict[str, Any], steps: list[OptimizationStep], optimizers: dict[str, Any],
                      stats: dict[str, Any], weight: int) -> None:
        """One batch checked on the host (one synchronisation or more)."""
        bad = not all(bool(torch.isfinite(s.loss)) for s in steps)
        if self._any_rank(bad):
            if self._pending and self.trainer.is_last_batch:  # gradients of earlier good batches
                for name, opt in optimizers.items():
                    self._clip_and_step(name, opt)
                self._pending = 0
            self._bad_batch(_keys(batch), "loss", [float(s.loss.detach()) for s in steps])
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
            self._bad_batch(_keys(batch), "gradient", None)
            return
        self.consecutive_bad = 0
        self.trained_batches += 1
        self._record(stats, weight)
        if len(optimizers) == 1:
            self._log_lr(next(iter(optimizers.values())), weight)
        else:
            for name, opt in optimizers.items():
                self._log_lr(opt, weight, f"train/lr_{name}")

    def _log_lr(self, opt: Any, weight: int, name: str = "train/lr") -> None:
        # a CPU tensor: a Python float would become a tensor on the device (a host-to-device
        # copy that waits for the device) at every step
        self.log(name, torch.tensor(float(opt.param_groups[0]["lr"])), batch_size=weight)

    def _grad_norm(self, name: str, opt: Any) -> torch.Tensor:
        """Clip ``name``'s gradients (its ``grad_clip`` or ``gradient_clip_val``); the norm, on the device."""
        clip = self.optim_confs[name].grad_clip
        clip = self.gradient_clip_val if clip is None else clip
        params = [p for g in opt.param_groups for p in g["params"]]
        if clip:
            return torch.nn.utils.clip_grad_norm_(params, clip)
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return torch.zeros((), device=self.device)
        return torch.nn.utils.get_total_norm(grads)

    def settle(self) -> None:
        """Read the deferred flags (one device-to-host copy): count, log, raise, rewind the schedule.

        Idempotent; called every ``log_every_n_steps`` batches, at epoch ends, before
        checkpoints and at the end of training.
        """
        window, self._window = self._window, []
        names = sorted(self._wsums)
        wsums, wweights = self._wsums, self._wweights
        self._wsums, self._wweights = {}, {}
        if not window and not names:
            return
        parts = [f.reshape(-1).to(self.device, torch.float32) for f, _ in window]
        parts += [wsums[n].reshape(-1).to(self.device, torch.float32) for n in names]
        parts += [torch.as_tensor(wweights[n]).reshape(-1).to(self.device, torch.float32) for n in names]
        host = torch.cat(parts).tolist()  # the one synchronisation of the window
        flags, host = host[: 2 * len(window)], host[2 * len(window):]
        skipped = 0
        for i, (_, keys) in enumerate(window):
            bad_loss, bad_grad = flags[2 * i] > 0, flags[2 * i + 1] > 0
            if bad_loss or bad_grad:
                skipped += 1
                self._bad_batch(keys, "loss" if bad_loss else "gradient", None)
            else:
                self.consecutive_bad = 0
                self.trained_batches += 1
                self.optimizer_steps += 1
        n = len(names)
        self.host_stats = {k: host[i] / host[n + i] for i, k in enumerate(names) if host[n + i] > 0}
        if skipped:
            self._rewind_schedules(skipped)

    def _rewind_schedules(self, batches: int) -> None:
        """Take ``batches`` steps back from every step-based schedule (their batches were skipped)."""
        for scheduler in self._schedulers_by_name().values():
            if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
                continue
            scheduler.last_epoch -= batches
            opt = scheduler.optimizer
            for group, base, f in zip(opt.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
                group["lr"] = base * f(scheduler.last_epoch)
            scheduler._last_lr = [g["lr"] for g in opt.param_groups]

    def on_train_epoch_end(self) -> None:
        self.settle()
        if self.skipped_batches:
            self.log("train/skipped_batches", torch.tensor(float(self.skipped_batches)), batch_size=1)

    def on_validation_start(self) -> None:
        self.settle()

    def on_train_end(self) -> None:
        self.settle()

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

    def _bad_batch(self, keys: list[str], what: str, losses: list[float] | None) -> None:
        if self.nan_policy == "raise":
            raise FloatingPointError(
                f"non-finite {what} {losses if losses is not None else ''} on batch {keys}...; "
                "set nan_policy: skip to drop such batches"
            )
        self.skipped_batches += 1
        self.consecutive_bad += 1
        log.warning("skipping a batch with non-finite %s on some rank (keys here %s...)", what, keys)
        if self.consecutive_bad >= self.bad_batch_limit:
            raise RuntimeError(
                f"{self.consecutive_bad} consecutive batches had a non-finite loss or gradient "
                f"(max_consecutive_bad_batches: {self.bad_batch_limit}); training stopped. Lower "
                "optim.lr, raise warmup_steps, check the data, or use precision: 32-true"
            )

    def _record(self, stats: dict[str, Any], weight: int, good: torch.Tensor | None = None) -> None:
        """Log the batch's stats and add them to the epoch's and the window's sums.

        ``good``: a device flag (deferred check): a bad batch adds nothing. No value is
        read back here: logged tensors stay on the device until Lightning's logging step
        (``prog_bar`` would read every step; the progress bar shows :attr:`host_stats`).
        """
        for name, value in stats.items():
            if value is None:
                continue
            value = value.detach().float() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
            self.log(f"train/{name}", value, batch_size=weight)
            contrib = value * float(weight)
            w: torch.Tensor | float = float(weight)
            if good is not None:
                contrib = torch.where(good, contrib, 0.0)
                w = good.to(torch.float32) * float(weight)
            for sums, weights in ((self._sums, self._weights), (self._wsums, self._wweights)):
                sums[name] = sums[name] + contrib if name in sums else contrib
                weights[name] = weights[name] + w if name in weights else w

    def epoch_train_means(self) -> dict[str, float]:
        """The batch-size-weighted means of this epoch's training stats on all ranks; resets them."""
        self.settle()
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
            sched = build_scheduler(conf, opt, self.total_steps, mode=self.monitor_mode, budget=self.budget)
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
        self.settle()  # the counters must be whole (AtomicCheckpoint settles before saving)
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


def _keys(batch: dict[str, Any]) -> list[str]:
    """The first keys of ``batch``, for messages."""
    return [str(k) for k in list(batch.get("keys", []))[:3]]


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
