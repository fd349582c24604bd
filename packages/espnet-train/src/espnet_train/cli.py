"""espnet-train: train an ASR model or a language model from one YAML file, with no recipe.

Usage:
    espnet-train --config training.yaml
    espnet-train --config lm_training.yaml                # task: lm (a language model)
    espnet-train --config training.yaml --trainer.max_epochs 5 --exp_dir exp/try
    espnet-train --print_config > training.yaml      # every key with its default

Keys and their meaning are the fields of ``espnet_train.TrainingConfig``; unknown keys
are rejected with their name.
"""

from __future__ import annotations

import logging
import sys

from jsonargparse import ActionConfigFile, ArgumentParser

from .config import TrainingConfig
from .train import train


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="espnet-train",
        description="Train an ASR model (CTC + attention), or a language model (task: lm), "
                    "from a training.yaml.",
        epilog=__doc__.split("Usage:")[1] if __doc__ else None,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="training.yaml")
    parser.add_class_arguments(TrainingConfig, as_group=False)
    return parser


def parse_training_config(argv: list[str] | None = None) -> TrainingConfig:
    """Parse ``--config`` and command-line overrides into a :class:`TrainingConfig`."""
    parser = build_parser()
    cfg = parser.parse_args(argv)
    cfg.pop("config", None)
    init = parser.instantiate(cfg)
    return TrainingConfig(**{k: init[k] for k in TrainingConfig.__dataclass_fields__})


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_training_config(argv if argv is not None else sys.argv[1:])
    model_dir = train(config)
    print(f"model folder: {model_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
