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
from typing import Any

import torch
from espnet_data.text import text_batches
from espnet_infer import LoadedLM

Pathlike = str | os.PathLike[str]
UNK_ID = 1  # espnet_data's tokenizers: 0 <blank>, 1 <unk>


@torch.no_grad()
def perplexity(lm: LoadedLM, split_dir: Pathlike, *, max_tokens: int = 8000) -> dict[str, Any]:
    """NLL per token and perplexity of ``lm`` (``espnet_infer.load_lm_folder``) over every
    sentence of a text split."""
    if lm.tokenizer is None:
        raise ValueError(f"{lm.path}: an ESPnet2 LM has a token list but no tokenizer to read "
                         "text with; measure an LM folder trained here (task: lm)")
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
