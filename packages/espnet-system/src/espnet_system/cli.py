"""espnet-run: run named stages of a recipe in canonical order.

Usage:
    espnet-run egs/mini/asr --stages all
    espnet-run egs/mini/asr --stages infer train        # runs train, then infer
    espnet-run egs/librispeech/asr --stages train --conf_dir conf_large
    espnet-run egs/mini/asr --list                      # the recipe's stages
    espnet-run egs/mini/asr --stages all --dry_run      # what would run, with which config
    espnet-run egs/mini/asr --stages infer --print_config   # resolved inference.yaml

A recipe folder holds ``conf/<role>.yaml`` (data, training, inference, metrics,
publish) and optionally ``src/system.py`` defining ``System``, a subclass of
``espnet_system.BaseSystem`` that adds stages. ``all`` runs every stage except uploads
(and any other stage the system marks as run only when named). Relative paths in the
configs are relative to the recipe folder, wherever this command is started from.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from espnet_publish import PublishError
from jsonargparse import ArgumentParser, DefaultHelpFormatter

from .recipe import load_system
from .stages import StageError


class _Formatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help, with the usage examples of the epilog kept as written."""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="espnet-run",
        print_config=None,  # our --print_config prints the recipe's configs, not the CLI's
        formatter_class=_Formatter,
        description="Run stages of a recipe (egs/<corpus>/<system>).",
        epilog=__doc__.split("Usage:")[1] if __doc__ else None,
    )
    parser.add_argument("recipe", type=str, help="recipe folder, e.g. egs/mini/asr")
    parser.add_argument("--stages", type=str, nargs="+", default=["all"],
                        help="stage names, or 'all'")
    parser.add_argument("--conf_dir", type=str, default="conf", help="config folder in the recipe")
    parser.add_argument("--list", action="store_true", help="list the stages and exit")
    parser.add_argument("--dry_run", action="store_true",
                        help="parse the configs, print the stages that would run in order with "
                             "their config files, log files, the paths they read and resolved "
                             "configs; run nothing (exit 2 when a config or path is missing)")
    parser.add_argument("--print_config", action="store_true",
                        help="print the resolved configs of the given stages (defaults filled "
                             "in; each is a valid config) and exit")
    parser.add_argument("--per_rank_logs", action="store_true",
                        help="under DDP/MPI, ranks other than 0 also write <stage>.rankN.log")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    args = build_parser().parse_args(argv if argv is not None else sys.argv[1:])
    try:
        system = load_system(args.recipe, conf_dir=args.conf_dir, per_rank_logs=args.per_rank_logs)
        if args.list:
            for stage in system.stages:
                role = system.config_roles.get(stage)
                note = " (only when named)" if stage in system.explicit_only else ""
                print(f"{stage:<16} conf/{role}.yaml{note}" if role else stage)
            return 0
        if args.print_config:
            print(system.print_configs(system.resolve(args.stages)), end="")
            return 0
        if args.dry_run:
            print(system.plan(args.stages), end="", flush=True)
            system.preflight(system.resolve(args.stages))  # a missing path: exit 2 as a run would
            return 0
        ran = system.run(args.stages)
        with contextlib.chdir(system.recipe_dir):
            report = system.report(ran)
        if report:
            print(report, flush=True)
    except (StageError, PublishError) as err:  # problems the user fixes: no traceback
        print(f"espnet-run: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
