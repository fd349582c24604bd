"""The mini recipe's system: ASRSystem plus an ``analyze_errors`` stage, with ``train_lm``.

This file is how a recipe adds a stage (docs/stages.md, "Adding a stage"): subclass the
system, extend the canonical stage list, name the config role the stage reads and its
typed schema, and write a method without arguments. ``espnet-run`` (``just asr mini``)
finds ``System`` here by itself.

``train_lm`` (ASRSystem's, only when named there) is part of ``all`` here: after
``train_tokenizer`` it runs the sibling LM recipe egs/mini/lm (``conf/lm.yaml``), whose
model folder ``../lm/exp/lm/model`` inference fuses (``decode.lm``).

Usage::

    just asr mini train_lm                # the LM alone (= just lm mini all, then a tokenizer check)
    just asr mini analyze_errors          # after infer; writes exp/infer/<set>/errors.{json,txt}
                                          # (word errors, and WER by speaker)
    just asr mini all                     # runs it after measure (it takes well under a second)
    uv run espnet-run egs/mini/asr --list
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

from error_analysis import ErrorAnalysisConfig, analyze_set, format_report
from espnet_system import ASRSystem, Reads

log = logging.getLogger(__name__)


class System(ASRSystem):
    """ASRSystem with ``analyze_errors`` right after ``measure``, and ``train_lm`` in ``all``."""

    stages: ClassVar[tuple[str, ...]] = (
        *ASRSystem.stages[: ASRSystem.stages.index("measure") + 1],
        "analyze_errors",
        *ASRSystem.stages[ASRSystem.stages.index("measure") + 1 :],
    )
    explicit_only: ClassVar[frozenset[str]] = ASRSystem.explicit_only - {"train_lm"}
    config_roles: ClassVar[dict[str, str]] = {**ASRSystem.config_roles, "analyze_errors": "analysis"}
    config_schemas: ClassVar[dict[str, type]] = {
        **ASRSystem.config_schemas, "analysis": ErrorAnalysisConfig,
    }
    stage_inputs: ClassVar[dict[str, tuple[Reads, ...]]] = {
        **ASRSystem.stage_inputs,
        "analyze_errors": (
            Reads("inference_dir", made_by="infer"),
            Reads("splits", made_by="create_dataset", holds=("index.jsonl",),
                  what="a split folder written by create_dataset (its index.jsonl names speakers)"),
        ),
    }

    def analyze_errors(self) -> None:
        """Substitution pairs, deleted and inserted words, and WER by speaker, of each
        decoded test set."""
        cfg: ErrorAnalysisConfig = self.config("analysis")
        root = Path(cfg.inference_dir)
        sets = cfg.test_sets or sorted(p.parent.name for p in root.glob("*/hyp.txt"))
        if not sets:
            raise FileNotFoundError(f"no <set>/hyp.txt under {root}: run the infer stage first")
        for name in sets:
            split = (cfg.splits or {}).get(name)
            report = analyze_set(root / name, top_n=cfg.top_n, split_dir=split)
            head = "\n".join(format_report(name, report).splitlines()[:8])
            log.info("%s -> %s\n%s", name, root / name / "errors.txt", head)
