"""Tests for espnet_data.synth.books: book sentences in the ASR text form."""

from __future__ import annotations

import random
import re

import pytest
from espnet_data.synth import books
from espnet_data.synth.books import (
    BOOKS,
    BookSentences,
    book_sentences,
    book_text,
    normalize_sentence,
    rejected,
    sentence_pool,
    split_sentences,
    vocabulary,
)

TRANSCRIPT = re.compile(r"[A-Z']+( [A-Z']+)*")


# --- splitting -----------------------------------------------------------------------


def test_splits_at_sentence_ends_but_not_after_titles_or_initials() -> None:
    text = (
        "Mr. Holmes sat down. He looked at J. H. Watson! “Is it so?” said he.\n"
        "Then he went out—quickly. “Go,” I said. ‘Never,’ he replied, and left."
    )
    assert split_sentences(text) == [
        "Mr. Holmes sat down.",
        "He looked at J. H. Watson!",
        '"Is it so?" said he.',
        "Then he went out -- quickly.",
        '"Go," I said.',
        '"Never,\' he replied, and left.',
    ]


def test_paragraph_lines_join_and_headings_verse_and_contents_are_left_out() -> None:
    text = (
        "CHAPTER I\n\n"
        "The night was\ncold and the wind\nwas high.\n\n"
        "    Fifteen men on the dead man's chest,\n    Yo ho ho and a bottle of rum!\n\n"
        "   I.  A Scandal in Bohemia . . . 1\n   II. The Red-Headed League . . 20\n"
    )
    assert split_sentences(text) == ["The night was cold and the wind was high."]


def test_said_i_ends_a_sentence() -> None:
    assert split_sentences('"Well," said I. "What now?"') == ['"Well," said I.', '"What now?"']


# --- normalisation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "transcript", "spoken"),
    [
        ('"Is it so?" said Mr. Holmes.', "IS IT SO SAID MISTER HOLMES", "is it so, said mister holmes."),
        ("Don't you see, Watson?", "DON'T YOU SEE WATSON", "don't you see, watson?"),
        ("The red-headed man -- he ran!", "THE RED HEADED MAN HE RAN", "the red headed man, he ran!"),
        ("Mrs. Hudson and Dr. Watson came in.", "MISSUS HUDSON AND DOCTOR WATSON CAME IN",
         "missus hudson and doctor watson came in."),
        ("I take 'em off the boys' hats.", "I TAKE 'EM OFF THE BOYS HATS",
         "i take 'em off the boys hats."),
        ("Madame née Adler, élan and Cæsar.", "MADAME NEE ADLER ELAN AND CAESAR",
         "madame nee adler, elan and caesar."),
        ('"Ha!" he cried; "you are THERE."', "HA HE CRIED YOU ARE THERE", "ha, he cried, you are there."),
        ("It is _very_ odd, said he.", "IT IS VERY ODD SAID HE", "it is very odd, said he."),
    ],
)  # fmt: skip
def test_normalize_gives_upper_case_transcript_and_lower_case_spoken(
    raw: str, transcript: str, spoken: str
) -> None:
    assert normalize_sentence(raw) == (transcript, spoken)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("He paid 30 pounds for it at once.", "digits"),
        ("It was in chapter XIV of the book.", "roman numeral"),
        ("He met Neville St. Clair in the city.", "abbreviation"),
        ("She wrote to the firm, e.g. to the clerk.", "abbreviation"),
        ("Holder & Stevenson of the city bank.", "symbol"),
        ("It cost him a £ or two that day.", "symbol"),
        ("No answer.", "too short"),
        (" ".join(["word"] * 26) + ".", "too long"),
    ],
)
def test_sentences_espeak_would_read_otherwise_are_rejected_with_a_reason(
    raw: str, reason: str
) -> None:
    assert normalize_sentence(raw) == reason


