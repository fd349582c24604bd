"""espnet_train.devices: precision and loader workers per machine, the DDP set-up a config makes."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from espnet_train.config import DataConfig, TrainerConfig, TrainingConfig
from espnet_train.devices import resolve, resolve_num_workers, resolve_precision, trainer_settings
from lightning.pytorch.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning.pytorch.strategies import DDPStrategy


def test_precision_auto_is_fp32_on_a_cpu_and_bf16_on_a_bf16_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_precision(TrainerConfig(accelerator="cpu")) == "32-true"
    assert resolve_precision(TrainerConfig(accelerator="cpu", precision="32-true")) == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert resolve_precision(TrainerConfig(accelerator="gpu")) == "bf16-mixed"
    assert resolve_precision(TrainerConfig(accelerator="auto")) == "bf16-mixed"
    assert resolve_precision(TrainerConfig(accelerator="gpu", precision="16-mixed")) == "16-mixed"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # V100: no bf16
    assert resolve_precision(TrainerConfig(accelerator="gpu")) == "32-true"


def test_num_workers_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = TrainerConfig(accelerator="cpu", num_threads=2)
    assert resolve_num_workers(3, cpu, n_cores=2) == 3  # explicit values stay
    assert resolve_num_workers("auto", cpu, n_cores=2) == 0  # the mini recipe: no core to spare
    assert resolve_num_workers("auto", cpu, n_cores=8) == 1
    assert resolve_num_workers("auto", TrainerConfig(accelerator="cpu"), n_cores=8) == 0  # torch takes all
    assert resolve_num_workers("auto", TrainerConfig(accelerator="gpu", devices=1), n_cores=16) == 8
    assert resolve_num_workers("auto", TrainerConfig(accelerator="gpu", devices=4), n_cores=16) == 3
    assert resolve_num_workers("auto", TrainerConfig(accelerator="gpu", devices="0,1"), n_cores=8) == 3
    assert resolve_num_workers("auto", TrainerConfig(accelerator="gpu", devices=8), n_cores=8) == 1


def test_resolve_records_concrete_values(tmp_path) -> None:  # noqa: ANN001
    config = TrainingConfig(exp_dir=str(tmp_path), tokenizer="tok",
                            data=DataConfig(train="t", valid="v", num_workers="auto"),
                            trainer=TrainerConfig(accelerator="cpu", num_threads=1))
    resolved = resolve(config)
    assert resolved.trainer.precision == "32-true"
    assert isinstance(resolved.data.num_workers, int)
    assert config.trainer.precision == "auto"  # the input is left alone


def _clear_launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # building a Trainer sets the process-wide rank Lightning's rank_zero_only reads (to 3
    # or 2 below): put it back afterwards, or later tests in this process log nothing
    from lightning.fabric.utilities.rank_zero import rank_zero_only as fabric_rank_zero_only
    from lightning_utilities.core.rank_zero import rank_zero_only as utils_rank_zero_only

    for fn in (fabric_rank_zero_only, utils_rank_zero_only):
        monkeypatch.setattr(fn, "rank", getattr(fn, "rank", 0))
    for name in ("SLURM_NTASKS", "SLURM_JOB_NAME", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID",
                 "SLURM_NNODES", "SLURM_NTASKS_PER_NODE", "SLURM_JOB_ID", "TORCHELASTIC_RUN_ID",
                 "RANK", "LOCAL_RANK", "WORLD_SIZE", "GROUP_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                 "MASTER_PORT", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_two_nodes_under_slurm_make_lightning_ddp(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sbatch example of docs/parallel.md: 2 nodes x 2 tasks, `srun espnet-train ...`."""
    _clear_launcher_env(monkeypatch)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2")
    monkeypatch.setenv("SLURM_NNODES", "2")
    monkeypatch.setenv("SLURM_JOB_NAME", "asr")
    monkeypatch.setenv("SLURM_JOB_ID", "1234")
    monkeypatch.setenv("SLURM_NODELIST", "node[01-02]")
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_NODEID", "1")
    tc = TrainerConfig(accelerator="cpu", devices=2, num_nodes=2, strategy="ddp", precision="32-true")
    trainer = L.Trainer(**trainer_settings(tc), logger=False, enable_progress_bar=False)
    assert isinstance(trainer.strategy, DDPStrategy)
    env = trainer.strategy.cluster_environment
    assert isinstance(env, SLURMEnvironment)
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (4, 3, 1, 1)
    assert trainer.num_nodes == 2 and trainer.num_devices == 2
    assert trainer.global_rank == 3 and trainer.world_size == 4


def test_torchrun_makes_lightning_ddp(monkeypatch: pytest.MonkeyPatch) -> None:
    """The torchrun example of docs/parallel.md: --nnodes 2 --nproc-per-node 2, this is rank 2."""
    _clear_launcher_env(monkeypatch)
    for name, value in {"TORCHELASTIC_RUN_ID": "asr", "RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "4",
                        "GROUP_RANK": "1", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "node01",
                        "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)
    tc = TrainerConfig(accelerator="cpu", devices=2, num_nodes=2, strategy="ddp", precision="32-true")
    trainer = L.Trainer(**trainer_settings(tc), logger=False, enable_progress_bar=False)
    assert isinstance(trainer.strategy, DDPStrategy)
    assert isinstance(trainer.strategy.cluster_environment, TorchElasticEnvironment)
    assert trainer.global_rank == 2 and trainer.world_size == 4 and trainer.node_rank == 1


def test_gpu_ddp_uses_nccl() -> None:
    from lightning.fabric.utilities.distributed import _get_default_process_group_backend_for_device

    assert _get_default_process_group_backend_for_device(torch.device("cuda", 0)) == "nccl"
    assert _get_default_process_group_backend_for_device(torch.device("cpu")) == "gloo"
