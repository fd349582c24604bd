"""espnet_data.text.batching: token-count dynamic batches of a text split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from espnet_data.text import TextCollate, Tokenize, text_batches, token_batcher, write_text_split
from espnet_data.tokenizer import CharTokenizer


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CharTokenizer]:
    texts = [("A" * (1 + i % 9)) + " B" for i in range(60)]
    out = tmp_path_factory.mktemp("text") / "train"
    write_text_split([(f"k{i:03d}", t) for i, t in enumerate(texts)], out,
                     sentences_per_shard=20, sentences_per_block=7)
    return out, CharTokenizer.from_texts(texts)


def test_batches_cover_every_sentence_once_under_the_token_budget(split) -> None:
    folder, tok = split
    batches = list(text_batches(folder, tok.encode, max_tokens=40))
    keys = [k for b in batches for k in b["keys"]]
    assert sorted(keys) == [f"k{i:03d}" for i in range(60)] and len(set(keys)) == 60
    for batch in batches:
        lengths = batch["text_lengths"]
        assert batch["text"].shape == (len(batch["keys"]), int(lengths.max()))
        assert (int(lengths.max()) + 1) * len(lengths) <= 40 or len(lengths) == 1
        for row, n, text in zip(batch["text"], lengths, batch["texts"], strict=True):
            assert row[:n].tolist() == tok.encode(text) and (row[n:] == 0).all()
    assert list(text_batches(folder, tok.encode, max_tokens=40))[0]["keys"] == batches[0]["keys"]


def test_shuffled_epochs_differ_and_repeat_with_the_seed(split) -> None:
    folder, tok = split
    data = text_batches(folder, tok.encode, max_tokens=40, shuffle=True, seed=1)
    first = [b["keys"] for b in data]
    data.set_epoch(1)
    second = [b["keys"] for b in data]
    assert first != second and sorted(sum(first, [])) == sorted(sum(second, []))
    again = text_batches(folder, tok.encode, max_tokens=40, shuffle=True, seed=1)
    assert [b["keys"] for b in again] == first


def test_long_and_empty_sentences_are_dropped_and_counted() -> None:
    stage = Tokenize(lambda t: [2] * len(t.split()), max_tokens=2)
    out = list(stage([{"key": "a", "text": "x y"}, {"key": "b", "text": "x y z"},
                      {"key": "c", "text": ""}]))
    assert [s["key"] for s in out] == ["a"] and out[0]["num_tokens"] == 3
    assert stage.dropped == 2


def test_collate_and_batcher() -> None:
    batch = TextCollate()([{"key": "a", "text": "x", "tokens": [5, 6]}, {"key": "b", "text": "y", "tokens": [7]}])
    assert batch["text"].tolist() == [[5, 6], [7, 0]]
    assert torch.equal(batch["text_lengths"], torch.tensor([2, 1]))
    batcher = token_batcher(6, shuffle=False)
    sizes = [len(b) for b in batcher({"num_tokens": n} for n in (2, 2, 2, 3, 3))]
    assert sizes == [3, 2]  # 3 x 2 tokens, then 2 x 3
