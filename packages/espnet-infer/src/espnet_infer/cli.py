"""espnet-infer: decode test sets with a model folder, locally, in processes or on MPI.

Usage:
    espnet-infer --config inference.yaml
    espnet-infer --config inference.yaml --decode.method ctc_greedy
    espnet-infer --config inference.yaml --parallel.backend processes --parallel.num_workers 2
    mpiexec -n 8 espnet-infer --config inference.yaml --parallel.backend mpi
    espnet-infer --print_config                  # every key with its default

Results: ``<output_dir>/<set>/{hyp.txt,ref.txt,hyp.jsonl}``; score them with espnet-score.
A rerun decodes only the shards that have no result yet. An utterance that cannot be read
or decoded is kept in hyp.jsonl with its ``error``; a shard that cannot be read at all
is listed in summary.json's ``failed_shards`` and the exit status is 1 (rerun to retry it).
"""

from __future__ import annotations

import json
import logging
import sys

from jsonargparse import ActionConfigFile, ArgumentParser

from .config import InferenceConfig
from .runner import run_inference


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="espnet-infer",
        description="Decode sharded test sets with a trained model folder.",
        epilog=__doc__.split("Usage:")[1] if __doc__ else None,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="inference.yaml")
    parser.add_class_arguments(InferenceConfig, as_group=False)
    return parser


def parse_inference_config(argv: list[str] | None = None) -> InferenceConfig:
    """Parse ``--config`` and command-line overrides into an :class:`InferenceConfig`."""
    parser = build_parser()
    cfg = parser.parse_args(argv)
    cfg.pop("config", None)
    init = parser.instantiate(cfg)
    return InferenceConfig(**{k: init[k] for k in InferenceConfig.__dataclass_fields__})


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_inference_config(argv if argv is not None else sys.argv[1:])
    result = run_inference(config)
    if result:
        print(json.dumps(result, indent=2))
    return 1 if result.get("failed_shards") else 0


if __name__ == "__main__":
    raise SystemExit(main())
