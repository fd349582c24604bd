"""ESPnet2's optimizer and scheduler keys, mapped onto :class:`~espnet_train.config.OptimConfig`.

``training.yaml`` accepts ESPnet2's shape as it is written in ``egs2/*/conf/train_*.yaml``::

    optim: adam
    optim_conf: {lr: 0.002, weight_decay: 0.000001}
    scheduler: warmuplr
    scheduler_conf: {warmup_steps: 15000}

with ESPnet2's meaning: what ``optim_conf`` leaves out takes the optimizer class's
default (``torch.optim.Adam``: ``betas [0.9, 0.999]``, ``eps 1e-8``, ``weight_decay 0``;
ESPnet2's ``sgd``: ``lr 0.1``), ``scheduler_conf`` likewise (``warmuplr``:
``warmup_steps 25000``), and no ``scheduler`` means a constant learning rate.
``adam``, ``adamw`` and ``sgd`` become this project's fused optimizers; ESPnet2's other
names (and any ``optim_conf`` key those three do not model, e.g. ``amsgrad``) become the
``torch.optim`` class by ``class_path``. Schedulers: ``warmuplr``, ``noamlr``,
``reducelronplateau`` and none; the others are refused with what to use instead.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from .config import OptimConfig

#: ESPnet2's ``optim`` names (espnet2.tasks.abs_task.optim_classes) -> torch classes
OPTIMIZERS: dict[str, str] = {
    "adam": "torch.optim.Adam", "adamw": "torch.optim.AdamW", "sgd": "torch.optim.SGD",
    "adadelta": "torch.optim.Adadelta", "adagrad": "torch.optim.Adagrad",
    "adamax": "torch.optim.Adamax", "asgd": "torch.optim.ASGD", "rmsprop": "torch.optim.RMSprop",
    "rprop": "torch.optim.Rprop", "radam": "torch.optim.RAdam",
}  # fmt: skip
#: ESPnet2's own ``sgd`` differs from torch's in its default lr
_ESPNET2_DEFAULTS: dict[str, dict[str, Any]] = {"sgd": {"lr": 0.1}}
#: optim_conf keys OptimConfig models for the built-in optimizers (the rest: class_path)
_MODELLED: dict[str, tuple[str, ...]] = {
    "adam": ("lr", "betas", "eps", "weight_decay"),
    "adamw": ("lr", "betas", "eps", "weight_decay"),
    "sgd": ("lr", "momentum", "nesterov", "weight_decay"),
}
#: ESPnet2 scheduler name -> (OptimConfig.scheduler, {scheduler_conf key: OptimConfig field})
SCHEDULERS: dict[str, tuple[str, dict[str, str]]] = {
    "warmuplr": ("warmuplr", {"warmup_steps": "warmup_steps"}),
    "noamlr": ("noam", {"model_size": "model_size", "warmup_steps": "warmup_steps"}),
    "reducelronplateau": ("reduce_on_plateau", {"factor": "plateau_factor", "patience": "plateau_patience",
                                                "min_lr": "min_lr"}),
}  # fmt: skip
#: ESPnet2's scheduler defaults (its classes' signatures; torch's for the plateau)
_SCHEDULER_DEFAULTS: dict[str, dict[str, Any]] = {
    "warmuplr": {"warmup_steps": 25000},
    "noamlr": {"model_size": 320, "warmup_steps": 25000},
    "reducelronplateau": {"factor": 0.1, "patience": 10, "min_lr": 0.0},
}
#: scheduler_conf keys accepted at these values only (the plateau's mode is monitor_mode's)
_PLATEAU_NEUTRAL: dict[str, Any] = {"mode": ("min", "max"), "threshold": 1e-4, "threshold_mode": "rel",
                                    "cooldown": 0, "eps": 1e-8, "verbose": False}


def _torch_defaults(class_path: str) -> dict[str, Any]:
    import torch  # noqa: F401 (the class is torch.optim's)

    module, _, name = class_path.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    return {k: p.default for k, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty}


def translate_optim(
    optim: str | Mapping[str, Any],
    optim_conf: Mapping[str, Any] | None,
    scheduler: str | None,
    scheduler_conf: Mapping[str, Any] | None,
) -> OptimConfig:
    """ESPnet2's four keys as one :class:`OptimConfig` (module docstring).

    ``optim`` may also be ``{class_path, init_args}`` (then ``optim_conf`` must be empty).

    Raises:
        ValueError: an unknown name or key, naming the closest valid one.
    """
    conf = dict(optim_conf or {})
    if isinstance(optim, Mapping):
        if conf:
            raise ValueError("optim_conf goes with optim: <name> (ESPnet2's shape); with optim: "
                             "{class_path, init_args} put the arguments in init_args")
        out = OptimConfig(optimizer=dict(optim))
    else:
        out = _optimizer(optim.lower(), conf)
    return _scheduler(out, scheduler, dict(scheduler_conf or {}))


def _optimizer(name: str, conf: dict[str, Any]) -> OptimConfig:
    if name not in OPTIMIZERS:
        match = difflib.get_close_matches(name, OPTIMIZERS, n=1)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        raise ValueError(f"optim: {name!r} is not one of ESPnet2's optimizers{hint}: "
                         f"{', '.join(OPTIMIZERS)}; any other torch optimizer by optim: "
                         "{class_path: torch.optim.X, init_args: {...}}")
    class_path = OPTIMIZERS[name]
    conf = {**_ESPNET2_DEFAULTS.get(name, {}), **conf}
    if name in _MODELLED and set(conf) <= set(_MODELLED[name]):
        defaults = _torch_defaults(class_path)
        values = {k: conf.get(k, defaults[k]) for k in _MODELLED[name]}
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return OptimConfig(name=name, **values)  # type: ignore[arg-type]
    return OptimConfig(optimizer={"class_path": class_path, "init_args": conf})


def _scheduler(out: OptimConfig, name: str | None, conf: dict[str, Any]) -> OptimConfig:
    if name is None or str(name).lower() == "none":
        if conf:
            raise ValueError("scheduler_conf is set but scheduler is not: name one (e.g. warmuplr)")
        out.scheduler = "constant"
        return out
    key = str(name).lower()
    if key not in SCHEDULERS:
        match = difflib.get_close_matches(key, SCHEDULERS, n=1)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        raise ValueError(
            f"scheduler: {name!r}{hint} is not implemented here; ESPnet2's warmuplr, noamlr, "
            "reducelronplateau and none are, and so are this project's cosine and linear "
            "(optim: {scheduler: cosine, warmup_steps: ...})"
        )
    target, fields = SCHEDULERS[key]
    values = {**_SCHEDULER_DEFAULTS[key], **conf}
    for arg, value in values.items():
        if arg in fields:
            continue
        neutral = _PLATEAU_NEUTRAL.get(arg) if key == "reducelronplateau" else None
        if neutral is not None and (value in neutral if isinstance(neutral, tuple) else value == neutral):
            continue
        match = difflib.get_close_matches(arg, fields, n=1)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        raise ValueError(f"scheduler_conf.{arg}={value!r}{hint} is not supported with scheduler: "
                         f"{key}; its keys here: {', '.join(fields)}")
    out.scheduler = target  # type: ignore[assignment]
    for arg, attr in fields.items():
        value = values[arg]
        setattr(out, attr, int(value) if attr in ("warmup_steps", "model_size", "plateau_patience") else value)
    return out
