"""Text before phonemisation: the character set, clauses, and chunks of long text.

A TTS front-end must refuse what it cannot speak rather than drop it silently, so
every character of the input is checked against one set, written here:

* letters (for English, ``en*`` languages: after folding accents, ``é`` -> ``e``, the
  26 Latin letters; for other languages any Unicode letter), digits and whitespace;
* the *pause marks* ``, . ? ! ; :`` which become tokens of their own (they carry
  pauses and intonation);
* the *separators* ``' " - ( ) [ ]``: an apostrophe inside a word stays (``don't``),
  the rest only separate words.

Typographic variants are mapped first (curly quotes, en/em dashes, ``…``), so text
copied from a book passes. Anything else (``@``, ``%``, ``&``, emoji, other scripts
for English) raises ``ValueError`` naming the character, its code point and its
position, with the fix: write it out in words.

:func:`split_clauses` cuts checked text at pause marks (a ``.`` or ``,`` between two
digits, as in ``3.5`` or ``1,000``, is part of a number, not a pause) and expands the
abbreviations that end in a period (``Mr.`` -> ``mister``), which would otherwise
read as the end of a sentence. :func:`chunk_text` cuts long text into pieces of at
most ``max_chars`` characters at sentence ends, then commas, then spaces: what an
inference front-end does before synthesising a paragraph.

Usage::

    from espnet_data.tts.text import chunk_text, normalize_text, split_clauses
    split_clauses(normalize_text("Hello, Mr. Smith!"))
    # [('Hello', ','), ('mister Smith', '!')]
    chunk_text("One sentence. Another one, longer.", max_chars=20)
    # ['One sentence.', 'Another one, longer.']
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "PAUSE_MARKS",
    "SEPARATORS",
    "chunk_text",
    "normalize_text",
    "split_clauses",
]

#: Punctuation that becomes a token (ESPnet's espeak front-ends keep these too).
PAUSE_MARKS = ",.?!;:"
#: Punctuation that only separates words (an apostrophe inside a word is kept).
SEPARATORS = "'\"-()[]"

#: Typographic characters -> the plain ones of the set (applied before the check).
_TYPOGRAPHIC = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
        "\u2015": "-", "\u2212": "-",
    }
)  # fmt: skip

#: Abbreviations that end in a period, from the English cleaners of keithito/tacotron
#: (what ESPnet's LJSpeech recipes apply): expanded so the period is not a pause.
_ABBREVIATIONS: dict[str, str] = {
    "mrs": "misess", "mr": "mister", "dr": "doctor", "st": "saint", "co": "company",
    "jr": "junior", "maj": "major", "gen": "general", "drs": "doctors", "rev": "reverend",
    "lt": "lieutenant", "hon": "honorable", "sgt": "sergeant", "capt": "captain",
    "esq": "esquire", "ltd": "limited", "col": "colonel", "ft": "fort",
}  # fmt: skip
_ABBREVIATION = re.compile(r"\b(" + "|".join(_ABBREVIATIONS) + r")\.", re.IGNORECASE)
# a pause mark; "." and "," only when not between two digits (3.5, 1,000)
_PAUSE = re.compile(r"[?!;:]|(?<!\d)[.,]|[.,](?!\d)")
_SEPARATOR = re.compile(r"[\"()\[\]-]|(?<!\w)'|'(?!\w)")


def _is_english(language: str) -> bool:
    return language.lower().startswith("en")


def _fold(char: str, english: bool) -> str:
    """``char`` as the set sees it: typographic variants mapped, accents folded (English)."""
    char = unicodedata.normalize("NFKC", char).translate(_TYPOGRAPHIC)
    if english:
        char = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
    return char


def _allowed(char: str, english: bool) -> bool:
    if char.isspace() or char in PAUSE_MARKS or char in SEPARATORS:
        return True
    if english:
        return char.isascii() and char.isalnum()
    return char.isalpha() or char.isdigit()


def _describe(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def normalize_text(text: str, language: str = "en-us") -> str:
    """``text`` checked against the character set and folded to it (module docstring).

    Raises ``ValueError`` for empty text, for a character outside the set (naming it,
    its code point and its position) and for text without a letter or digit to speak.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("empty text: there is nothing to synthesise; pass a sentence")
    english = _is_english(language)
    out: list[str] = []
    for position, char in enumerate(text):
        folded = _fold(char, english)
        bad = next((c for c in folded if not _allowed(c, english)), None)
        if bad is not None:
            raise ValueError(
                f"character {char!r} (U+{ord(char):04X}) at position {position} of "
                f"{_describe(text)} is outside the phonemizer's set for {language!r} (letters, "
                f"digits, spaces, the pause marks {PAUSE_MARKS} and {SEPARATORS}); write it "
                "out in words or remove it"
            )
        out.append(" " if folded.isspace() else folded)
    normalized = " ".join("".join(out).split())
    if not any(c.isalnum() for c in normalized):
        raise ValueError(
            f"text {_describe(text)} has no letter or digit to speak (only punctuation); "
            "pass words"
        )
    return normalized


