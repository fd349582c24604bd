"""LMSystem: the stages of a language-model recipe (``egs/<corpus>/lm``).

Canonical order: create_dataset, train, measure, pack_model, upload_model (``all``
leaves out the upload). The LM shares the tokenizer of the ASR recipe it serves:
``training.yaml`` names that folder (``tokenizer: ../asr/exp/tokenizer``), so the
ASR recipe's ``train_tokenizer`` runs first.

| stage | config | what it does | output |
| --- | --- | --- | --- |
| create_dataset | data | each set's text sources -> a text split | ``data/<set>/`` shards, ``index.jsonl``, ``summary.json`` |
| train | training | ``espnet_train.train`` with ``task: lm`` | ``exp/lm/model/`` (config.yaml, model.pt, tokenizer/) |
| measure | metrics | NLL per token and perplexity per set | ``exp/lm/scores.json``, the table in the log |
| pack_model | publish | ``espnet_publish.pack_model`` of the LM folder, loaded back | ``exp/lm/packed/`` |
| upload_model | publish | Hub upload (only when named) | Hub model repo |
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from espnet_data.atomic import write_json
from espnet_data.text import write_text_split
from espnet_train import TrainingConfig, train

from ..base import BaseSystem
from ..inputs import Reads, StageInput
from ..stages import StageError
from .configs import LMDataConfig, LMPublishConfig, PerplexityConfig
from .perplexity import format_perplexity, perplexity

log = logging.getLogger(__name__)

_TEXT_SPLIT = {"made_by": "create_dataset", "holds": ("index.jsonl",),
               "what": "a text split written by create_dataset (shard-*.tar + index.jsonl)"}
_SPLIT_SOURCE = ("a split folder (an ASR recipe's: run its create_dataset stage first, e.g. "
                 "just asr <corpus> create_dataset)")
_LM_MODEL = {"made_by": "train", "what": "an LM folder written by train (config.yaml, model.pt, tokenizer/)"}


def _describe(source: Any) -> str:
    fields = getattr(source, "__dataclass_fields__", None)
    if fields is None:
        return type(source).__qualname__
    args = ", ".join(f"{k}={getattr(source, k)!r}" for k in fields)
    return f"{type(source).__qualname__}({args})"


def _chain(sources: Sequence[Any]) -> Iterator[tuple[str, str | bytes]]:
    for source in sources:
        log.info("reading %s", _describe(source))
        yield from source.sentences()


class LMSystem(BaseSystem):
    """Text splits, LM training with espnet-train, perplexity, packing."""

    stages: ClassVar[tuple[str, ...]] = ("create_dataset", "train", "measure", "pack_model",
                                         "upload_model")
    explicit_only: ClassVar[frozenset[str]] = frozenset({"upload_model"})
    distributed_stages: ClassVar[frozenset[str]] = frozenset({"train"})
    config_roles: ClassVar[dict[str, str]] = {
        "create_dataset": "data",
        "train": "training",
        "measure": "metrics",
        "pack_model": "publish",
        "upload_model": "publish",
    }
    config_schemas: ClassVar[dict[str, type]] = {
        "data": LMDataConfig,
        "training": TrainingConfig,
        "metrics": PerplexityConfig,
        "publish": LMPublishConfig,
    }
    #: create_dataset's source files and folders are added by :meth:`inputs`
    stage_inputs: ClassVar[dict[str, tuple[Reads, ...]]] = {
        "train": (
            Reads("data.train", **_TEXT_SPLIT),
            Reads("data.valid", **_TEXT_SPLIT),
            Reads("tokenizer", holds=("tokenizer.yaml",),
                  what="the ASR recipe's tokenizer folder (its train_tokenizer stage writes it)"),
        ),
        "measure": (Reads("model_dir", **_LM_MODEL), Reads("test_sets", **_TEXT_SPLIT)),
        "pack_model": (Reads("model_dir", **_LM_MODEL),),
        "upload_model": (Reads("packed_dir", made_by="pack_model", what="a packed LM folder"),),
    }

    def check(self, stages: Sequence[str]) -> None:
        super().check(stages)
        if "train" in stages and self.config("training").task != "lm":
            raise StageError(f"{self.config_path('training')}: set task: lm (an LM recipe trains "
                             "a language model)")

    def inputs(self, stage: str) -> list[StageInput]:
        """The declared paths, plus the files and folders the text sources read."""
        found = super().inputs(stage)
        if stage == "create_dataset":
            cfg: LMDataConfig = self.config("data")
            for name, sources in cfg.sets.items():
                for i, source in enumerate(sources):
                    own = getattr(source, "input_paths", None)
                    for key, value in (own() if callable(own) else {}).items():
                        split = key == "split_dir" or key.startswith("exclude_splits")
                        found.append(self.stage_input(
                            stage, f"sets.{name}[{i}].init_args.{key}", str(value),
                            holds=("index.jsonl",) if split else (),
                            what=_SPLIT_SOURCE if split else "an existing text file"))
        return found

    def create_dataset(self) -> None:
        """Each set's text sources, in order, into one text split (bad lines counted)."""
        cfg: LMDataConfig = self.config("data")
        for name, sources in cfg.sets.items():
            summary = write_text_split(
                _chain(sources), Path(cfg.out_dir) / name, split=name,
                sentences_per_shard=cfg.sentences_per_shard,
                sentences_per_block=cfg.sentences_per_block,
                sources=[_describe(s) for s in sources],
            )
            log.info("%s: %d sentences (%d words) of %d lines, %d skipped %s, %d shards",
                     name, summary["num_sentences"], summary["num_words"], summary["num_lines"],
                     summary["num_rejected"], summary["rejected_counts"], summary["num_shards"])

    def train(self) -> None:
        """Train the LM (``espnet_train.train``, ``task: lm``) and export its folder."""
        out = train(self.config("training"))
        log.info("LM folder: %s (ASR inference.yaml: decode.lm)", out)

    def measure(self) -> None:
        """NLL per token and perplexity of every test set, to ``out_file`` and the log."""
        cfg: PerplexityConfig = self.config("metrics")
        from espnet_infer import load_lm_folder

        lm = load_lm_folder(cfg.model_dir, device=cfg.device)
        scores = {name: perplexity(lm, folder, max_tokens=cfg.max_tokens)
                  for name, folder in cfg.test_sets.items()}
        write_json(cfg.out_file, scores)
        log.info("perplexity -> %s\n%s", cfg.out_file, format_perplexity(scores))

    format_scores = staticmethod(format_perplexity)  # the table report() prints after measure

    def pack_model(self) -> None:
        """A self-contained LM folder (safetensors, tokenizer, card, meta.yaml), loaded back."""
        from espnet_publish import pack_model

        cfg: LMPublishConfig = self.config("publish")
        extra = {}
        if cfg.scores_file and Path(cfg.scores_file).is_file():
            extra["perplexity.json"] = Path(cfg.scores_file)
        curves = sorted(Path(cfg.curves_dir).glob("*.png")) if cfg.curves_dir else []
        # verify: the staged pack is loaded back as an LM (espnet_infer.load_lm_folder,
        # its files checked against meta.yaml) before it replaces packed_dir
        out = pack_model(cfg.model_dir, cfg.packed_dir, model_name=cfg.model_name,
                         extra_files=extra, license=cfg.license, language=cfg.language,
                         repo_id=cfg.repo_id, images=curves, overwrite=True, verify=True,
                         datasets=cfg.datasets)
        log.info("packed LM: %s (%d training curve(s))", out, len(curves))

    def upload_model(self) -> None:
        """Upload the packed LM to the Hugging Face Hub (needs a token)."""
        from espnet_publish import resolve_token, upload_model

        cfg: LMPublishConfig = self.config("publish")
        if not cfg.repo_id:
            raise StageError(f"{self.config_path('publish')}: set repo_id (owner/name) to upload")
        url = upload_model(cfg.packed_dir, cfg.repo_id, token=resolve_token(),
                           private=cfg.private, endpoint=cfg.endpoint, overwrite=cfg.overwrite)
        log.info("uploaded: %s", url)
