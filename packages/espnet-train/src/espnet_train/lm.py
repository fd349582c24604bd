"""The language-model task of ``train`` (``task: lm`` in training.yaml).

The trainer, the checkpoints, resume and best-N averaging are the ASR task's; what
differs lives here: the model block is an ESPnet2 LM block built by
``espnet_model.lm.build_lm`` (``lm: transformer``, ``lm_conf``, ``model_conf``), batches
come from text splits (``espnet_data.text``) by padded tokens (``data.max_tokens``), and
the exported folder says ``task: lm`` and has no audio settings::

    exp_dir/model/config.yaml   task: lm, model: {lm, lm_conf, ...}, vocab_size, tokenizer, training
    exp_dir/model/model.pt      best-N averaged state_dict (keys lm.*, ESPnet2's names)
    exp_dir/model/tokenizer/    the tokenizer it was trained with (the ASR model's)

Example training.yaml::

    task: lm
    exp_dir: exp/lm
    tokenizer: ../asr/exp/tokenizer       # the ASR model's: fusion needs the same tokens
    data: {train: data/train, valid: data/dev, max_tokens: 8000}
    model: {lm: transformer, lm_conf: {att_unit: 128, head: 2, unit: 512, layer: 2}}
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

from espnet_data.text import check_text_split, read_text_split, text_batches
from espnet_model.lm import LanguageModel, build_lm

from .config import DataConfig, TrainingConfig
from .data import BatchStream, batch_loader

log = logging.getLogger(__name__)

_PROBE_SENTENCES = 2000  # sentences tokenized to estimate tokens per character
_PADDING = 1.15  # padded tokens per real token, about (length-sorted batches)

def build_lm_model(config: TrainingConfig, vocab_size: int) -> LanguageModel:
    """The model block of an LM config (``espnet_model.lm.build_lm``), errors naming the key."""
    try:
        return build_lm(config.model, vocab_size)
    except ValueError as err:
        raise ValueError(f"model (task: lm): {err}") from None


def make_text_stream(split_dir: str, data: DataConfig, tokenize: Any, *, train: bool,
                     seed: int = 0) -> BatchStream:
    """Token-count batches of a text split, in a DataLoader wrapped in a :class:`BatchStream`
    (equal batch counts on every DDP rank, resumable position)."""
    dataset = text_batches(split_dir, tokenize, max_tokens=data.max_tokens,
                           max_batch_size=data.max_batch_size, buffer_size=data.buffer_size,
                           shuffle=train, seed=seed)
    loader = batch_loader(dataset, int(data.num_workers), seed)
    return BatchStream(loader, dataset, name="train" if train else "valid")


def lm_steps_per_epoch(config: TrainingConfig, tokenize: Any) -> int:
    """Batches of one epoch, about: the split's characters (index) times the tokens per
    character of its first sentences, padded, over ``data.max_tokens`` (for ``cosine``)."""
    rows = check_text_split(config.data.train)
    sentences = sum(r["num_sentences"] for r in rows)
    chars = sum(r["num_chars"] for r in rows)
    probe = list(itertools.islice(read_text_split(config.data.train), _PROBE_SENTENCES))
    probe_chars = sum(len(t) for _, t in probe) or 1
    tokens = chars * sum(len(tokenize(t)) for _, t in probe) / probe_chars + sentences  # + <eos>
    return max(1, int(tokens * _PADDING / config.data.max_tokens) + 1)
