"""Typed schemas of a TTS recipe's configs (``egs/<corpus>/tts/conf/*.yaml``).

``training.yaml`` and ``aligner.yaml`` are espnet-train's own schema
(``espnet_train.TrainingConfig`` with ``task: tts`` / ``task: tts_aligner``);
``inference.yaml`` is espnet-infer's :class:`~espnet_infer.synthesis.SynthesisConfig`.
The roles here: data and the phoneme tokenizer, metrics (ASR intelligibility, MCD,
RTF) and publishing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..configs import CorpusDataConfig


@dataclass
class PhonemeTokenizerConfig:
    """The ``train_tokenizer`` stage: the phoneme token list of the training texts.

    Args:
        language: espeak-ng voice of the phonemizer (``en-us``).
        train_split: split whose texts make the token list.
        out_dir: the tokenizer folder (``tokens.txt``, ``tokenizer.json``); the
            ``tokenizer`` key of ``training.yaml`` and ``aligner.yaml`` points here.
    """

    language: str = "en-us"
    train_split: str = "train"
    out_dir: str = "exp/tokenizer"


@dataclass
class TTSDataConfig(CorpusDataConfig):
    """``data.yaml`` of a TTS recipe: ``create_dataset`` and ``train_tokenizer``.

    Args:
        corpus: any corpus object (``class_path`` + ``init_args``), e.g.
            ``espnet_data.corpora.MiniTTSCorpus`` or ``espnet_data.corpora.LJSpeech``.
        out_dir: shards go to ``<out_dir>/<split>/`` (the same layout as ASR).
        splits: splits to write (default: all the corpus has).
        shard: sample rate and the checks applied to each sample.
        utterances_per_shard: shard size.
        num_workers: processes writing shards in parallel.
        tokenizer: the phoneme tokenizer.
    """

    tokenizer: PhonemeTokenizerConfig = field(default_factory=PhonemeTokenizerConfig)


@dataclass
class ASRDecodeConfig:
    """How the ASR pack decodes the audio for the intelligibility score.

    The pack's own ``inference.yaml`` decode settings (those its card's scores were
    measured with) are the starting point; the fields set here override them.

    Args:
        method: ``beam_search`` or ``ctc_greedy`` (None: the pack's).
        beam_size: beam width (None: the pack's).
        use_packed_lm: fuse the language model the pack carries (if any) at its weight.
        max_batch_size: utterances decoded together.
    """

    method: Literal["beam_search", "ctc_greedy"] | None = None
    beam_size: int | None = None
    use_packed_lm: bool = True
    max_batch_size: int = 16


@dataclass
class TTSMetricsConfig:
    """``metrics.yaml`` of a TTS recipe: the ``measure`` stage.

    Args:
        inference_dir: ``output_dir`` of ``infer`` (``<set>/index.jsonl``, ``<set>/wav/``).
        test_sets: name -> the split folder holding the real audio and reference texts
            of the sentences ``infer`` synthesised.
        asr_pack: the packed ASR model that scores intelligibility (``just asr <corpus>
            all`` writes ``egs/<corpus>/asr/exp/packed``); relative to the recipe.
        asr_decode: how it decodes.
        score_real: also decode the real test audio with the same pack (the CER to
            compare with: the ASR model's own error rate on these sentences).
        uppercase / strip_punctuation: text normaliser applied to references and
            hypotheses before scoring (both on: punctuation and case are not heard).
        mcd: compute the mel-cepstral distortion against the real audio.
        mcd_coefficients: cepstral coefficients compared (c1..cN; c0, the energy, left
            out).
        out_file: every score in one JSON (``asr_cer`` in percent at the top level).
        device: ``cpu`` or ``cuda`` for the ASR decoding.
    """

    test_sets: dict[str, str] = field(default_factory=lambda: {"test": "data/test"})
    inference_dir: str = "exp/infer"
    asr_pack: str = "../asr/exp/packed"
    asr_decode: ASRDecodeConfig = field(default_factory=ASRDecodeConfig)
    score_real: bool = True
    uppercase: bool = True
    strip_punctuation: bool = True
    mcd: bool = True
    mcd_coefficients: int = 24
    out_file: str = "exp/infer/scores.json"
    device: str = "cpu"


@dataclass
class TTSPublishConfig:
    """``publish.yaml`` of a TTS recipe: ``pack_model``, ``upload_model``, ``pack_demo``,
    ``upload_demo``.

    Args:
        model_dir: the TTS model folder ``train`` exports.
        model_name: name in the model card.
        packed_dir: where ``pack_model`` writes the self-contained folder.
        scores_file: ``measure``'s scores, packed as ``scores.json`` (shown in the card).
        inference_config: copied into the pack (``inference.yaml``).
        repo_id: Hugging Face model repo (``owner/name``) for ``upload_model``.
        demo_dir: where ``pack_demo`` writes the Space folder.
        demo_repo_id: Hugging Face Space (``owner/name``) for ``upload_demo``.
        demo_title: title of the demo Space.
        private: create private repos.
        license: Hugging Face license id for the model card.
        language: language code for the model card.
        curves_dir: PNG training curves found here go to the pack's ``images/``.
        endpoint: Hub URL (None: ``$HF_ENDPOINT``, else huggingface.co).
        overwrite: let uploads push to a repository that exists already.
    """

    model_dir: str = "exp/tts/model"
    model_name: str = "espnet-tts"
    packed_dir: str = "exp/packed"
    scores_file: str | None = "exp/infer/scores.json"
    inference_config: str | None = "conf/inference.yaml"
    repo_id: str | None = None
    demo_dir: str = "exp/demo"
    demo_repo_id: str | None = None
    demo_title: str = "ESPnet TTS demo"
    private: bool = False
    license: str = "cc-by-4.0"
    language: str = "en"
    curves_dir: str | None = "exp/tts/images"
    endpoint: str | None = None
    overwrite: bool = False
