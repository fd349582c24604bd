"""One rank of ``test_ddp.py``: run under ``python -m torch.distributed.run --nproc_per_node 2``.

Rank 0 has 6 batches, rank 1 has 5, and rank 1's third batch has a NaN loss. Each rank
writes what it saw to ``OUT_DIR/rank<N>.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import lightning as L
import torch
from espnet_train import LitESPnetModel, OptimConfig
from espnet_train.data import BatchStream


class _Dummy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, speech, speech_lengths, text, text_lengths):  # noqa: ANN001
        loss = ((self.w * speech) ** 2).mean()
        return loss, {"loss": loss.detach()}, speech.shape[0]


class _Seen(L.Callback):
    def __init__(self) -> None:
        self.keys: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self.keys.append(batch["keys"][0])


def _batch(value: float, key: str) -> dict:
    return {
        "keys": [key],
        "speech": torch.full((1, 4), value),
        "speech_lengths": torch.tensor([4]),
        "text": torch.tensor([[1]]),
        "text_lengths": torch.tensor([1]),
    }


def main(out_dir: str) -> None:
    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    n = 6 if rank == 0 else 5
    batches = [
        _batch(float("nan") if (rank == 1 and i == 2) else 1.0 + 0.1 * i, f"r{rank}b{i}")
        for i in range(n)
    ]
    lit = LitESPnetModel(_Dummy(), OptimConfig(name="sgd", lr=0.1, momentum=0.0, scheduler="warmuplr",
                                               warmup_steps=10, weight_decay=0.0))
    seen = _Seen()
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[seen], default_root_dir=out_dir,
    )
    trainer.fit(lit, BatchStream(batches))
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps({
        "rank": rank,
        "seen": seen.keys,
        "trained_batches": lit.trained_batches,
        "skipped_batches": lit.skipped_batches,
        "optimizer_steps": lit.optimizer_steps,
        "w": lit.model.w.item(),
        "lr": lit.optimizers().param_groups[0]["lr"],
    }))


if __name__ == "__main__":
    main(sys.argv[1])