def test_word_limits_are_inclusive_and_configurable() -> None:
    four, twenty_five = "one two three four.", " ".join(["word"] * 25) + "."
    assert normalize_sentence(four) == ("ONE TWO THREE FOUR", "one two three four.")
    assert isinstance(normalize_sentence(twenty_five), tuple)
    assert normalize_sentence(four, min_words=5) == "too short"
    assert normalize_sentence(twenty_five, max_words=20) == "too long"
    with pytest.raises(ValueError, match="min_words=5, max_words=4"):
        book_sentences("oz", min_words=5, max_words=4)


# --- the shipped books -----------------------------------------------------------------


def test_every_book_ships_and_no_austen() -> None:
    for name, book in BOOKS.items():
        assert len(book_text(name)) > 100_000, name
        assert "austen" not in book.author.lower()
        assert "Project Gutenberg" not in book_text(name)  # header and licence removed
    with pytest.raises(KeyError, match=r"unknown book 'emma'.*'sherlock'"):
        book_text("emma")


def test_missing_text_file_names_the_path_and_the_fix(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(books, "TEXTS", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"oz\.txt\.xz is missing: reinstall espnet-data"):
        book_text("oz")


def test_book_sentences_are_in_the_asr_text_form_with_4_to_25_words() -> None:
    sentences = book_sentences("oz")
    assert len(sentences) > 1000
    transcripts = [t for t, _ in sentences]
    assert len(set(transcripts)) == len(transcripts)
    for transcript, spoken in sentences:
        assert TRANSCRIPT.fullmatch(transcript), transcript
        assert 4 <= len(transcript.split()) <= 25
        assert spoken[-1] in ".!?"
        # espeak says exactly the transcript's words
        assert re.sub(r"[,.!?]", "", spoken).upper().split() == transcript.split()
    reasons = rejected("oz")
    assert reasons["too long"] > 0 and set(reasons) <= {
        "digits", "roman numeral", "abbreviation", "symbol", "too short", "too long", "duplicate",
    }  # fmt: skip


def test_vocabulary_of_the_default_books_is_about_ten_thousand_words() -> None:
    words = vocabulary()
    assert 9_000 <= len(words) <= 13_000
    assert {"HOLMES", "DOROTHY", "TREASURE", "BUCK", "TOM"} <= words
    assert sum(len(book_sentences(name)) for name in BOOKS) > 10_000


# --- pools and the sentence source -----------------------------------------------------


def test_pools_are_disjoint_deterministic_and_follow_the_seed() -> None:
    pools = sentence_pool(seed=0, books=["oz"])
    assert pools == sentence_pool(seed=0, books=["oz"])
    sets = {split: {t for t, _ in pool} for split, pool in pools.items()}
    assert not sets["train"] & sets["dev"] and not sets["train"] & sets["test"]
    assert not sets["dev"] & sets["test"]
    total = sum(len(s) for s in sets.values())
    assert total == len(book_sentences("oz"))
    for held_out in ("dev", "test"):  # about HELD_OUT_PERCENT each
        assert 0.02 * total < len(sets[held_out]) < 0.09 * total
    other = sentence_pool(seed=1, books=["oz"])
    assert {t for t, _ in other["test"]} != sets["test"]
    with pytest.raises(ValueError, match="books is empty"):
        sentence_pool(books=[])


def test_a_sentence_keeps_its_split_whatever_the_other_books() -> None:
    alone = {t for t, _ in sentence_pool(seed=0, books=["oz"])["test"]}
    together = {t for t, _ in sentence_pool(seed=0, books=["oz", "call_of_the_wild"])["test"]}
    assert alone <= together


def test_book_sentences_source_reads_each_sentence_once_then_wraps() -> None:
    source = BookSentences(seed=0, books=["oz"])
    rng = random.Random(0)
    pool = source.pools["dev"]
    got = [source("dev", i, rng) for i in range(len(pool) + 2)]
    assert got[: len(pool)] == pool and len(set(got[: len(pool)])) == len(pool)
    assert got[len(pool) :] == pool[:2]
    with pytest.raises(ValueError, match=r"split 'tiny' has no pool.*train, dev and test"):
        source("tiny", 0, rng)
