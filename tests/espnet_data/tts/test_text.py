"""espnet_data.tts.text: the character set, clauses, chunks of long text."""

from __future__ import annotations

import pytest
from espnet_data.tts.text import chunk_text, normalize_text, split_clauses


def test_typographic_characters_and_accents_are_folded() -> None:
    assert normalize_text("the “Marshalsea” debtors’ café — here…") == (
        'the "Marshalsea" debtors\' cafe - here...'
    )
    assert normalize_text("  two\tspaces\nand lines ") == "two spaces and lines"


def test_other_languages_keep_their_letters() -> None:
    assert normalize_text("Müller grüßt", language="de") == "Müller grüßt"
    with pytest.raises(ValueError, match="'@'"):
        normalize_text("a@b", language="de")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty text"),
        ("   \n", "empty text"),
        ("...!?", "no letter or digit"),
        ("--", "no letter or digit"),
        ("pay 5% now", r"'%' \(U\+0025\) at position 5"),
        ("rock & roll", r"'&' \(U\+0026\) at position 5"),
        ("hi 😀", r"U\+1F600\) at position 3"),
        ("Привет", r"'П' \(U\+041F\) at position 0 .* for 'en-us'"),
    ],
)
def test_bad_text_names_the_character_and_its_position(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_text(text)


def test_a_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        normalize_text(b"bytes")  # type: ignore[arg-type]


def test_clauses_end_at_pause_marks() -> None:
    assert split_clauses("Hello, Mr. Smith! How are you?") == [
        ("Hello", ","), ("mister Smith", "!"), ("How are you", "?"),
    ]
    # repeats collapse, a mixed run stays, a trailing clause has no mark
    assert split_clauses("Wait... what?! no") == [("Wait", "."), ("what", "?!"), ("no", "")]
    # marks without words join the clause before; leading ones are dropped
    assert split_clauses(", Hi, , there") == [("Hi", ","), ("there", "")]


def test_numbers_keep_their_points_and_separators_become_spaces() -> None:
    assert split_clauses("It costs 3.5 dollars, or 1,000.") == [
        ("It costs 3.5 dollars", ","), ("or 1,000", "."),
    ]
    assert split_clauses('he said "no" (twice) - don\'t') == [("he said no twice don't", "")]


def test_chunks_cut_at_sentences_then_commas_then_spaces() -> None:
    text = "One sentence. Another one, a bit longer, with commas. Last."
    assert chunk_text(text, max_chars=200) == [text]
    assert chunk_text(text, max_chars=40) == [
        "One sentence.", "Another one, a bit longer, with commas.", "Last.",
    ]
    # a sentence too long is cut at its commas; short pieces are packed together
    assert chunk_text(text, max_chars=20) == [
        "One sentence.", "Another one,", "a bit longer,", "with commas. Last.",
    ]
    words = chunk_text("alpha beta gamma delta", max_chars=11)
    assert words == ["alpha beta", "gamma delta"]


def test_chunk_text_refuses_what_it_cannot_cut() -> None:
    with pytest.raises(ValueError, match="empty text"):
        chunk_text("  ")
    with pytest.raises(ValueError, match="max_chars=0"):
        chunk_text("hi", max_chars=0)
    with pytest.raises(ValueError, match=r"'supercalifragilistic' \(20 characters\).*max_chars=10"):
        chunk_text("a supercalifragilistic word", max_chars=10)
