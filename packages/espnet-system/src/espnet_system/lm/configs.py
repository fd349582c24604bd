"""Typed schemas of an LM recipe's configs (``egs/<corpus>/lm/conf/*.yaml``).

``training.yaml`` is espnet-train's own schema (``espnet_train.TrainingConfig`` with
``task: lm``); the roles here are the LM's data, metrics (perplexity) and publishing,
and the ASR recipe's ``lm.yaml`` (its ``train_lm`` stage).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from espnet_data.text import TextSource


@dataclass
class LMDataConfig:
    """``data.yaml`` of an LM recipe: the ``create_dataset`` stage.

    Args:
        sets: split name -> its text sources (``class_path`` + ``init_args``:
            ``espnet_data.text.SplitText``, ``TextFile``, ``MiniLMText``,
            ``LibriSpeechLMText`` or a class of your own with ``sentences()``), read in
            order into one text split each.
        out_dir: splits go to ``<out_dir>/<name>/``.
        sentences_per_shard: sentences per shard tar.
        sentences_per_block: sentences per sample inside a shard (one ``.txt`` member).
    """

    sets: dict[str, list[TextSource]]
    out_dir: str = "data"
    sentences_per_shard: int = 100_000
    sentences_per_block: int = 1000


@dataclass
class PerplexityConfig:
    """``metrics.yaml`` of an LM recipe: the ``measure`` stage.

    Args:
        model_dir: the LM folder ``train`` exports (``<exp_dir>/model``).
        test_sets: name -> text split folder, each scored on its own.
        out_file: the scores of every set (NLL per token, perplexity, counts) in one JSON.
        max_tokens: padded tokens per batch while scoring.
        device: ``cpu`` or ``cuda``.
    """

    model_dir: str = "exp/lm/model"
    test_sets: dict[str, str] = field(default_factory=lambda: {"dev": "data/dev"})
    out_file: str = "exp/lm/scores.json"
    max_tokens: int = 8000
    device: str = "cpu"


@dataclass
class LMPublishConfig:
    """``publish.yaml`` of an LM recipe: ``pack_model`` and ``upload_model``.

    Args:
        model_dir: the LM folder ``train`` exports.
        model_name: name in the model card.
        packed_dir: where ``pack_model`` writes the self-contained folder.
        scores_file: perplexities from ``measure``, packed as ``perplexity.json``.
        repo_id: Hugging Face model repo (``owner/name``) for ``upload_model``.
        private: create a private repo.
        license: Hugging Face license id for the model card.
        language: language code for the model card.
        datasets: Hub dataset ids of the training text, for the card's ``datasets``.
        curves_dir: PNG training curves found here go to the pack's ``images/``.
        endpoint: Hub URL (None: ``$HF_ENDPOINT``, else huggingface.co).
        overwrite: let ``upload_model`` push to a repository that exists already.
    """

    model_dir: str = "exp/lm/model"
    model_name: str = "espnet-lm"
    packed_dir: str = "exp/lm/packed"
    scores_file: str | None = "exp/lm/scores.json"
    repo_id: str | None = None
    private: bool = False
    license: str = "cc-by-4.0"
    language: str = "en"
    datasets: list[str] = field(default_factory=list)
    curves_dir: str | None = "exp/lm/images"
    endpoint: str | None = None
    overwrite: bool = False


@dataclass
class LMStageConfig:
    """``lm.yaml`` of an ASR recipe: its ``train_lm`` stage, which runs an LM recipe.

    Args:
        recipe: the LM recipe folder, relative to the ASR recipe (``../lm``).
        stages: the LM recipe's stages to run (``all``: create_dataset, train, measure,
            pack_model).
        conf_dir: the LM recipe's config folder.
        tokenizer: the ASR tokenizer folder the LM must share; after the LM is trained its
            tokenizer is compared with this one (null: no check).
    """

    recipe: str = "../lm"
    stages: list[str] = field(default_factory=lambda: ["all"])
    conf_dir: str = "conf"
    tokenizer: str | None = "exp/tokenizer"
