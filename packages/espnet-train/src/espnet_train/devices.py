"""Settings that depend on the machine: ``precision: auto``, ``num_workers: auto``, the DDP set-up.

One training.yaml serves a laptop, a 2-core CPU box and a GPU node: the ``auto`` values
are resolved here, once, at the start of :func:`espnet_train.train` (before the rerun
check), and the resolved values are what ``exp_dir/config.yaml`` and the checkpoints
record.

* ``trainer.precision: auto``: ``bf16-mixed`` when training runs on CUDA devices that
  compute bf16 (compute capability 8.0 or newer), otherwise ``32-true``. An explicit
  ``bf16-mixed`` on a CPU without native bf16 trains in ``32-true`` with a warning.
* ``data.num_workers: auto``: on GPUs, the cores per device on this node minus one (the
  training process), at most 8; on a CPU, 1 when ``trainer.num_threads`` leaves a core
  free, else 0 (a loader process would take the cores the step runs on).
* :func:`trainer_settings`: the keyword arguments of ``lightning.Trainer`` that select the
  devices and the strategy (Lightning's DDP; NCCL on GPUs, gloo on CPUs). Launched by
  ``srun`` or ``torchrun``, Lightning reads the rank layout from the environment (see
  docs/parallel.md).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import torch

from .config import TrainerConfig, TrainingConfig

log = logging.getLogger(__name__)

#: loader processes per GPU at most (``num_workers: auto``)
MAX_AUTO_WORKERS = 8


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU computes bf16 natively (AVX-512 bf16 or AMX); unknown counts as yes.

    Without it oneDNN emulates bf16, and bf16 autocast makes a CPU step slower than fp32.
    """
    try:
        flags = Path(cpuinfo).read_text()
    except OSError:
        return True
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def on_gpu(tc: TrainerConfig) -> bool:
    """Whether ``tc`` trains on CUDA devices (``accelerator: gpu/cuda``, or ``auto`` with CUDA present)."""
    if tc.accelerator in ("gpu", "cuda"):
        return True
    return tc.accelerator == "auto" and torch.cuda.is_available()


def _cuda_bf16() -> bool:
    if not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(0) >= (8, 0)


def resolve_precision(tc: TrainerConfig) -> str:
    """``tc.precision`` with ``auto`` decided, and bf16 on a CPU without native bf16 replaced by fp32."""
    if tc.precision == "auto":
        return "bf16-mixed" if on_gpu(tc) and _cuda_bf16() else "32-true"
    if tc.precision.startswith("bf16") and not on_gpu(tc) and not cpu_has_native_bf16():
        log.warning("precision %s: this CPU has no native bf16 (no avx512_bf16/amx_bf16 flag), "
                    "where bf16 is emulated and slower than fp32; training in fp32 (32-true)",
                    tc.precision)
        return "32-true"
    return tc.precision


def local_devices(tc: TrainerConfig) -> int:
    """The devices this node trains on (``trainer.devices`` as Lightning reads it)."""
    devices = tc.devices.strip() if isinstance(tc.devices, str) else tc.devices
    if isinstance(devices, str) and devices not in ("auto", "-1"):
        if "," in devices:  # device indices, "0,1" or "1,"
            return len([d for d in devices.split(",") if d.strip()])
        return max(1, int(devices))
    if isinstance(devices, int) and devices > 0:
        return devices
    if on_gpu(tc):
        return max(1, torch.cuda.device_count())
    return 1


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_num_workers(num_workers: int | str, tc: TrainerConfig, n_cores: int | None = None) -> int:
    """``data.num_workers`` with ``auto`` decided (see the module doc)."""
    if num_workers != "auto":
        return int(num_workers)
    n_cores = n_cores or cores()
    if on_gpu(tc):
        return max(1, min(MAX_AUTO_WORKERS, n_cores // local_devices(tc) - 1))
    threads = tc.num_threads or n_cores
    return 1 if n_cores - threads >= 1 else 0


def resolve(config: TrainingConfig) -> TrainingConfig:
    """``config`` with every ``auto`` of this module decided for this machine."""
    tc = config.trainer
    precision = resolve_precision(tc)
    workers = resolve_num_workers(config.data.num_workers, tc)
    if tc.precision == "auto" or config.data.num_workers == "auto":
        log.info("this machine: precision %s, %d loader workers", precision, workers)
    return dataclasses.replace(
        config,
        trainer=dataclasses.replace(tc, precision=precision),
        data=dataclasses.replace(config.data, num_workers=workers),
    )


def trainer_settings(tc: TrainerConfig) -> dict[str, Any]:
    """The ``lightning.Trainer`` arguments that pick the devices, the strategy and the precision.

    ``strategy: auto`` is Lightning's choice: DDP when there is more than one device or
    node. Under ``srun`` (SLURM) or ``torchrun`` Lightning takes ranks, world size and the
    master address from their environment variables; ``devices`` and ``num_nodes`` must
    match what the launcher started.
    """
    return {
        "accelerator": tc.accelerator,
        "devices": tc.devices,
        "num_nodes": tc.num_nodes,
        "strategy": tc.strategy,
        "precision": resolve_precision(tc),
    }
