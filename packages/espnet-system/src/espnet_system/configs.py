"""Typed schemas of the recipe configs that belong to the system's stages.

``training.yaml`` and ``inference.yaml`` are the training and inference packages' own
schemas (``espnet_train.TrainingConfig``, ``espnet_infer.InferenceConfig``); the ones
here cover data preparation, metrics and publishing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from espnet_data import Corpus, ShardOptions


@dataclass
class TokenizerConfig:
    """The ``train_tokenizer`` stage.

    Args:
        type: ``sentencepiece`` (subwords) or ``char``.
        vocab_size: final vocabulary including ``<blank>``, ``<unk>``, ``<sos/eos>``.
        model_type: SentencePiece algorithm.
        train_split: split whose transcripts train the tokenizer.
        out_dir: the tokenizer folder (``training.yaml``'s ``tokenizer`` points here).
    """

    type: Literal["sentencepiece", "char"] = "sentencepiece"
    vocab_size: int = 256
    model_type: Literal["unigram", "bpe"] = "unigram"
    train_split: str = "train"
    out_dir: str = "exp/tokenizer"


@dataclass
class CorpusDataConfig:
    """The ``create_dataset`` part of a ``data.yaml`` whose corpus holds audio samples
    (ASR, TTS): :class:`~espnet_system.corpus.CorpusSystem` writes it as shards.

    Args:
        corpus: any corpus object (``class_path`` + ``init_args``), e.g.
            ``espnet_data.corpora.MiniCorpus``.
        out_dir: shards go to ``<out_dir>/<split>/``.
        splits: splits to write (default: all the corpus has).
        shard: sample rate and the checks applied to each sample.
        utterances_per_shard: shard size.
        num_workers: processes writing shards in parallel.
    """

    corpus: Corpus
    out_dir: str = "data"
    splits: list[str] | None = None
    shard: ShardOptions = field(default_factory=ShardOptions)
    utterances_per_shard: int = 200
    num_workers: int = 2


@dataclass
class DataPrepConfig(CorpusDataConfig):
    """``data.yaml``: the ``create_dataset`` and ``train_tokenizer`` stages.

    The fields of :class:`CorpusDataConfig` (jsonargparse reads their help there), and:

    Args:
        tokenizer: the subword or character tokenizer.
    """

    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)


@dataclass
class MetricsConfig:
    """``metrics.yaml``: the ``measure`` stage.

    Args:
        inference_dir: ``output_dir`` of inference (``<set>/hyp.txt`` + ``ref.txt``).
        test_sets: sets to score (default: every set inference wrote).
        out_file: all scores in one JSON file (per set: WER, CER, counts).
        uppercase: text normaliser: upper-case references and hypotheses before scoring.
        strip_punctuation: text normaliser: replace punctuation by spaces (apostrophes
            inside words stay). Both are off by default: LibriSpeech and the mini corpus
            are scored as written, as ESPnet2 does.
        allow_incomplete: score a set whose references lack hypotheses (their decoding
            failed, or never ran), counting those as all deletions and marking the set
            incomplete. Off: such a set stops ``measure``, naming the missing utterances.
    """

    inference_dir: str = "exp/infer"
    test_sets: list[str] | None = None
    out_file: str = "exp/infer/scores.json"
    uppercase: bool = False
    strip_punctuation: bool = False
    allow_incomplete: bool = False


@dataclass
class PublishConfig:
    """``publish.yaml``: ``pack_model``, ``upload_model``, ``pack_demo``, ``upload_demo``.

    Args:
        model_dir: the trained model folder.
        model_name: name in the model card.
        packed_dir: where ``pack_model`` writes the self-contained folder.
        scores_file: scores to put in the card (from ``measure``), if present.
        inference_config: copied into the packed folder so users decode the same way.
        repo_id: Hugging Face model repo (``owner/name``) for ``upload_model``.
        demo_dir: where ``pack_demo`` writes the Space folder.
        demo_repo_id: Hugging Face Space (``owner/name``) for ``upload_demo``.
        demo_title: title of the demo Space.
        private: create private repos.
        license: Hugging Face license id for the model card.
        language: language code for the model card.
        datasets: Hub dataset ids of the training data, for the card's ``datasets`` (the
            test sets of ``scores_file`` are read as splits of the first).
        curves_dir: PNG training curves found here go to the pack's ``images/`` and card.
        endpoint: Hub URL for the uploads (None: ``$HF_ENDPOINT``, else huggingface.co).
        overwrite: let uploads push a new commit to a repository that exists already
            (otherwise they stop and say so).
        trust_remote_code: let ``pack_model``'s load check and the demo app build a model
            whose ``config.yaml`` names a ``class_path`` outside espnet_model (that code is
            imported and run); only for a model of your own.
    """

    model_dir: str = "exp/train/model"
    model_name: str = "espnet-asr"
    packed_dir: str = "exp/packed"
    scores_file: str | None = "exp/infer/scores.json"
    inference_config: str | None = "conf/inference.yaml"
    repo_id: str | None = None
    demo_dir: str = "exp/demo"
    demo_repo_id: str | None = None
    demo_title: str = "ESPnet ASR demo"
    private: bool = False
    license: str = "cc-by-4.0"
    language: str = "en"
    datasets: list[str] = field(default_factory=list)
    curves_dir: str | None = "exp/train/images"
    endpoint: str | None = None
    overwrite: bool = False
    trust_remote_code: bool = False
