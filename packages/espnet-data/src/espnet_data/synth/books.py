"""Sentences read from public-domain books, in the ASR text form, for synthetic corpora.

The books ship with the package, xz-compressed, under ``texts/`` (their sources and
licence are in ``texts/README.md``). :func:`book_sentences` splits a book into
sentences and turns each into a pair, like :func:`~espnet_data.synth.generate_sentence`:

- the *transcript*: UPPER CASE words of letters and inner apostrophes, one space apart
  (``MISTER HOLMES SAID HE DIDN'T KNOW``), LibriSpeech's text form;
- the *spoken* text handed to espeak-ng: the same words in lower case (espeak spells
  some all-caps words letter by letter) with commas where the book has a pause
  (``, ; : -- ( )``) and the book's final ``.``, ``!`` or ``?``, so espeak's prosody
  follows the sentence while it says exactly the transcript's words.

A sentence is kept when it has :data:`MIN_WORDS` to :data:`MAX_WORDS` words and nothing
espeak would read differently from its transcript; every other sentence is rejected with
a reason (:func:`normalize_sentence`): digits (espeak reads ``1887`` as a number that the
transcript would have to spell), roman numerals, abbreviations other than Mr, Mrs and Dr
(written MISTER, MISSUS, DOCTOR as in LibriSpeech), initials, symbols such as ``£`` or
``&``. Letters with accents lose them (``née`` -> ``NEE``).

Usage::

    from espnet_data.synth.books import BOOKS, book_sentences, sentence_pool
    sentences = book_sentences("sherlock")           # [(transcript, spoken), ...]
    pool = sentence_pool(seed=0)                     # {"train": [...], "dev": [...], "test": [...]}
    len({w for t, _ in sentences for w in t.split()})   # the book's vocabulary
"""

from __future__ import annotations

import hashlib
import lzma
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = [
    "BOOKS",
    "DEFAULT_BOOKS",
    "BookSentences",
    "HELD_OUT_PERCENT",
    "MAX_WORDS",
    "MIN_WORDS",
    "Book",
    "book_sentences",
    "book_text",
    "normalize_sentence",
    "rejected",
    "sentence_pool",
    "split_sentences",
    "vocabulary",
]

MIN_WORDS = 4
MAX_WORDS = 25
#: Percent of the sentences held out for each of dev and test (by a hash of the text).
HELD_OUT_PERCENT = 5

TEXTS = Path(__file__).with_name("texts")


@dataclass(frozen=True)
class Book:
    """One shipped public-domain book (provenance in ``texts/README.md``)."""

    file: str  # name under texts/, xz-compressed UTF-8 text without Gutenberg's header
    title: str
    author: str
    year: int
    gutenberg_id: int


#: The shipped books, by short name. None of Jane Austen's novels: an outside
#: evaluation of this project uses them, so no text of hers may leak into training.
BOOKS: dict[str, Book] = {
    "sherlock": Book("sherlock.txt.xz", "The Adventures of Sherlock Holmes",
                     "Arthur Conan Doyle", 1892, 1661),
    "treasure_island": Book("treasure_island.txt.xz", "Treasure Island",
                            "Robert Louis Stevenson", 1883, 120),
    "oz": Book("oz.txt.xz", "The Wonderful Wizard of Oz", "L. Frank Baum", 1900, 55),
    "call_of_the_wild": Book("call_of_the_wild.txt.xz", "The Call of the Wild", "Jack London",
                             1903, 215),
    "tom_sawyer": Book("tom_sawyer.txt.xz", "The Adventures of Tom Sawyer", "Mark Twain",
                       1876, 74),
}  # fmt: skip
DEFAULT_BOOKS: tuple[str, ...] = tuple(BOOKS)

#: Abbreviations a sentence may contain, and the words they are read (and written) as.
_ABBREVIATIONS = {"Mr": "MISTER", "Mrs": "MISSUS", "Dr": "DOCTOR"}
#: Words before a period that do not end a sentence (the splitter looks past them).
_NO_BREAK = {"Mr", "Mrs", "Dr", "St", "Mme", "Messrs", "Col", "Capt", "Gen", "Sr", "Jr",
             "No", "Co", "Lt", "Prof", "Rev", "Hon", "vs", "viz", "etc", "ie", "eg"}  # fmt: skip
