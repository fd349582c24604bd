"""``class_path`` components of ``training.yaml``: callbacks, loggers, profiler, plugins, optimizer.

Each is written as LightningCLI writes it::

    trainer:
      callbacks:
        - class_path: EarlyStopping          # a short name: lightning's own classes
          init_args: {monitor: valid/loss, patience: 3}
      loggers:
        - class_path: lightning.pytorch.loggers.WandbLogger
          init_args: {project: asr}
      profiler: simple                       # or {class_path: ..., init_args: ...}
    optim:
      class_path: torch.optim.RAdam
      init_args: {lr: 0.001}

:func:`check` runs when the config is parsed (before any stage): jsonargparse imports
the class, checks that it is a subclass of what the slot takes, and checks ``init_args``
against its constructor's signature and types; an unknown argument is named with the
closest valid one. The config keeps the spec as plain data (``class_path`` written out
in full, ``init_args`` as given), so the resolved config and the rerun check compare
text, never objects. :func:`build` makes the object, in :func:`espnet_train.train` only.

Trust: a ``class_path`` imports and runs the code it names. These specs come only from
the user's own ``training.yaml``; a model folder holds the model block alone and
loading it builds nothing but :mod:`espnet_model`'s own components.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Mapping
from typing import Any

from jsonargparse import ArgumentParser, Namespace

Spec = dict[str, Any]


#: constructor arguments the trainer supplies, per base class (never in ``init_args``)
_SUPPLIED: dict[str, set[str]] = {"Optimizer": {"params"}}


def _parser(base: type) -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False)
    skip = _SUPPLIED.get(getattr(base, "__name__", ""))
    if skip:
        parser.add_subclass_arguments(base, "spec", skip=skip, required=True)
    else:
        parser.add_argument("--spec", type=base)
    return parser


def _params(class_path: str) -> list[str]:
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(__import__(module, fromlist=[name]), name)
        return [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
    except (ImportError, AttributeError, TypeError, ValueError):
        return []


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _name(base: Any) -> str:
    """``module.Class`` of a base class, or ``A | B`` of a union of them."""
    members = typing.get_args(base) or (base,)
    return " | ".join(f"{m.__module__}.{m.__qualname__}" for m in members)


_PREFIX = 'Parser key "spec": '


def _explain(where: str, spec: Mapping[str, Any], base: type, err: Exception) -> str:
    """One line from jsonargparse's nested error: the key, what is wrong, the fix."""
    text = " ".join(str(err).split())
    given = str(spec.get("class_path", ""))
    marker = "Option '"
    if marker in text and "is not accepted" in text:
        key = text.split(marker, 1)[1].split("'", 1)[0]
        path = text.split("class_path '", 1)[1].split("'", 1)[0] if "class_path '" in text else given
        supplied = _SUPPLIED.get(getattr(base, "__name__", ""), set())
        if key in supplied:
            return f"{where}.init_args.{key} is supplied by the trainer; remove it"
        params = [p for p in _params(path) if p not in supplied]
        match = difflib.get_close_matches(key, params, n=1, cutoff=0.6)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        return (f"{where}.init_args.{key} is not an argument of {path}{hint}; "
                f"valid keys: {', '.join(params) or '(none)'}")
    if "dot import path" in text or "does not correspond to a subclass" in text or "No module" in text:
        known = {c.__name__ for m in (typing.get_args(base) or (base,)) for c in _subclasses(m)}
        match = difflib.get_close_matches(given.rpartition(".")[2], sorted(known), n=1, cutoff=0.6)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        return (f"{where}.class_path={given!r} does not name an importable subclass of "
                f"{_name(base)}{hint}: give its full dotted path "
                f"(lightning's own classes may be named alone, e.g. EarlyStopping)")
    return f"{where}: {text.removeprefix(_PREFIX)}"


def _parse(where: str, spec: Any, base: type) -> tuple[ArgumentParser, Namespace]:
    if not isinstance(spec, Mapping) or "class_path" not in spec or set(spec) - {"class_path", "init_args"}:
        raise ValueError(f"{where}: expected {{class_path: ..., init_args: {{...}}}}, got {spec!r}")
    parser = _parser(base)
    try:
        return parser, parser.parse_object({"spec": dict(spec)})
    except Exception as err:  # jsonargparse's ArgumentError and the import errors it wraps
        raise ValueError(_explain(where, spec, base, err)) from None


def check(where: str, spec: Any, base: type) -> Spec:
    """``spec`` checked against ``base`` and written out: the full ``class_path`` and the
    ``init_args`` as given (defaults are left to the class).

    Raises:
        ValueError: naming ``where``, the key and the fix.
    """
    _, parsed = _parse(where, spec, base)
    init_args = dict(spec.get("init_args") or {})
    return {"class_path": parsed.spec.class_path, "init_args": init_args}


