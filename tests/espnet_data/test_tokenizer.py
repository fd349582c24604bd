"""Tests for espnet_data.tokenizer: id conventions, round trips, saving and loading."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from espnet_data import (
    CharTokenizer,
    SentencePieceTokenizer,
    load_tokenizer,
    load_tokenizer_dir,
    save_tokenizer,
    train_sentencepiece,
)
from espnet_data.synth import generate_sentence

TEXTS = [generate_sentence(random.Random(i))[0] for i in range(300)]


@pytest.fixture(scope="module")
def sentencepiece(tmp_path_factory) -> SentencePieceTokenizer:
    return train_sentencepiece(TEXTS, tmp_path_factory.mktemp("bpe"), vocab_size=60)


def _check_conventions(tokenizer) -> None:
    tokens = tokenizer.token_list
    assert tokens[0] == "<blank>" and tokens[1] == "<unk>" and tokens[-1] == "<sos/eos>"
    assert tokenizer.vocab_size == len(tokens) == len(set(tokens))
    for text in TEXTS[:50]:
        ids = tokenizer.encode(text)
        assert ids and all(1 <= i <= tokenizer.vocab_size - 2 for i in ids)
        assert 1 not in ids  # every character of the training texts is known


def test_char_tokenizer_conventions_and_round_trip() -> None:
    tok = CharTokenizer.from_texts(TEXTS)
    _check_conventions(tok)
    assert "<space>" in tok.token_list and " " not in tok.token_list
    for text in TEXTS:
        assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode("  ONE \t TWO ")) == "ONE TWO"


def test_char_tokenizer_maps_unknown_characters_to_unk() -> None:
    tok = CharTokenizer.from_texts(["AB"])
    assert tok.token_list == ["<blank>", "<unk>", "A", "B", "<sos/eos>"]
    assert tok.encode("AXB") == [2, 1, 3]
    assert tok.encode("A B") == [2, 1, 3]  # no space was seen in training
    assert tok.decode([2, 1, 3]) == "A<unk>B"


def test_decode_drops_blank_sos_eos_and_padding() -> None:
    tok = CharTokenizer.from_texts(["AB"])
    assert tok.decode([0, 2, 0, 4, 3, -1, -1, 99]) == "AB"


def test_char_token_list_must_follow_the_conventions() -> None:
    with pytest.raises(ValueError, match="<blank>, <unk>"):
        CharTokenizer(["<unk>", "<blank>", "A", "<sos/eos>"])
    with pytest.raises(ValueError, match="<sos/eos>"):
        CharTokenizer(["<blank>", "<unk>", "A"])


def test_sentencepiece_conventions_and_round_trip(sentencepiece) -> None:
    _check_conventions(sentencepiece)
    assert sentencepiece.vocab_size <= 60
    for text in TEXTS:
        assert sentencepiece.decode(sentencepiece.encode(text)) == text
    ids = sentencepiece.encode(TEXTS[0])
    assert sentencepiece.decode([0, *ids, sentencepiece.vocab_size - 1, -1]) == TEXTS[0]


def test_sentencepiece_maps_unknown_characters_to_unk(sentencepiece) -> None:
    ids = sentencepiece.encode("HELLO Ω")
    assert 1 in ids
    assert ids.count(1) == 1
    assert sentencepiece.decode(ids).startswith("HELLO")


@pytest.mark.parametrize("model_type", ["bpe", "char"])
def test_other_sentencepiece_model_types(tmp_path, model_type) -> None:
    tok = train_sentencepiece(TEXTS[:100], tmp_path, vocab_size=40, model_type=model_type)
    _check_conventions(tok)
    assert tok.decode(tok.encode(TEXTS[0])) == TEXTS[0]


def test_train_sentencepiece_needs_text(tmp_path) -> None:
    with pytest.raises(ValueError, match="no non-empty transcripts"):
        train_sentencepiece(["", "  "], tmp_path)


def test_save_and_load_dir_round_trip(tmp_path, sentencepiece) -> None:
    char = CharTokenizer.from_texts(TEXTS)
    for name, tok in (("char", char), ("bpe", sentencepiece)):
        spec = save_tokenizer(tok, tmp_path / name)
        assert (tmp_path / name / "tokenizer.yaml").is_file()
        loaded = load_tokenizer_dir(tmp_path / name)
        assert type(loaded) is type(tok)
        assert loaded.token_list == tok.token_list
        assert loaded.encode(TEXTS[1]) == tok.encode(TEXTS[1])
        assert load_tokenizer(spec, tmp_path / name).token_list == tok.token_list
    assert spec == {"type": "sentencepiece", "model": "bpe.model"}
    assert (tmp_path / "bpe" / "tokens.txt").read_text().splitlines() == sentencepiece.token_list


def test_saving_into_its_own_folder_keeps_the_model(sentencepiece) -> None:
    folder = sentencepiece.model_path.parent
    save_tokenizer(sentencepiece, folder)
    assert load_tokenizer_dir(folder).token_list == sentencepiece.token_list


def test_missing_files_say_to_run_train_tokenizer(tmp_path) -> None:
    with pytest.raises(
        FileNotFoundError, match="tokenizer.yaml not found: run the train_tokenizer"
    ):
        load_tokenizer_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="train_tokenizer"):
        SentencePieceTokenizer(tmp_path / "bpe.model")
    with pytest.raises(FileNotFoundError, match="train_tokenizer"):
        load_tokenizer({"type": "sentencepiece", "model": "bpe.model"}, tmp_path)


def test_unknown_tokenizer_type(tmp_path) -> None:
    with pytest.raises(ValueError, match="'word' unknown: use 'sentencepiece' or 'char'"):
        load_tokenizer({"type": "word"}, tmp_path)
    (Path(tmp_path) / "tokenizer.yaml").write_text("type: word\n")
    with pytest.raises(ValueError, match="unknown"):
        load_tokenizer_dir(tmp_path)


def test_check_same_tokenizer_names_both_sides() -> None:
    from espnet_data.tokenizer import TokenizerMismatchError, check_same_tokenizer

    a = CharTokenizer.from_texts(["ab"])
    check_same_tokenizer(a, CharTokenizer.from_texts(["ba"]), name="x", reference_name="y")
    with pytest.raises(TokenizerMismatchError, match=r"lm/tokens.txt and asr/tokens.txt \(5 tokens vs 6\)"):
        check_same_tokenizer(a, CharTokenizer.from_texts(["abc"]), name="lm/tokens.txt",
                             reference_name="asr/tokens.txt")
    with pytest.raises(TokenizerMismatchError, match="id 3 is 'b' vs 'c'"):
        check_same_tokenizer(a, CharTokenizer.from_texts(["ac"]), name="x", reference_name="y")


def test_sentencepiece_retrained_into_the_same_folder_is_byte_identical(tmp_path: Path) -> None:
    texts = [generate_sentence(random.Random(i))[0] for i in range(200)]
    train_sentencepiece(texts, tmp_path, vocab_size=40)
    first = (tmp_path / "bpe.model").read_bytes()
    train_sentencepiece(texts, tmp_path, vocab_size=40)
    assert (tmp_path / "bpe.model").read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bpe.model", "bpe.vocab"]


def test_token_list_tokenizer_follows_the_list_not_the_model(sentencepiece) -> None:
    """ESPnet2's token lists order pieces by frequency: ids index the list, and pieces
    are joined by the SentencePiece model, as ESPnet2's Speech2Text does."""
    from espnet_data.tokenizer import TokenListTokenizer

    pieces = sentencepiece.token_list[2:-1]
    tokens = ["<blank>", "<unk>", *reversed(pieces), "<sos/eos>"]
    tok = TokenListTokenizer(tokens, "bpe", sentencepiece.model_path)
    text = " ".join(TEXTS[0].split())
    ids = tok.encode(text)
    assert ids != sentencepiece.encode(text)
    assert [tok.token_list[i] for i in ids] == [sentencepiece.token_list[i]
                                                for i in sentencepiece.encode(text)]
    assert tok.decode([0, *ids, len(tokens) - 1]) == sentencepiece.decode(sentencepiece.encode(text))
    assert tok.decode([1]).strip() == "⁇"  # <unk> stays, as SentencePiece writes it


def test_token_list_tokenizer_char_word_and_errors(tmp_path: Path) -> None:
    from espnet_data.tokenizer import TokenListTokenizer

    char = TokenListTokenizer(["<blank>", "<unk>", "a", "<space>", "b", "<sos/eos>"], "char")
    assert char.encode("ab a") == [2, 4, 3, 2] and char.encode("c") == [1]
    assert char.decode([0, 2, 4, 3, 2, 5]) == "ab a"
    word = TokenListTokenizer(["<blank>", "<unk>", "hello", "world", "<sos/eos>"], "word")
    assert word.encode("hello there world") == [2, 1, 3]
    assert word.decode([2, 1, 3]) == "hello <unk> world"
    with pytest.raises(ValueError, match="must start with <blank>, <unk>"):
        TokenListTokenizer(["a", "<unk>", "<sos/eos>"], "char")
    with pytest.raises(ValueError, match="token_type 'phn' unknown"):
        TokenListTokenizer(["<blank>", "<unk>", "<sos/eos>"], "phn")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="missing.model not found"):
        TokenListTokenizer(["<blank>", "<unk>", "<sos/eos>"], "bpe", tmp_path / "missing.model")
