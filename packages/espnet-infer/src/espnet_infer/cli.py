"""espnet-infer: decode test sets with a model folder, locally, in processes or on MPI.

Usage:
    espnet-infer --config inference.yaml
    espnet-infer --config inference.yaml --decode.method ctc_greedy
    espnet-infer --config inference.yaml --parallel.backend processes --parallel.num_workers 2
    mpiexec -n 8 espnet-infer --config inference.yaml --parallel.backend mpi
    espnet-infer --print_config                  # every key with its default

Results: ``<output_dir>/<set>/{hyp.txt,ref.txt,hyp.jsonl}``; score them with espnet-score.
A rerun decodes only the shards that have no result yet. An utterance that cannot be read
or decoded is kept in hyp.jsonl with its ``error``.

Exit status: 0 when every utterance that index.jsonl lists was decoded (some may have
failed: see ``failed_utterances``); 1 when a shard could not be read at all
(``failed_shards``: run again to retry it) or utterances are missing (``missing_utterances``:
a tar cut short, or its shard failed); 2 when another run holds the output_dir
(``<output_dir>/.espnet-infer.lock``) or the config is wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from espnet_data.config_errors import ConfigError, parse_schema
from jsonargparse import ActionConfigFile, ArgumentParser, DefaultHelpFormatter

from .config import InferenceConfig
from .runner import OutputLocked, run_inference


class HelpFormatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help, with the usage examples of the epilog kept as written."""


def build_parser(exit_on_error: bool = True) -> ArgumentParser:
    parser = ArgumentParser(
        prog="espnet-infer",
        description="Decode sharded test sets with a trained model folder.",
        epilog=__doc__.split("Usage:")[1] if __doc__ else None,
        formatter_class=HelpFormatter,
        exit_on_error=exit_on_error,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="inference.yaml")
    parser.add_class_arguments(InferenceConfig, as_group=False)
    return parser


def parse_inference_config(argv: list[str] | None = None) -> InferenceConfig:
    """Parse ``--config`` and command-line overrides into an :class:`InferenceConfig`.

    Raises:
        ConfigError: one line naming the file, the key (and the closest valid one) and the fix.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    return parse_schema(build_parser(exit_on_error=False), InferenceConfig, argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = parse_inference_config(argv if argv is not None else sys.argv[1:])
    except ConfigError as err:
        print(f"espnet-infer: {err}", file=sys.stderr)
        return 2
    try:
        result = run_inference(config)
    except OutputLocked as err:
        print(f"espnet-infer: error: {err}", file=sys.stderr)
        return 2
    if result:
        print(json.dumps(result, indent=2))
    if result.get("missing_utterances"):
        sets = ", ".join(
            f"{name}: {s['missing']} ({', '.join(s['missing_keys'][:5])}"
            f"{' ...' if s['missing'] > 5 else ''})"
            for name, s in result["sets"].items() if s["missing"]
        )
        print(f"espnet-infer: {result['missing_utterances']} utterance(s) listed in index.jsonl "
              f"were not decoded: {sets}. Their rows in hyp.jsonl say why (a shard cut short, "
              f"or a shard that failed); summary.json lists them under sets.<set>.missing_keys",
              file=sys.stderr)
    if result.get("failed_shards"):
        print(f"espnet-infer: {len(result['failed_shards'])} shard(s) could not be read "
              "(summary.json: failed_shards); run again to retry them", file=sys.stderr)
    return 1 if result.get("failed_shards") or result.get("missing_utterances") else 0


if __name__ == "__main__":
    raise SystemExit(main())
