"""Perplexity of a trained LM folder on text splits (the LM recipe's ``measure`` stage).

Per set: the summed negative log-likelihood of every token (each sentence's ``<eos>``
included, as ESPnet2's ``lm_calc_perplexity`` counts), its mean per token, and the
perplexity ``exp(NLL per token)``::

    set          sentences    tokens  NLL/token       PPL   <unk>
    dev                120      1377     0.5012    1.6507       0
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from espnet_data import load_tokenizer
from espnet_data.text import text_batches
from espnet_model.lm import LanguageModel, build_lm

Pathlike = str | os.PathLike[str]
_WEIGHTS = ("model.safetensors", "model.pt")
UNK_ID = 1  # espnet_data's tokenizers: 0 <blank>, 1 <unk>


@dataclass
class LoadedLM:
    """An LM folder loaded: the model (eval mode), its tokenizer, its ``config.yaml``."""

    model: LanguageModel
    tokenizer: Any
    config: dict[str, Any]
    path: Path


def load_lm_folder(path: Pathlike, device: str = "cpu") -> LoadedLM:
    """Load a folder written by ``train`` with ``task: lm`` (or its pack).

    Raises:
        FileNotFoundError, ValueError: naming the file and what is wrong with it.
    """
    folder = Path(path)
    config_file = folder / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} not found: {folder} is not an LM model folder "
                                "(train with task: lm writes <exp_dir>/model)")
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    if not isinstance(config, dict) or config.get("task") != "lm":
        raise ValueError(f"{config_file} does not say task: lm: {folder} is not a language model "
                         "folder (an ASR model folder?)")
    weights = next((folder / n for n in _WEIGHTS if (folder / n).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{folder} holds no {' or '.join(_WEIGHTS)}")
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(weights))
    else:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    tokenizer = load_tokenizer(config["tokenizer"], folder)
    if tokenizer.vocab_size != config["vocab_size"]:
        raise ValueError(f"{config_file}: vocab_size {config['vocab_size']} but its tokenizer has "
                         f"{tokenizer.vocab_size} tokens")
    model = build_lm(config["model"], config["vocab_size"])
    model.load_state_dict(state)
    return LoadedLM(model.to(device).eval(), tokenizer, config, folder)


@torch.no_grad()
def perplexity(lm: LoadedLM, split_dir: Pathlike, *, max_tokens: int = 8000) -> dict[str, Any]:
    """NLL per token and perplexity of ``lm`` over every sentence of a text split."""
    device = next(lm.model.parameters()).device
    nll = 0.0
    tokens = sentences = unk = 0
    for batch in text_batches(split_dir, lm.tokenizer.encode, max_tokens=max_tokens):
        text, lengths = batch["text"].to(device), batch["text_lengths"].to(device)
        sums, counts = lm.model.nll(text, lengths)
        nll += float(sums.double().sum())
        tokens += int(counts.sum())
        sentences += len(batch["keys"])
        unk += int((batch["text"] == UNK_ID).sum())
    if not tokens:
        raise ValueError(f"{split_dir}: no sentence to score")
    per_token = nll / tokens
    return {
        "num_sentences": sentences,
        "num_tokens": tokens,
        "num_unk": unk,
        "nll": round(nll, 4),
        "nll_per_token": round(per_token, 4),
        "ppl": round(math.exp(per_token), 4),
    }


def format_perplexity(scores: dict[str, dict[str, Any]]) -> str:
    """The perplexity table, one row per set."""
    lines = [f"{'set':<12} {'sentences':>9} {'tokens':>9} {'NLL/token':>10} {'PPL':>9} {'<unk>':>7}"]
    for name, s in scores.items():
        lines.append(f"{name:<12} {s['num_sentences']:>9} {s['num_tokens']:>9} "
                     f"{s['nll_per_token']:>10.4f} {s['ppl']:>9.4f} {s['num_unk']:>7}")
    return "\n".join(lines)
