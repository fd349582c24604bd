"""This recipe's system: ASRSystem, ready for stages of your own.

``espnet-run`` (``just asr <corpus>``) uses ``System`` from this file when there is one,
otherwise plain ``ASRSystem``. To add a stage (see docs/stages.md and the working example
in egs/mini/asr/src/system.py):

1. add its name to ``stages`` where it belongs in the canonical order;
2. if it needs settings, name a config role in ``config_roles`` and its dataclass in
   ``config_schemas`` (the file is ``conf/<role>.yaml``, checked before any stage runs);
3. write a method of the same name without arguments; read settings with
   ``self.config(role)``; relative paths are relative to this recipe folder;
4. if it is slow or talks to the outside world, add it to ``explicit_only`` so that
   ``all`` leaves it out; it then runs only when named.

Usage::

    just stages TEMPLATE            # the stages and the config each reads
    just asr TEMPLATE all           # every stage but the uploads and data_report
    just asr TEMPLATE data_report   # after create_dataset
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from espnet_system import ASRSystem

log = logging.getLogger(__name__)


@dataclass
class DataReportConfig:
    """``conf/report.yaml``: the ``data_report`` stage (an example to replace).

    Args:
        data_dir: ``out_dir`` of create_dataset.
    """

    data_dir: str = "data"


class System(ASRSystem):
    """ASRSystem plus ``data_report`` (hours and rejected samples per split) after
    ``create_dataset``; only when named, as an example of ``explicit_only``."""

    stages: ClassVar[tuple[str, ...]] = (
        ASRSystem.stages[0], "data_report", *ASRSystem.stages[1:],
    )
    explicit_only: ClassVar[frozenset[str]] = ASRSystem.explicit_only | {"data_report"}
    config_roles: ClassVar[dict[str, str]] = {**ASRSystem.config_roles, "data_report": "report"}
    config_schemas: ClassVar[dict[str, type]] = {**ASRSystem.config_schemas,
                                                 "report": DataReportConfig}

    def data_report(self) -> None:
        """Log utterances, hours and rejected samples of every split create_dataset wrote."""
        import json

        cfg: DataReportConfig = self.config("report")
        summaries = sorted(Path(cfg.data_dir).glob("*/summary.json"))
        if not summaries:
            raise FileNotFoundError(f"no <split>/summary.json under {cfg.data_dir}: run create_dataset")
        for path in summaries:
            s = json.loads(path.read_text())
            log.info("%-10s %7d utterances %8.2f h %5d rejected", path.parent.name,
                     s["num_utterances"], s["hours"], s["num_rejected"])
