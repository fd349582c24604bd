"""DDP on CPU with 2 gloo processes: a NaN on one rank is skipped on both, batch counts match."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests._fixtures import Pipeline

WORKER = Path(__file__).with_name("_ddp_worker.py")
TRAIN_WORKER = Path(__file__).with_name("_ddp_train_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(script: Path, arg: Path) -> None:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script), str(arg),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_two_ranks_skip_together_and_see_equal_batch_counts(tmp_path: Path) -> None:
    _torchrun(WORKER, tmp_path)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # rank 0 had 6 batches, rank 1 had 5: both stop after 5
    assert [len(r["seen"]) for r in ranks] == [5, 5]
    assert ranks[0]["seen"] == [f"r0b{i}" for i in range(5)]
    # rank 1's third batch was NaN: both ranks skipped their third batch together
    assert [r["skipped_batches"] for r in ranks] == [1, 1]
    assert [r["trained_batches"] for r in ranks] == [4, 4]
    assert [r["optimizer_steps"] for r in ranks] == [4, 4]
    # the weights stayed identical (gradients were averaged on every step) and finite
    assert ranks[0]["w"] == ranks[1]["w"] != 1.0
    # the skipped batch did not advance warmuplr: 4 steps of warmup 10 -> 0.1 * 5 / 10
    assert ranks[0]["lr"] == pytest.approx(0.05)


@pytest.mark.slow
def test_train_on_two_cpu_ranks(pipeline: Pipeline, tmp_path: Path) -> None:
    """The whole ``train()`` under DDP: shards split by rank, rank 0 averages and exports."""
    exp = tmp_path / "exp"
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"data": str(pipeline.data), "tokenizer": str(pipeline.tokenizer),
                                "stats": str(pipeline.stats), "exp_dir": str(exp)}))
    _torchrun(TRAIN_WORKER, args)
    summary = json.loads((exp / "train_summary.json").read_text())
    assert summary["epochs"] == 2 and summary["optimizer_steps"] >= 2
    assert (exp / "model" / "model.pt").is_file()
    assert (exp / "images" / "loss.png").is_file()
    assert not list(exp.glob("config.*.yaml"))  # one resolved config: rank 1 did not rotate it