def build(where: str, spec: Spec, base: type, **extra: Any) -> Any:
    """The object of a checked ``spec`` (``extra``: arguments the trainer supplies, such
    as an optimizer's ``params``)."""
    if extra:
        cls = _class(spec["class_path"])
        return cls(**extra, **dict(spec.get("init_args") or {}))
    parser, parsed = _parse(where, spec, base)
    return parser.instantiate(parsed).spec


def _class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    cls: type = getattr(__import__(module, fromlist=[name]), name)
    return cls


def check_optimizer(where: str, spec: Any) -> Spec:
    """A ``torch.optim.Optimizer`` spec, checked (``params`` comes from the trainer)."""
    import torch

    return check(where, spec, torch.optim.Optimizer)


def optimizer_lr(spec: Spec, *, default: float) -> float:
    """The learning rate a checked optimizer spec starts from: ``init_args.lr``, else its
    class's default, else ``default``."""
    if "lr" in spec["init_args"]:
        return float(spec["init_args"]["lr"])
    param = inspect.signature(_class(spec["class_path"])).parameters.get("lr")
    if param is not None and isinstance(param.default, int | float) and not isinstance(param.default, bool):
        return float(param.default)
    return default


def build_optimizer(spec: Spec, params: list[Any]) -> Any:
    """The optimizer of a checked spec over ``params`` (the hook of
    :func:`espnet_train.optim.build_optimizer` for ``optim.optimizer``)."""
    import torch

    return build("optim.optimizer", spec, torch.optim.Optimizer, params=params)


#: TrainerConfig keys handed to ``lightning.Trainer`` as they are (the run sets the others)
PASSED_AS_GIVEN: tuple[str, ...] = (
    "min_epochs", "max_steps", "min_steps", "limit_train_batches", "limit_val_batches",
    "limit_test_batches", "limit_predict_batches", "overfit_batches", "val_check_interval",
    "check_val_every_n_epoch", "num_sanity_val_steps", "enable_model_summary", "deterministic",
    "benchmark", "inference_mode", "use_distributed_sampler", "detect_anomaly", "sync_batchnorm",
    "reload_dataloaders_every_n_epochs", "enable_autolog_hparams", "model_registry",
)
#: ``profiler:`` names Lightning takes as a string
PROFILERS = ("simple", "advanced", "pytorch", "xla")


def _bases() -> dict[str, Any]:
    from lightning.fabric.plugins import CheckpointIO, ClusterEnvironment
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.plugins import LayerSync, Precision
    from lightning.pytorch.profilers import Profiler

    return {"callbacks": Callback, "loggers": Logger, "profiler": Profiler,
            "plugins": Precision | ClusterEnvironment | CheckpointIO | LayerSync}


def check_trainer_components(tc: Any) -> None:
    """Check ``tc.callbacks`` / ``loggers`` / ``profiler`` / ``plugins`` and write their
    specs out in full (``tc``: a :class:`~espnet_train.config.TrainerConfig`)."""
    bases = _bases()
    for key in ("callbacks", "loggers", "plugins"):
        setattr(tc, key, [check(f"trainer.{key}[{i}]", spec, bases[key])
                          for i, spec in enumerate(getattr(tc, key))])
    if isinstance(tc.profiler, str):
        if tc.profiler not in PROFILERS:
            match = difflib.get_close_matches(tc.profiler, PROFILERS, n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            raise ValueError(f"trainer.profiler={tc.profiler!r} is unknown{hint}; give one of "
                             f"{', '.join(PROFILERS)} or {{class_path, init_args}}")
    elif tc.profiler is not None:
        tc.profiler = check("trainer.profiler", tc.profiler, bases["profiler"])


def lightning_arguments(tc: Any) -> dict[str, Any]:
    """The ``lightning.Trainer`` keyword arguments of :data:`PASSED_AS_GIVEN` and the
    built components: ``callbacks`` and ``logger`` are the user's, to be added to the
    run's own; ``profiler`` and ``plugins`` are set only when given."""
    bases = _bases()
    out = {key: getattr(tc, key) for key in PASSED_AS_GIVEN}
    out["callbacks"] = [build(f"trainer.callbacks[{i}]", s, bases["callbacks"])
                        for i, s in enumerate(tc.callbacks)]
    out["logger"] = [build(f"trainer.loggers[{i}]", s, bases["loggers"]) for i, s in enumerate(tc.loggers)]
    if tc.profiler is not None:
        out["profiler"] = (tc.profiler if isinstance(tc.profiler, str)
                           else build("trainer.profiler", tc.profiler, bases["profiler"]))
    if tc.plugins:
        out["plugins"] = [build(f"trainer.plugins[{i}]", s, bases["plugins"]) for i, s in enumerate(tc.plugins)]
    return out
