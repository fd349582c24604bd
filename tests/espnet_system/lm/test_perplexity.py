"""espnet_system.lm.perplexity: loading an LM folder, NLL per token and perplexity, the table."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from espnet_data.text import read_text_split
from espnet_system.lm import format_perplexity, load_lm_folder, perplexity


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


def test_an_asr_folder_or_a_missing_one_is_refused(lm_recipe: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not an LM model folder"):
        load_lm_folder(tmp_path)
    folder = tmp_path / "model"
    shutil.copytree(lm_recipe / "exp" / "lm" / "model", folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    (folder / "config.yaml").write_text(yaml.safe_dump({**config, "task": "asr"}))
    with pytest.raises(ValueError, match="does not say task: lm"):
        load_lm_folder(folder)
    (folder / "config.yaml").write_text(yaml.safe_dump({**config, "vocab_size": 5}))
    with pytest.raises(ValueError, match="vocab_size 5 but its tokenizer has"):
        load_lm_folder(folder)
