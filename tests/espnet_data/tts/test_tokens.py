"""espnet_data.tts.tokens: PhonemeTokenizer (ESPnet2 token order, folder round trip)."""

from __future__ import annotations

import json
import logging

import pytest
from espnet_data.tts.phonemes import Phonemizer
from espnet_data.tts.tokens import BLANK, SOS_EOS, UNK, PhonemeTokenizer

TEXTS = ["My name is John Smith.", "I live at forty two Main street.", "C, H, A."]


@pytest.fixture(scope="module")
def tok() -> PhonemeTokenizer:
    return PhonemeTokenizer.build(TEXTS, Phonemizer())


def test_token_list_is_in_espnet2_order(tok) -> None:
    assert tok.tokens[:2] == [BLANK, UNK] and tok.tokens[-1] == SOS_EOS
    counts: dict[str, int] = {}
    for text in TEXTS:
        for t in Phonemizer()(text):
            counts[t] = counts.get(t, 0) + 1
    phones = tok.tokens[2:-1]
    assert sorted(phones) == sorted(counts)
    assert phones == sorted(phones, key=lambda t: (-counts[t], t))  # by frequency, ties by name
    assert phones[0] == "|"
    assert len(tok) == tok.vocab_size == len(counts) + 3
    # the order of the texts does not change the list
    assert PhonemeTokenizer.build(reversed(TEXTS), Phonemizer()).tokens == tok.tokens


def test_encode_and_decode_round_trip(tok) -> None:
    ids = tok.encode("My name is John Smith.")
    assert all(1 < i < len(tok) - 1 for i in ids)
    assert tok.decode(ids) == Phonemizer()("My name is John Smith.")
    assert tok.decode([0, *ids, len(tok) - 1]) == tok.decode(ids)  # blank, sos/eos dropped
    with pytest.raises(ValueError, match=r"id 999 is outside the token list"):
        tok.decode([999])


def test_unseen_phones_are_unk_with_a_warning_count(caplog) -> None:
    tok = PhonemeTokenizer.build(["my name"], Phonemizer())
    with caplog.at_level(logging.WARNING, logger="espnet_data.tts.tokens"):
        ids = tok.encode("zebra zebra")
    assert 1 in ids
    assert sum(tok.unknown.values()) == ids.count(1)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == len(tok.unknown)  # once per unseen phone
    assert "unknown phones so far: 1" in warned[0]
    assert tok.decode(ids).count(UNK) == ids.count(1)


def test_save_and_load(tok, tmp_path) -> None:
    folder = tok.save(tmp_path / "tokenizer")
    assert (folder / "tokens.txt").read_text(encoding="utf-8").splitlines() == tok.tokens
    spec = json.loads((folder / "tokenizer.json").read_text())
    assert spec == {"kind": "phoneme", "language": "en-us", "g2p": "espeak-ng"}
    loaded = PhonemeTokenizer.load(folder)
    assert loaded.tokens == tok.tokens and loaded.language == "en-us"
    assert loaded.encode(TEXTS[1]) == tok.encode(TEXTS[1])


def test_load_refuses_what_is_not_a_phoneme_tokenizer(tok, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="tokenizer.json not found.*train_tokenizer"):
        PhonemeTokenizer.load(tmp_path / "missing")
    folder = tok.save(tmp_path / "t")
    (folder / "tokenizer.json").write_text('{"kind": "sentencepiece"}')
    with pytest.raises(ValueError, match="kind 'sentencepiece', expected 'phoneme'"):
        PhonemeTokenizer.load(folder)
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        PhonemeTokenizer.load(folder)
    (folder / "tokenizer.json").write_text('{"kind": "phoneme", "language": "en-us"}')
    (folder / "tokens.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match="must start with <blank>, <unk>"):
        PhonemeTokenizer.load(folder)


def test_bad_token_lists_and_texts_are_refused() -> None:
    with pytest.raises(ValueError, match="repeats"):
        PhonemeTokenizer([BLANK, UNK, "a", "a", SOS_EOS], Phonemizer())
    with pytest.raises(ValueError, match="got no texts"):
        PhonemeTokenizer.build([], Phonemizer())
    with pytest.raises(ValueError, match=r"text #1 .*'@'"):
        PhonemeTokenizer.build(["fine", "a@b"], Phonemizer())
    with pytest.raises(ValueError, match="empty text"):
        PhonemeTokenizer([BLANK, UNK, "a", SOS_EOS], Phonemizer()).encode("")
