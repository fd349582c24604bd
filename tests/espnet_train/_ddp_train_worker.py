"""One rank of ``test_ddp.py``'s end-to-end run: ``train()`` on the tiny corpus with 2 CPU ranks.

Usage: ``python -m torch.distributed.run --nproc_per_node 2 _ddp_train_worker.py ARGS.json``
where ARGS.json holds ``data``, ``tokenizer``, ``stats`` and ``exp_dir``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from espnet_train import train  # noqa: E402

from tests._fixtures import training_config  # noqa: E402


def main(args_file: str) -> None:
    args = json.loads(Path(args_file).read_text())
    cfg = training_config(Path(args["data"]), Path(args["tokenizer"]), Path(args["stats"]), Path(args["exp_dir"]),
                          max_epochs=2, checkpoint_every_n_steps=1, best_n=1)
    cfg.trainer.devices = 2
    cfg.trainer.strategy = "ddp"
    train(cfg)


if __name__ == "__main__":
    main(sys.argv[1])
