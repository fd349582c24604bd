"""Optimizers and learning-rate schedules from :class:`~espnet_train.config.OptimConfig`.

The one place where an ``optim:`` block becomes ``torch.optim`` objects. Step-based
schedules are ``LambdaLR`` multipliers of the peak ``lr`` (stepped once per optimizer
step by :class:`~espnet_train.module.LitESPnetModel`, never on a skipped batch);
``reduce_on_plateau`` is torch's ``ReduceLROnPlateau``, stepped once per epoch on the
monitored validation metric. ``cosine`` and ``linear`` decay over the run: by steps, or
with ``horizon: time`` until ``trainer.max_time`` as well (:mod:`espnet_train.budget`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from .budget import TrainingBudget
from .config import OptimConfig

LRLambda = Callable[[int], float]


#: schedules that end, and so can be sized by ``horizon: time``
DECAYING = ("cosine", "linear")


def lr_lambda(optim: OptimConfig, total_steps: int | None,
              budget: TrainingBudget | None = None) -> LRLambda:
    """The multiplier of the peak LR at optimizer step ``step`` (0-based).

    ``budget`` (``horizon: time``) lets the decay of ``cosine``/``linear`` follow the
    larger of the step and the time fraction of the run, so it ends with ``max_time``.
    """
    warmup = max(1, optim.warmup_steps)
    floor = optim.min_lr / optim.lr

    def decayed(step: int) -> float:
        """Progress of the decay after warmup, in [0, 1]."""
        total = max(total_steps or warmup * 10, warmup + 1)
        progress = min(1.0, (step - warmup) / (total - warmup))
        if budget is not None:
            progress = max(progress, budget.time_fraction())
        return progress

    def warmuplr(step: int) -> float:
        step = step + 1
        return min(step / warmup, (warmup / step) ** 0.5)

    def noam(step: int) -> float:
        step = step + 1
        return optim.model_size**-0.5 * min(step**-0.5, step * warmup**-1.5)

    def cosine(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * decayed(step)))

    def linear(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return floor + (1 - floor) * (1 - decayed(step))

    def constant(step: int) -> float:
        return 1.0

    schedules: dict[str, LRLambda] = {
        "warmuplr": warmuplr, "noam": noam, "cosine": cosine, "linear": linear, "constant": constant,
    }
    if optim.scheduler not in schedules:
        raise ValueError(f"optim.scheduler: {optim.scheduler!r} is not a step-based schedule")
    if optim.horizon == "time" and optim.scheduler not in DECAYING:
        raise ValueError(f"optim.horizon: time sizes a schedule that ends ({', '.join(DECAYING)}); "
                         f"optim.scheduler: {optim.scheduler} has no end: use scheduler: cosine or "
                         "horizon: steps")
    return schedules[optim.scheduler]


def _fusable(params: list[torch.nn.Parameter]) -> bool:
    """torch's fused kernels take floating-point parameters on a CPU or a CUDA device."""
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def build_optimizer(optim: OptimConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """``adamw``, ``adam`` or ``sgd`` with the block's hyper-parameters.

    Fused (one kernel for all parameters) wherever torch has it: faster than the
    per-tensor loops, and the fused step can skip itself on a device-side flag
    (``found_inf``), which lets :class:`~espnet_train.module.LitESPnetModel` skip a
    NaN/Inf batch without waiting for the device.
    """
    params = list(params)
    if optim.optimizer is not None:  # any torch optimizer by class_path (the user's training.yaml)
        from .components import build_optimizer as build_by_class_path

        return build_by_class_path(optim.optimizer, params)
    fused = True if _fusable(params) else None
    if optim.name == "adamw":
        return torch.optim.AdamW(
            params, lr=optim.lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay, fused=fused
        )
    if optim.name == "adam":
        return torch.optim.Adam(
            params, lr=optim.lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay, fused=fused
        )
    if optim.name == "sgd":
        return torch.optim.SGD(
            params, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov,
            weight_decay=optim.weight_decay, fused=fused,
        )
    raise ValueError(f"optim.name: {optim.name!r}; choose adamw, adam or sgd")


def build_scheduler(
    optim: OptimConfig,
    optimizer: torch.optim.Optimizer,
    total_steps: int | None,
    mode: str = "min",
    budget: TrainingBudget | None = None,
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau:
    """The schedule of ``optim.scheduler`` on ``optimizer`` (``mode``: of the monitored metric;
    ``budget``: the run's clock, for ``horizon: time``)."""
    if optim.scheduler == "reduce_on_plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=optim.plateau_factor, patience=optim.plateau_patience,
            min_lr=optim.min_lr,
        )
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(optim, total_steps, budget if optim.horizon == "time" else None))


def split_parameters(
    model: torch.nn.Module, optims: dict[str, OptimConfig]
) -> dict[str, list[torch.nn.Parameter]]:
    """Route every trainable parameter to the named optimizer whose ``params`` prefix it has.

    A single optimizer without ``params`` takes every parameter. Raises ``ValueError`` naming the optimizer or parameter when a prefix is missing,
    matches nothing, or a parameter belongs to no optimizer or to two.
    """
    groups: dict[str, list[torch.nn.Parameter]] = {name: [] for name in optims}
    if len(optims) == 1 and not next(iter(optims.values())).params:  # one optimizer: everything
        return {name: [p for p in model.parameters() if p.requires_grad] for name in optims}
    for name, conf in optims.items():
        if not conf.params:
            raise ValueError(
                f"optims.{name}.params is not set: give the prefix of the parameter names it "
                "updates, e.g. params: generator."
            )
    for pname, param in model.named_parameters():
        if not param.requires_grad:
            continue
        owners = [name for name, conf in optims.items() if pname.startswith(conf.params or "")]
        if len(owners) != 1:
            raise ValueError(
                f"parameter {pname!r} matches {len(owners)} optimizers {owners} of optims "
                f"(prefixes {[c.params for c in optims.values()]}); each parameter needs exactly one"
            )
        groups[owners[0]].append(param)
    for name, params in groups.items():
        if not params:
            raise ValueError(f"optims.{name}.params {optims[name].params!r} matches no parameter")
    return groups
