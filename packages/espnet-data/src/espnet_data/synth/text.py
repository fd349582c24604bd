"""An AN4-like (CMU census database) sentence generator.

Each sentence is a pair: the *transcript* (UPPER CASE words, no digits or
punctuation, like AN4) and the *spoken* text handed to espeak-ng, written so
that espeak says exactly the transcript's words: numbers are already words,
spelled letters are written ``"C, H, A."`` (a capital letter followed by
punctuation is read as the letter's name), other words are lower case (espeak
spells out some all-caps words), and ``_SPOKEN`` maps the few words whose
spelling espeak mispronounces.

Usage::

    import random
    from espnet_data.synth.text import generate_sentence, vocabulary
    transcript, spoken = generate_sentence(random.Random(0))
    len(vocabulary())   # a few hundred words
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["generate_sentence", "number_words", "ordinal_words", "vocabulary"]

LETTERS = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
DIGITS = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"]
_TEENS = ["TEN", "ELEVEN", "TWELVE", "THIRTEEN", "FOURTEEN", "FIFTEEN", "SIXTEEN",
          "SEVENTEEN", "EIGHTEEN", "NINETEEN"]  # fmt: skip
_TENS = ["", "", "TWENTY", "THIRTY", "FORTY", "FIFTY", "SIXTY", "SEVENTY", "EIGHTY", "NINETY"]
_ORDINALS = ["", "FIRST", "SECOND", "THIRD", "FOURTH", "FIFTH", "SIXTH", "SEVENTH", "EIGHTH",
             "NINTH", "TENTH", "ELEVENTH", "TWELFTH", "THIRTEENTH", "FOURTEENTH", "FIFTEENTH",
             "SIXTEENTH", "SEVENTEENTH", "EIGHTEENTH", "NINETEENTH"]  # fmt: skip
MONTHS = ["JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST",
          "SEPTEMBER", "OCTOBER", "NOVEMBER", "DECEMBER"]  # fmt: skip
FIRST_NAMES = [
    "JOHN", "MARY", "JAMES", "LINDA", "ROBERT", "SUSAN", "MICHAEL", "KAREN", "DAVID", "NANCY",
    "WILLIAM", "BETTY", "RICHARD", "HELEN", "JOSEPH", "SANDRA", "THOMAS", "DONNA", "CHARLES",
    "CAROL", "DANIEL", "RUTH", "MATTHEW", "SHARON", "ANTHONY", "LAURA", "MARK", "SARAH",
    "PAUL", "KIMBERLY", "STEVEN", "DEBORAH", "ANDREW", "JESSICA", "KENNETH", "ANNA", "GEORGE",
    "EMILY", "BRIAN", "JULIE", "EDWARD", "AMY", "PETER", "ALICE", "FRANK", "JANET", "SCOTT",
    "DIANE", "ERIC", "GRACE", "JACK", "ROSE", "HENRY", "KATE",
]  # fmt: skip
LAST_NAMES = [
    "SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "MILLER", "DAVIS", "WILSON", "ANDERSON",
    "TAYLOR", "THOMAS", "MOORE", "MARTIN", "JACKSON", "THOMPSON", "WHITE", "HARRIS", "CLARK",
    "LEWIS", "ROBINSON", "WALKER", "YOUNG", "ALLEN", "KING", "WRIGHT", "SCOTT", "GREEN",
    "BAKER", "ADAMS", "NELSON", "HILL", "CAMPBELL", "MITCHELL", "CARTER", "PHILLIPS", "EVANS",
    "TURNER", "PARKER", "COLLINS", "EDWARDS", "STEWART", "MORRIS", "MURPHY", "COOK", "ROGERS",
    "MORGAN", "COOPER", "PETERSON", "REED", "BAILEY", "KELLY", "HOWARD", "COX", "WARD",
    "CHAPMAN", "FISHER",
]  # fmt: skip
_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
STREETS = ["MAIN", "FORBES", "FIFTH", "CRAIG", "WALNUT", "MURRAY", "BEECHWOOD", "NORTH",
           "SOUTH", "OAK", "PINE", "MAPLE", "ELM", "CEDAR", "PARK", "LAKE", "HILL", "CENTER",
           "LINCOLN", "WASHINGTON", "HIGHLAND", "MOREWOOD"]  # fmt: skip
STREET_TYPES = ["STREET", "AVENUE", "ROAD", "DRIVE", "LANE", "BOULEVARD", "COURT", "PLACE"]
COMMANDS = ["ERASE", "RUBOUT", "STOP", "GO", "YES", "NO", "REPEAT", "ENTER", "HELP", "START",
            "CANCEL", "NEXT", "BACK", "QUIT", "DELETE", "CLEAR", "OKAY", "CORRECT", "WRONG",
            "CONTINUE", "UNDO", "RETURN", "SPACE", "DONE"]  # fmt: skip
_FILLER = ["MY", "NAME", "IS", "FIRST", "LAST", "I", "LIVE", "AT", "ON", "WAS", "BORN",
           "PHONE", "NUMBER", "ZIP", "CODE", "APARTMENT", "BIRTHDAY", "OH", "HUNDRED",
           "THOUSAND"]  # fmt: skip

#: Transcript word -> what espeak must read to say it (when the spelling misleads espeak).
_SPOKEN: dict[str, str] = {"RUBOUT": "rub out", "OKAY": "okay", "UNDO": "un do"}

Sentence = tuple[list[str], list[str]]  # (transcript words, spoken chunks)


def number_words(n: int) -> list[str]:
    """Words for ``0 <= n <= 9999``, American style: 147 -> ONE HUNDRED FORTY SEVEN."""
    if not 0 <= n <= 9999:
        raise ValueError(f"number_words supports 0..9999, got {n}")
    if n < 10:
        return [DIGITS[n]]
    if n < 20:
        return [_TEENS[n - 10]]
    if n < 100:
        return [_TENS[n // 10]] + ([DIGITS[n % 10]] if n % 10 else [])
    if n < 1000:
        head, rest = [DIGITS[n // 100], "HUNDRED"], n % 100
    else:
        head, rest = number_words(n // 1000) + ["THOUSAND"], n % 1000
    return head + (number_words(rest) if rest else [])


def ordinal_words(n: int) -> list[str]:
    """Ordinal words for a day of month ``1 <= n <= 31``: 21 -> TWENTY FIRST."""
    if not 1 <= n <= 31:
        raise ValueError(f"ordinal_words supports days 1..31, got {n}")
    if n < 20:
        return [_ORDINALS[n]]
    if n % 10 == 0:
        return [_TENS[n // 10][:-1] + "IETH"]
    return [_TENS[n // 10], _ORDINALS[n % 10]]


def _year(rng: random.Random) -> list[str]:
    year = rng.randint(1920, 2009)
    if year >= 2000:
        return number_words(year)
    low = year % 100
    return ["NINETEEN"] + (["OH", DIGITS[low]] if low < 10 else number_words(low))


def _plain(words: list[str]) -> Sentence:
    return words, [_SPOKEN.get(w, w.lower()) for w in words]


def _spelled(word: str) -> Sentence:
    letters = list(word)
    return letters, [", ".join(letters) + ","]


def _digits(rng: random.Random, count: int, groups: tuple[int, ...] = ()) -> Sentence:
    words = [rng.choice(DIGITS) for _ in range(count)]
    if rng.random() < 0.2:
        words = ["OH" if w == "ZERO" else w for w in words]
    spoken, start = [], 0
    for size in (*groups, count):
        chunk = words[start : start + size]
        if chunk:
            spoken.append(" ".join(w.lower() for w in chunk) + ",")
        start += size
    return words, spoken


def _join(*parts: Sentence) -> Sentence:
    return [w for p in parts for w in p[0]], [s for p in parts for s in p[1]]


def _t_spell(rng: random.Random) -> Sentence:
    if rng.random() < 0.3:  # a code or initials: reaches every letter, Q and Z included
        return _spelled("".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 6))))
    return _spelled(rng.choice(FIRST_NAMES + LAST_NAMES))


def _t_name(rng: random.Random) -> Sentence:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    form = rng.randrange(3)
    if form == 0:
        return _plain(["MY", "NAME", "IS", first, last])
    if form == 1:
        return _plain(["MY", "LAST", "NAME", "IS", last])
    return _join(_plain(["MY", "FIRST", "NAME", "IS"]), _spelled(first))


def _t_digits(rng: random.Random) -> Sentence:
    return _digits(rng, rng.randint(4, 8))


def _t_number(rng: random.Random) -> Sentence:
    top = rng.choices([99, 999, 9999], weights=[0.2, 0.4, 0.4])[0]
    n = rng.randint(0, top)
    return _plain(number_words(n))


def _t_date(rng: random.Random) -> Sentence:
    month = rng.randrange(12)
    date = [MONTHS[month]] + ordinal_words(rng.randint(1, _DAYS[month]))
    if rng.random() < 0.7:
        date += _year(rng)
    if rng.random() < 0.4:
        return _plain(["I", "WAS", "BORN", "ON"] + date)
    if rng.random() < 0.3:
        return _plain(["MY", "BIRTHDAY", "IS"] + date)
    return _plain(date)


def _t_phone(rng: random.Random) -> Sentence:
    prefix = rng.random() < 0.4
    ten = not prefix and rng.random() < 0.5  # keeps utterances under ~5 s
    number = _digits(rng, 10 if ten else 7, (3, 3) if ten else (3,))
    return _join(_plain(["MY", "PHONE", "NUMBER", "IS"]), number) if prefix else number


def _t_zip(rng: random.Random) -> Sentence:
    code = _digits(rng, 5)
    return _join(_plain(["MY", "ZIP", "CODE", "IS"]), code) if rng.random() < 0.5 else code


def _t_command(rng: random.Random) -> Sentence:
    words = [rng.choice(COMMANDS) for _ in range(rng.choice([1, 2, 2, 3, 3, 4]))]
    if rng.random() < 0.2:
        words += [rng.choice(["ENTER", "DELETE", "REPEAT"])] + number_words(rng.randint(1, 99))
    return _plain(words)


def _t_address(rng: random.Random) -> Sentence:
    house = rng.randint(1, 999)
    words = ["I", "LIVE", "AT"] + number_words(house)
    words += [rng.choice(STREETS), rng.choice(STREET_TYPES)]
    if rng.random() < 0.2:
        words += ["APARTMENT"] + number_words(rng.randint(1, 40))
    return _plain(words)


_TEMPLATES: list[tuple[float, Callable[[random.Random], Sentence]]] = [
    (0.16, _t_spell),
    (0.12, _t_name),
    (0.12, _t_digits),
    (0.08, _t_number),
    (0.12, _t_date),
    (0.12, _t_phone),
    (0.06, _t_zip),
    (0.08, _t_command),
    (0.14, _t_address),
]


def generate_sentence(rng: random.Random) -> tuple[str, str]:
    """Draw one ``(transcript, spoken)`` pair using ``rng`` only."""
    weights = [w for w, _ in _TEMPLATES]
    template = rng.choices([t for _, t in _TEMPLATES], weights=weights)[0]
    words, spoken = template(rng)
    text = " ".join(spoken).rstrip(",") + "."
    return " ".join(words), text


def vocabulary() -> set[str]:
    """Every word a transcript can contain."""
    numbers = {w for n in range(100) for w in number_words(n)}
    ordinals = {w for n in range(1, 32) for w in ordinal_words(n)}
    return {
        *LETTERS, *DIGITS, *numbers, *ordinals, *MONTHS, *FIRST_NAMES, *LAST_NAMES,
        *STREETS, *STREET_TYPES, *COMMANDS, *_FILLER,
    }  # fmt: skip