_CHAR_MAP = str.maketrans({
    "\u2018": '"', "\u201c": '"', "\u201d": '"',  # opening single, double quotes
    "\u2019": "'",  # closing single quote or apostrophe (told apart below)
    "\u2014": " -- ", "\u2013": " -- ", "\u00e6": "ae", "\u00c6": "Ae", "\u0153": "oe",
    "\u0152": "Oe", "_": "",  # _italics_
})  # fmt: skip
_BOUNDARY = re.compile(r"""([.!?])(["')\]]*)\s+(?=["'(\[]*[A-Z])""")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
_ROMAN = re.compile(r"[IVXLCDM]{2,}")
_PAUSE = re.compile(r"--|\.\.\.|[,;:!?()\[\]]")
_TOKEN = re.compile(r"--|\.\.\.|[,;:!?()\[\]]|[^\s,;:!?()\[\]]+")


def book_text(name: str) -> str:
    """The plain text of the shipped book ``name`` (a key of :data:`BOOKS`)."""
    if name not in BOOKS:
        raise KeyError(f"unknown book {name!r}; the shipped books are {sorted(BOOKS)}")
    path = TEXTS / BOOKS[name].file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall espnet-data (it ships the books)")
    return lzma.decompress(path.read_bytes()).decode("utf-8")


def _paragraphs(text: str) -> list[str]:
    """Prose paragraphs, lines joined: verse, tables of contents and headings are left out
    (paragraphs whose lines are all indented, or without a lower-case letter)."""
    out = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines or all(line.startswith("  ") for line in lines):
            continue
        joined = " ".join(line.strip() for line in lines)
        if re.search(r"[a-z]", joined):
            out.append(joined)
    return out


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences (raw text, quotes and punctuation kept).

    A sentence ends at ``.``, ``!`` or ``?`` (closing quotes and brackets stay with it)
    followed by space and a capital letter, except after :data:`_NO_BREAK` words and
    single-letter initials (``J. H. Watson``; ``I`` ends one: ``said I.``).
    """
    text = text.translate(_CHAR_MAP)
    sentences: list[str] = []
    for para in _paragraphs(text):
        start = 0
        for m in _BOUNDARY.finditer(para):
            if m.group(1) == ".":
                before = re.search(r"([A-Za-z]+)$", para[start : m.start()])
                word = before.group(1) if before else ""
                if word in _NO_BREAK or (len(word) == 1 and word.isupper() and word != "I"):
                    continue
            sentences.append(para[start : m.end()].strip())
            start = m.end()
        tail = para[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_CHAR_MAP))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize_sentence(
    sentence: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
) -> tuple[str, str] | str:
    """``(transcript, spoken)`` for one raw sentence, or the reason it is rejected.

    Reasons: ``"digits"``, ``"roman numeral"``, ``"abbreviation"`` (a period after a
    single letter or an abbreviation other than Mr, Mrs and Dr, or inside a word),
    ``"symbol"`` (a character that is not a letter, apostrophe or punctuation),
    ``"too short"``, ``"too long"``.
    """
    text = _ascii(sentence).strip()
    if re.search(r"\d", text):
        return "digits"
    end = "?" if "?" in text[-3:] else "!" if "!" in text[-3:] else "."
    text = re.sub(r"""[.!?"'\])\s]+$""", "", text)  # the final punctuation and quotes
    text = re.sub(r"\b(Mr|Mrs|Dr)\.", r"\1", text)
    words: list[str] = []
    spoken: list[str] = []

    def pause() -> None:
        if spoken and not spoken[-1].endswith(","):
            spoken[-1] += ","

    for token in _TOKEN.findall(text):
        if _PAUSE.fullmatch(token):
            pause()
            continue
        for part in token.split("-"):
            # quotes are silent; a trailing apostrophe closes a quotation or marks a
            # plural possessive (boys'); a leading one is an elision ('em, 'tis)
            core = part.strip('"').rstrip("'")
            stop = core.endswith(".")
            core = core.rstrip(".").rstrip("'")
            if not core.strip("'"):
                continue
            if stop and (core in _NO_BREAK or (len(core) == 1 and core != "I")):
                return "abbreviation"
            if "." in core:
                return "abbreviation"
            if not _WORD.fullmatch(core.removeprefix("'")):
                return "symbol"
            if _ROMAN.fullmatch(core):
                return "roman numeral"
            word = _ABBREVIATIONS.get(core, core.upper())
            words.append(word)
            spoken.append(word.lower())
            if stop:
                pause()
    if len(words) < min_words:
        return "too short"
    if len(words) > max_words:
        return "too long"
    return " ".join(words), " ".join(spoken).rstrip(",") + end