def _expand_abbreviations(text: str) -> str:
    return _ABBREVIATION.sub(lambda m: _ABBREVIATIONS[m.group(1).lower()], text)


def split_clauses(text: str) -> list[tuple[str, str]]:
    """Cut normalised ``text`` into ``(words, pause marks)`` pairs, in order.

    ``words`` has the separators replaced by spaces (an apostrophe inside a word
    stays); ``pause marks`` is the run of marks that ends the clause with repeats
    dropped (``"..."`` -> ``"."``, ``"?!"`` stays), ``""`` for the last clause when the
    text does not end in one. Clauses without words (``"Hi, , there"``) keep only
    their marks, which join the previous clause's.
    """
    text = _expand_abbreviations(text)
    clauses: list[tuple[str, str]] = []
    start = 0
    marks = ""
    words = ""
    for match in _PAUSE.finditer(text):
        between = _SEPARATOR.sub(" ", text[start : match.start()])
        start = match.end()
        if between.strip():
            if words:
                clauses.append((words, marks))
            words, marks = " ".join(between.split()), ""
        if not marks.endswith(match.group()):
            marks += match.group()
    rest = " ".join(_SEPARATOR.sub(" ", text[start:]).split())
    if rest:
        if words:
            clauses.append((words, marks))
        words, marks = rest, ""
    if words:
        clauses.append((words, marks))
    return clauses


_SENTENCE_END = re.compile(r"(?<=[.?!;:])\s+")
_COMMA = re.compile(r"(?<=,)\s+")


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    """Greedily join consecutive ``pieces`` with spaces while they fit in ``max_chars``."""
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 1 + len(piece) <= max_chars:
            chunks[-1] += " " + piece
        else:
            chunks.append(piece)
    return chunks


def chunk_text(text: str, max_chars: int = 200) -> list[str]:
    """Cut ``text`` into chunks of at most ``max_chars`` characters, in order.

    Cuts at sentence ends (``. ? ! ; :`` followed by a space) first; a sentence still
    too long is cut at commas, then at spaces. Chunks are packed greedily (a chunk
    holds as many whole pieces as fit). Raises ``ValueError`` for empty text, for
    ``max_chars < 1`` and for a single word longer than ``max_chars`` (naming it).
    """
    if max_chars < 1:
        raise ValueError(f"max_chars={max_chars} must be >= 1")
    text = " ".join(text.split())
    if not text:
        raise ValueError("empty text: there is nothing to synthesise; pass a sentence")
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if len(sentence) <= max_chars:
            pieces.append(sentence)
            continue
        for part in _pack(_COMMA.split(sentence), max_chars):
            if len(part) <= max_chars:
                pieces.append(part)
                continue
            for word in part.split(" "):
                if len(word) > max_chars:
                    raise ValueError(
                        f"the word {_describe(word)} ({len(word)} characters) is longer than "
                        f"max_chars={max_chars}; raise max_chars or split the word"
                    )
            pieces.extend(_pack(part.split(" "), max_chars))
    return _pack(pieces, max_chars)
