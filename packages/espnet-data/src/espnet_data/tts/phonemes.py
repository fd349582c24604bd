"""English text -> phone tokens through espeak-ng (the library ``espeakng-loader`` ships).

Tokens, one per item:

* a *phone*: one espeak-ng phoneme in IPA (``"k"``, ``"tʃ"``, ``"aɪ"``, ``"ɑːɹ"``),
  its stress mark attached in front (``"ˈeɪ"`` primary, ``"ˌɪ"`` secondary) and its
  length mark inside (``"iː"``), exactly as espeak-ng segments them: its
  ``espeak_TextToPhonemes`` is asked for IPA with ``_`` between phonemes, so a
  multi-letter phoneme is never cut in two;
* ``"|"`` between words;
* a pause mark ``, . ? ! ; :`` after the clause it ends (no ``"|"`` around it).

IPA, not espeak's ASCII mnemonics: it is what ESPnet's ``espeak_ng_*`` g2p front-ends
(via ``phonemizer``) give, so token lists read the same, and every phone stays one
token. ``"hello, world."`` -> ``h ə l ˈoʊ , w ˈɜː l d .``

Text is checked and cut into clauses by :mod:`espnet_data.tts.text` first (bad
characters raise ``ValueError`` naming them); each clause goes to espeak-ng alone, so
the result is a pure function of the text: the same tokens in any order of calls, in
any process. Letter case is kept: espeak reads a lone capital letter followed by a
pause mark as the letter's name (``"A."`` -> ``ˈeɪ``) and may spell out an all-caps word.

libespeak-ng keeps its state in C globals, so every call goes through one lock per
process (the phonemizer is thread-safe, calls do not run in parallel; processes each
load their own copy). The synthesiser in :mod:`espnet_data.synth` loads a private copy
of the library, so the two never disturb each other.

Usage::

    from espnet_data.tts.phonemes import Phonemizer
    g2p = Phonemizer()                 # language="en-us"
    g2p("My name is John.")            # ['m', 'aɪ', '|', 'n', 'ˈeɪ', 'm', '|', ...,'.']
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass

from .text import normalize_text, split_clauses

__all__ = ["WORD_BOUNDARY", "Phonemizer", "PhonemizerError"]

#: The token between two words.
WORD_BOUNDARY = "|"

# Values from espeak-ng/speak_lib.h (1.52).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_PHONEME_SEPARATOR = "_"
# bit 1: IPA instead of ASCII names; bits 8-23: the character put between phonemes
_PHONEME_MODE = 0x02 | (ord(_PHONEME_SEPARATOR) << 8)
_MODIFIERS = "ˈˌːˑ"  # stress and length marks: never a phone of their own


class PhonemizerError(RuntimeError):
    """libespeak-ng could not be loaded or refused a language."""


class _Engine:
    """The packaged libespeak-ng, initialised once per process, behind one lock."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a dependency of espnet-data
            raise PhonemizerError(
                "espnet_data.tts needs 'espeakng-loader' (it ships libespeak-ng and its data): "
                "`uv pip install espeakng-loader`"
            ) from exc
        path, data = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise PhonemizerError(
                f"cannot load libespeak-ng from {path}: {exc}; reinstall espeakng-loader"
            ) from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int,
        ]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise PhonemizerError(
                f"espeak_Initialize failed (returned {rate}) with data path {data}; "
                "reinstall espeakng-loader"
            )
        self.lib = lib
        self.language: str | None = None
        self.lock = threading.Lock()

    def set_language(self, language: str) -> None:
        """Select ``language``'s voice (call with the lock held)."""
        if language == self.language:
            return
        status = self.lib.espeak_SetVoiceByName(language.encode())
        if status != 0:
            self.language = None
            raise ValueError(
                f"espeak-ng has no language {language!r} (status {status}); use a voice name "
                "of espeak-ng-data/lang/ (`espeak-ng --voices`), e.g. 'en-us', 'en' (British), "
                "'en-gb-x-rp' or 'de'"
            )
        self.language = language

    def clause(self, text: str) -> list[str]:
        """espeak-ng's output for ``text``: one string per clause it found (lock held)."""
        buffer = ctypes.create_string_buffer(text.encode("utf-8"))
        pointer = ctypes.c_void_p(ctypes.addressof(buffer))
        out: list[str] = []
        while pointer.value:
            result = self.lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEME_MODE)
            if result:
                out.append(result.decode("utf-8"))
        return out


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def _reset_after_fork() -> None:  # a lock held by another thread at fork stays held
    global _engine_lock
    _engine_lock = threading.Lock()
    if _engine is not None:
        _engine.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _get_engine() -> _Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
        return _engine


def _word_phones(word: str) -> list[str]:
    """One espeak word (``"n_ˈeɪ_m"``) -> phones; a lone modifier joins its neighbour."""
    phones: list[str] = []
    pending = ""  # stress marks waiting for the phone they precede
    for piece in word.split(_PHONEME_SEPARATOR):
        if not piece:
            continue  # "__" marks a pause inside a clause: words carry no pauses here
        if all(c in _MODIFIERS for c in piece):
            if "ː" in piece and phones and not pending:
                phones[-1] += piece  # a length mark belongs to the phone before it
            else:
                pending += piece
            continue
        phones.append(pending + piece)
        pending = ""
    if pending and phones:
        phones[-1] += pending
    return phones


@dataclass(frozen=True)
class Phonemizer:
    """Text -> phone tokens (module docstring) with espeak-ng's ``language``.

    Picklable (it holds only the language); the library is loaded on first use in each
    process. Raises ``ValueError`` for text it cannot phonemise: empty, a character
    outside the set (:mod:`espnet_data.tts.text`), nothing to speak.
    """

    language: str = "en-us"

    def __post_init__(self) -> None:
        engine = _get_engine()
        with engine.lock:
            engine.set_language(self.language)

    def __call__(self, text: str) -> list[str]:
        clauses = split_clauses(normalize_text(text, self.language))
        engine = _get_engine()
        tokens: list[str] = []
        with engine.lock:
            engine.set_language(self.language)
            outputs = [(engine.clause(words), marks) for words, marks in clauses]
        for parts, marks in outputs:
            words = [w for part in parts for w in part.split(" ")]
            for word in words:
                phones = _word_phones(word)
                if not phones:
                    continue
                if tokens and tokens[-1] not in ",.?!;:":
                    tokens.append(WORD_BOUNDARY)
                tokens.extend(phones)
            if tokens:
                tokens.extend(marks)
        if not any(t not in ",.?!;:" for t in tokens):
            raise ValueError(
                f"espeak-ng ({self.language}) gives no phone for {text!r}; pass words it can read"
            )
        return tokens

    def phonemize(self, text: str) -> str:
        """The tokens of ``text`` joined by spaces (for logs and listings)."""
        return " ".join(self(text))