@lru_cache(maxsize=32)
def _book_sentences(
    name: str, min_words: int, max_words: int
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, int], ...]]:
    if not 1 <= min_words <= max_words:
        raise ValueError(f"min_words={min_words}, max_words={max_words}: need 1 <= min <= max")
    kept: dict[str, str] = {}
    reasons: Counter[str] = Counter()
    for raw in split_sentences(book_text(name)):
        result = normalize_sentence(raw, min_words, max_words)
        if isinstance(result, str):
            reasons[result] += 1
        elif result[0] in kept:
            reasons["duplicate"] += 1
        else:
            kept[result[0]] = result[1]
    return tuple(kept.items()), tuple(sorted(reasons.items()))


def book_sentences(
    name: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
) -> list[tuple[str, str]]:
    """The kept ``(transcript, spoken)`` pairs of book ``name``, in book order, each
    transcript once."""
    return list(_book_sentences(name, min_words, max_words)[0])


def rejected(name: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> dict[str, int]:
    """How many sentences of book ``name`` were rejected, by reason (``"duplicate"``:
    a transcript the book has already given)."""
    return dict(_book_sentences(name, min_words, max_words)[1])


def _bucket(seed: int, transcript: str) -> int:
    digest = hashlib.sha256(f"{seed}\0{transcript}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def sentence_pool(
    seed: int = 0,
    books: Sequence[str] = DEFAULT_BOOKS,
    min_words: int = MIN_WORDS,
    max_words: int = MAX_WORDS,
) -> dict[str, list[tuple[str, str]]]:
    """The sentences of ``books`` split into disjoint ``train``, ``dev`` and ``test`` pools.

    A sentence's split follows from a hash of ``seed`` and its transcript alone
    (:data:`HELD_OUT_PERCENT` percent each to dev and test), so the split of a sentence
    does not depend on the other books; a transcript found in two books counts once.
    Each pool is in a seed-shuffled order.
    """
    if not books:
        raise ValueError(f"books is empty; choose some of {sorted(BOOKS)}")
    seen: dict[str, str] = {}
    for name in books:
        for transcript, spoken in book_sentences(name, min_words, max_words):
            seen.setdefault(transcript, spoken)
    pools: dict[str, list[tuple[str, str]]] = {"train": [], "dev": [], "test": []}
    for transcript in sorted(seen):
        bucket = _bucket(seed, transcript)
        split = (
            "test"
            if bucket < HELD_OUT_PERCENT
            else ("dev" if bucket < 2 * HELD_OUT_PERCENT else "train")
        )
        pools[split].append((transcript, seen[transcript]))
    for split, pool in pools.items():
        random.Random(f"sentence_pool-{seed}-{split}").shuffle(pool)
    return pools


def vocabulary(
    books: Sequence[str] = DEFAULT_BOOKS, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
) -> set[str]:
    """Every word a transcript drawn from ``books`` can contain."""
    return {
        w for name in books for t, _ in book_sentences(name, min_words, max_words)
        for w in t.split()
    }  # fmt: skip


class BookSentences:
    """A :data:`~espnet_data.synth.plan.SentenceSource` over :func:`sentence_pool`.

    Utterance ``index`` of ``split`` reads sentence ``index`` of that split's shuffled
    pool, so a split uses each of its sentences once before any repeats (a split asked
    for more utterances than its pool holds starts over, with other voices).
    """

    def __init__(
        self,
        seed: int = 0,
        books: Sequence[str] = DEFAULT_BOOKS,
        min_words: int = MIN_WORDS,
        max_words: int = MAX_WORDS,
    ) -> None:
        self.pools = sentence_pool(seed, books, min_words, max_words)

    def __call__(self, split: str, index: int, rng: random.Random) -> tuple[str, str]:
        pool = self.pools.get(split)
        if not pool:
            raise ValueError(
                f"book sentences are split into {sorted(self.pools)} (disjoint pools); split "
                f"{split!r} has {'no pool' if pool is None else 'an empty pool'}: name the "
                "splits train, dev and test, or add books"
            )
        return pool[index % len(pool)]
