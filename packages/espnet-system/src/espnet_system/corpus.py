"""CorpusSystem: the ``create_dataset`` stage of systems whose data is a speech corpus.

ASR and TTS recipes both start from a corpus of audio samples with their texts
(``data.yaml``'s ``corpus``, a :class:`~espnet_system.configs.CorpusDataConfig`) and
write it in one layout: WebDataset shards, an index and a summary per split
(``data/<split>/``). This base class owns that stage and the corpus folders it
reads, so every such system writes and checks its data the same way; a system whose
data is of another kind (the LM's text sources) derives from
:class:`~espnet_system.base.BaseSystem` directly.
"""

from __future__ import annotations

import logging

from espnet_data import write_splits

from .base import BaseSystem
from .configs import CorpusDataConfig
from .inputs import StageInput, corpus_paths

log = logging.getLogger(__name__)


class CorpusSystem(BaseSystem):
    """A system whose ``data`` config role is a :class:`CorpusDataConfig` (its subclass)."""

    def inputs(self, stage: str) -> list[StageInput]:
        """The declared paths, plus the corpus folders ``create_dataset`` reads."""
        found = super().inputs(stage)
        if stage == "create_dataset":
            cfg: CorpusDataConfig = self.config("data")
            splits = cfg.splits or cfg.corpus.splits()
            found += [
                self.stage_input(stage, f"corpus.init_args.{p.key}", p.value, holds=p.holds,
                                 what=p.what)
                for p in corpus_paths(cfg.corpus, splits)
            ]
        return found

    def create_dataset(self) -> None:
        """Write each split of the corpus as shards + index + summary (one worker pool for
        all splits; progress with utterances/s, audio hours/s and ETA)."""
        cfg: CorpusDataConfig = self.config("data")
        summaries = write_splits(
            cfg.corpus,
            cfg.splits or cfg.corpus.splits(),
            cfg.out_dir,
            options=cfg.shard,
            utterances_per_shard=cfg.utterances_per_shard,
            num_workers=cfg.num_workers,
        )
        for split, summary in summaries.items():
            log.info(
                "%s: %d utterances, %.3f h, %d rejected, %d shards",
                split, summary["num_utterances"], summary["hours"],
                summary["num_rejected"], summary["num_shards"],
            )
