"""espnet_system.lm.perplexity: NLL per token and perplexity of an LM folder, the table."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from espnet_data.text import read_text_split
from espnet_infer import load_lm_folder
from espnet_system.lm import format_perplexity, perplexity


def test_perplexity_is_the_exp_of_the_mean_token_nll(lm_recipe: Path) -> None:
    lm = load_lm_folder(lm_recipe / "exp" / "lm" / "model")
    split = lm_recipe / "data" / "dev"
    scores = perplexity(lm, split, max_tokens=30)  # several small batches
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for _, text in read_text_split(split):  # one sentence at a time
            ids = torch.tensor([lm.tokenizer.encode(text)])
            total, count = lm.model.nll(ids, torch.tensor([ids.size(1)]))
            nll, tokens = nll + float(total), tokens + int(count)
    assert scores["num_tokens"] == tokens and scores["num_sentences"] == 6
    assert scores["nll_per_token"] == pytest.approx(nll / tokens, abs=1e-3)
    assert scores["ppl"] == pytest.approx(math.exp(nll / tokens), rel=1e-3)
    table = format_perplexity({"dev": scores})
    assert table.splitlines()[0].split() == ["set", "sentences", "tokens", "NLL/token", "PPL", "<unk>"]
    assert table.splitlines()[1].split()[:3] == ["dev", "6", str(tokens)]
