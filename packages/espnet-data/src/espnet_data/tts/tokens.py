"""Phone tokens <-> ids, in ESPnet2's token order, saved as a folder.

``PhonemeTokenizer.build(texts, phonemizer)`` phonemises the training texts and lists
their tokens as ESPnet2's ``tts1`` recipes do (``token_list`` of ``phn`` type):
``<blank>`` (id 0), ``<unk>`` (id 1), the tokens by falling frequency (ties in code
point order, so the list does not depend on the order of the texts), ``<sos/eos>``
last. ``len(tokenizer)`` is the vocabulary size a model is built with.

A phone not seen at build time encodes as ``<unk>``: the first time each such phone
is met a warning says so, with the count of unknown phones met so far
(``tokenizer.unknown`` holds them all), so a language or text style the list was not
built for shows up in the log instead of in the audio only.

Folder layout (``save`` / ``load``)::

    <folder>/tokens.txt        one token per line, line n = id n
    <folder>/tokenizer.json    {"kind": "phoneme", "language": "en-us", "g2p": "espeak-ng"}

Usage::

    from espnet_data.tts import Phonemizer, PhonemeTokenizer
    tok = PhonemeTokenizer.build(["My name is John.", "I live at Main street."], Phonemizer())
    ids = tok.encode("My name is John.")
    tok.decode(ids)                     # ['m', 'aɪ', '|', 'n', 'ˈeɪ', 'm', ...]
    tok.save("exp/tokenizer"); PhonemeTokenizer.load("exp/tokenizer")
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..atomic import atomic_open, write_json
from .phonemes import Phonemizer

__all__ = ["BLANK", "SOS_EOS", "TOKENIZER_JSON", "TOKENS_TXT", "UNK", "PhonemeTokenizer"]

log = logging.getLogger(__name__)

BLANK = "<blank>"
UNK = "<unk>"
SOS_EOS = "<sos/eos>"
TOKENS_TXT = "tokens.txt"
TOKENIZER_JSON = "tokenizer.json"
_SPECIAL = (BLANK, UNK, SOS_EOS)

Pathlike = str | os.PathLike[str]


class PhonemeTokenizer:
    """Phone tokens of a :class:`Phonemizer` <-> ids of a fixed token list."""

    def __init__(self, tokens: Sequence[str], phonemizer: Phonemizer) -> None:
        tokens = [str(t) for t in tokens]
        if len(tokens) < 4 or tokens[:2] != [BLANK, UNK] or tokens[-1] != SOS_EOS:
            raise ValueError(
                f"a phoneme token list must start with {BLANK}, {UNK}, hold at least one "
                f"phone and end with {SOS_EOS} (ESPnet2's ids); got {tokens[:3]} ... {tokens[-1:]}"
            )
        repeated = sorted(t for t, n in Counter(tokens).items() if n > 1)
        if repeated:
            raise ValueError(f"the token list repeats {repeated}: each token must appear once")
        self.tokens = tokens
        self.phonemizer = phonemizer
        self.unknown: Counter[str] = Counter()
        self._ids = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], phonemizer: Phonemizer) -> PhonemeTokenizer:
        """The token list of ``texts``: specials and phones by falling frequency.

        A text the phonemizer refuses raises its ``ValueError`` with the text's position.
        """
        counts: Counter[str] = Counter()
        for n, text in enumerate(texts):
            try:
                counts.update(phonemizer(text))
            except ValueError as err:
                raise ValueError(f"text #{n} of the tokenizer's texts: {err}") from err
        if not counts:
            raise ValueError("PhonemeTokenizer.build got no texts; pass the training split's texts")
        phones = sorted((t for t in counts if t not in _SPECIAL), key=lambda t: (-counts[t], t))
        return cls([BLANK, UNK, *phones, SOS_EOS], phonemizer)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def vocab_size(self) -> int:
        """``len(self)``: the size of the model's embedding table."""
        return len(self.tokens)

    @property
    def token_list(self) -> list[str]:
        """``tokens`` under the name the other tokenizers of espnet_data use."""
        return self.tokens

    @property
    def language(self) -> str:
        return self.phonemizer.language

    def to_ids(self, phones: Iterable[str]) -> list[int]:
        """Ids of already phonemised ``phones``; unseen ones -> ``<unk>`` (warned)."""
        ids = []
        for phone in phones:
            i = self._ids.get(phone)
            if i is None or phone in _SPECIAL:
                if phone not in self.unknown:
                    log.warning(
                        "phone %r is not in the token list (built from other texts); it is "
                        "encoded as %s (unknown phones so far: %d)",
                        phone, UNK, sum(self.unknown.values()) + 1,
                    )
                self.unknown[phone] += 1
                i = 1
            ids.append(i)
        return ids

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``'s phone tokens (ValueError for text it cannot phonemise)."""
        return self.to_ids(self.phonemizer(text))

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` (``<blank>`` and ``<sos/eos>`` left out)."""
        last = len(self.tokens) - 1
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i <= last:
                raise ValueError(f"id {i} is outside the token list (0..{last})")
            if 0 < i < last:
                out.append(self.tokens[i])
        return out

    def save(self, folder: Pathlike) -> Path:
        """Write ``tokens.txt`` and ``tokenizer.json`` into ``folder`` (atomically)."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_open(out / TOKENS_TXT) as f:
            f.write("".join(f"{t}\n" for t in self.tokens))
        write_json(out / TOKENIZER_JSON, {"kind": "phoneme", "language": self.language, "g2p": "espeak-ng"})
        return out

    @classmethod
    def load(cls, folder: Pathlike) -> PhonemeTokenizer:
        """Read a folder written by :meth:`save`; errors name the file and the fix."""
        folder = Path(folder)
        spec_file, tokens_file = folder / TOKENIZER_JSON, folder / TOKENS_TXT
        for path in (spec_file, tokens_file):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} not found: {folder} is not a phoneme tokenizer folder; run the "
                    "train_tokenizer stage first, or point the config's tokenizer key at its output"
                )
        try:
            spec = json.loads(spec_file.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{spec_file} is not valid JSON ({err}); rerun train_tokenizer") from err
        if not isinstance(spec, dict) or spec.get("kind") != "phoneme":
            kind = spec.get("kind") if isinstance(spec, dict) else spec
            raise ValueError(f"{spec_file}: kind {kind!r}, expected 'phoneme' (a PhonemeTokenizer folder)")
        if spec.get("g2p", "espeak-ng") != "espeak-ng":
            raise ValueError(f"{spec_file}: g2p {spec.get('g2p')!r} unknown; only 'espeak-ng' is supported")
        tokens = tokens_file.read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        try:
            return cls(tokens, Phonemizer(str(spec.get("language", "en-us"))))
        except ValueError as err:
            raise ValueError(f"{folder}: {err}") from err
