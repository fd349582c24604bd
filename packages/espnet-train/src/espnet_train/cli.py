"""espnet-train: train an ASR model or a language model from one YAML file, with no recipe.

Usage:
    espnet-train --config training.yaml
    espnet-train --config lm_training.yaml                # task: lm (a language model)
    espnet-train --config training.yaml --trainer.max_epochs 5 --exp_dir exp/try
    espnet-train --print_config > training.yaml      # every key with its default
    espnet-train convert-espnet2 conf/train_asr.yaml -o training.yaml   # from an egs2 config

Keys and their meaning are the fields of ``espnet_train.TrainingConfig``; an unknown key
is rejected with its name and the closest valid one (exit status 2).
"""

from __future__ import annotations

import argparse
import logging
import sys

from espnet_data.config_errors import ConfigError, parse_schema
from jsonargparse import ActionConfigFile, ArgumentParser, DefaultHelpFormatter

from .config import TRAINER_OWNED, TrainingConfig


class HelpFormatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help, with the usage examples of the epilog kept as written."""


def build_parser(exit_on_error: bool = True) -> ArgumentParser:
    parser = ArgumentParser(
        prog="espnet-train",
        description="Train an ASR model (CTC + attention), or a language model (task: lm), "
                    "from a training.yaml.",
        epilog=__doc__.split("Usage:")[1] if __doc__ else None,
        formatter_class=HelpFormatter,
        exit_on_error=exit_on_error,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="training.yaml")
    parser.add_class_arguments(TrainingConfig, as_group=False)
    return parser


#: keys a training.yaml may hold by habit, and what to write instead
KEY_HINTS: dict[str, str] = {
    **{f"trainer.{k}": v for k, v in TRAINER_OWNED.items()},
    "max_epoch": "ESPnet2's max_epoch is trainer.max_epochs here (espnet-train convert-espnet2 "
                 "translates a whole ESPnet2 config)",
    "accum_grad": "ESPnet2's accum_grad is trainer.accumulate_grad_batches here",
    "grad_clip": "ESPnet2's grad_clip is trainer.gradient_clip_val here",
    "keep_nbest_models": "ESPnet2's keep_nbest_models is best_n here",
    "best_model_criterion": "ESPnet2's best_model_criterion is monitor (e.g. valid/acc) and "
                            "monitor_mode here",
    **{k: f"ESPnet2's {k} belongs in the model block here (model.{k})" for k in (
        "encoder", "encoder_conf", "decoder", "decoder_conf", "frontend", "frontend_conf", "specaug",
        "specaug_conf", "normalize", "normalize_conf", "model_conf", "ctc_conf")},
}


def parse_training_config(argv: list[str] | None = None) -> TrainingConfig:
    """Parse ``--config`` and command-line overrides into a :class:`TrainingConfig`.

    Raises:
        ConfigError: one line naming the file, the key and the fix.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    return parse_schema(build_parser(exit_on_error=False), TrainingConfig, argv, KEY_HINTS)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "convert-espnet2":
        from .convert import main as convert

        return convert(argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = parse_training_config(argv)
    except ConfigError as err:
        print(f"espnet-train: {err}", file=sys.stderr)
        return 2
    from .train import train

    model_dir = train(config)
    print(f"model folder: {model_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
