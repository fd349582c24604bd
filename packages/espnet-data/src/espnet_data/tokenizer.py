"""Tokenizers with ESPnet's id conventions.

Ids: 0 = ``<blank>``, 1 = ``<unk>``, ``vocab_size - 1`` = ``<sos/eos>``; real tokens in
between. Both tokenizers share ``encode`` / ``decode`` / ``token_list`` / ``vocab_size``
and save themselves as files in a folder, described by a small dict
(``{"type": "sentencepiece", "model": "bpe.model"}`` or ``{"type": "char",
"token_list": "tokens.txt"}``) that :func:`load_tokenizer` reads back.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import sentencepiece as spm

from .atomic import atomic_open

BLANK = "<blank>"
UNK = "<unk>"
SOS_EOS = "<sos/eos>"
SPACE = "<space>"


class Tokenizer(Protocol):
    token_list: list[str]

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...


def _strip_special(ids: Iterable[int], vocab_size: int) -> list[int]:
    return [int(i) for i in ids if 1 < int(i) < vocab_size - 1 or int(i) == 1]


class SentencePieceTokenizer:
    """A SentencePiece model shifted by one so that id 0 is the CTC blank."""

    def __init__(self, model: str | os.PathLike[str]) -> None:
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(
                f"sentencepiece model {path} not found: run the train_tokenizer stage first"
            )
        self.model_path = path
        self._sp = spm.SentencePieceProcessor(model_file=str(path))
        if self._sp.unk_id() != 0:
            raise ValueError(f"{path}: expected unk_id 0 (train it with train_sentencepiece)")
        pieces = [self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size())]
        self.token_list = [BLANK, UNK, *pieces[1:], SOS_EOS]

    @property
    def vocab_size(self) -> int:
        return len(self.token_list)

    def encode(self, text: str) -> list[int]:
        return [i + 1 for i in self._sp.encode(text)]

    def decode(self, ids: Iterable[int]) -> str:
        return self._sp.decode([i - 1 for i in _strip_special(ids, self.vocab_size)])

    def save(self, out_dir: str | os.PathLike[str]) -> dict[str, Any]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if self.model_path.resolve() != (out / "bpe.model").resolve():
            shutil.copyfile(self.model_path, out / "bpe.model")
        (out / "tokens.txt").write_text("\n".join(self.token_list) + "\n")
        return {"type": "sentencepiece", "model": "bpe.model"}


class CharTokenizer:
    """Characters as tokens; spaces become ``<space>``."""

    def __init__(self, token_list: list[str]) -> None:
        if token_list[:2] != [BLANK, UNK] or token_list[-1] != SOS_EOS:
            raise ValueError(
                f"a char token list must start with {BLANK}, {UNK} and end with {SOS_EOS}"
            )
        self.token_list = list(token_list)
        self._ids = {t: i for i, t in enumerate(self.token_list)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharTokenizer:
        chars = sorted({SPACE if c == " " else c for t in texts for c in " ".join(t.split())})
        return cls([BLANK, UNK, *chars, SOS_EOS])

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CharTokenizer:
        return cls([line.rstrip("\n") for line in Path(path).read_text().splitlines() if line])

    @property
    def vocab_size(self) -> int:
        return len(self.token_list)

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(SPACE if c == " " else c, 1) for c in " ".join(text.split())]

    def decode(self, ids: Iterable[int]) -> str:
        tokens = [self.token_list[i] for i in _strip_special(ids, self.vocab_size)]
        return "".join(" " if t == SPACE else t for t in tokens).strip()

    def save(self, out_dir: str | os.PathLike[str]) -> dict[str, Any]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "tokens.txt").write_text("\n".join(self.token_list) + "\n")
        return {"type": "char", "token_list": "tokens.txt"}


class TokenListTokenizer:
    """ESPnet2's text side: ids index a token list; tokens become text by ``token_type``.

    ``bpe``: the list holds SentencePiece pieces in any order (ESPnet2 recipes sort them
    by frequency, so the ids are not the model's); ``decode`` looks every id up in the
    list and joins the pieces with ``bpemodel``'s ``decode_pieces``. ``char``: tokens
    are characters, ``space_symbol`` a space. ``word``: tokens are joined by spaces.
    This is what ``espnet2.bin.asr_inference.Speech2Text`` does with ``TokenIDConverter``
    and ``build_tokenizer``, so the same ids give ESPnet2's text: ``<blank>`` (id 0) and
    ``<sos/eos>`` (the last id) are dropped, ``<unk>`` stays (SentencePiece writes it
    `` ⁇ ``). ``encode`` maps tokens missing from the list to ``<unk>``.
    """

    def __init__(
        self,
        token_list: list[str],
        token_type: Literal["bpe", "char", "word"] = "bpe",
        bpemodel: str | os.PathLike[str] | None = None,
        *,
        space_symbol: str = SPACE,
    ) -> None:
        if token_list[:2] != [BLANK, UNK] or token_list[-1] != SOS_EOS:
            raise ValueError(
                f"a token list must start with {BLANK}, {UNK} and end with {SOS_EOS} "
                f"(ESPnet's ids), got {token_list[:2]} ... {token_list[-1:]}"
            )
        if token_type not in ("bpe", "char", "word"):
            raise ValueError(f"token_type {token_type!r} unknown: use 'bpe', 'char' or 'word'")
        self.token_list = [str(t) for t in token_list]
        self.token_type = token_type
        self.space_symbol = space_symbol
        self.model_path = None if bpemodel is None else Path(bpemodel)
        self._ids = {t: i for i, t in enumerate(self.token_list)}
        self._sp: spm.SentencePieceProcessor | None = None
        if token_type == "bpe":
            if self.model_path is None or not self.model_path.is_file():
                raise FileNotFoundError(
                    f"token_type bpe needs its sentencepiece model (bpemodel), "
                    f"{'not given' if bpemodel is None else f'{bpemodel} not found'}"
                )
            self._sp = spm.SentencePieceProcessor(model_file=str(self.model_path))

    @property
    def vocab_size(self) -> int:
        return len(self.token_list)

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """The tokens of ``ids``, blank and sos/eos left out."""
        last = len(self.token_list) - 1
        return [self.token_list[int(i)] for i in ids if 0 < int(i) < last]

    def encode(self, text: str) -> list[int]:
        if self._sp is not None:
            tokens = self._sp.encode(text, out_type=str)
        elif self.token_type == "char":
            tokens = [self.space_symbol if c == " " else c for c in text]
        else:
            tokens = text.split()
        return [self._ids.get(t, 1) for t in tokens]

    def decode(self, ids: Iterable[int]) -> str:
        tokens = self.tokens(ids)
        if self._sp is not None:
            return str(self._sp.decode_pieces(tokens))
        if self.token_type == "char":
            return "".join(" " if t == self.space_symbol else t for t in tokens)
        return " ".join(tokens)


def train_sentencepiece(
    texts: Iterable[str],
    out_dir: str | os.PathLike[str],
    *,
    vocab_size: int = 256,
    model_type: Literal["unigram", "bpe", "char", "word"] = "unigram",
    character_coverage: float = 1.0,
) -> SentencePieceTokenizer:
    """Train a SentencePiece model on ``texts`` into ``out_dir/bpe.model``.

    ``vocab_size`` counts the final ids (blank, unk, pieces, sos/eos), as the model sees them.
    The same texts into the same ``out_dir`` give a byte-identical model (SentencePiece
    records its input and output paths in the model: they are the same each time), so
    the folders that copy it (a trained model's, its LM's) do not change on a rerun.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [" ".join(t.split()) for t in texts if t.strip()]
    if not lines:
        raise ValueError("train_sentencepiece got no non-empty transcripts")
    work = out / ".train_sentencepiece"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        tmp = str(work)
        corpus = Path(tmp) / "text.txt"
        corpus.write_text("\n".join(lines) + "\n")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(Path(tmp) / "bpe"),
            vocab_size=vocab_size - 2,
            model_type=model_type,
            character_coverage=character_coverage,
            hard_vocab_limit=False,  # small corpora: fewer pieces rather than a crash
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            input_sentence_size=10_000_000,
            shuffle_input_sentence=True,
            minloglevel=2,
        )
        for suffix in (".model", ".vocab"):
            os.replace(Path(tmp) / f"bpe{suffix}", out / f"bpe{suffix}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return SentencePieceTokenizer(out / "bpe.model")


def load_tokenizer(
    spec: Mapping[str, Any], base_dir: str | os.PathLike[str] = "."
) -> SentencePieceTokenizer | CharTokenizer:
    """Load a tokenizer from its description; file paths are relative to ``base_dir``."""
    kind = spec.get("type")
    base = Path(base_dir)
    if kind == "sentencepiece":
        return SentencePieceTokenizer(base / spec["model"])
    if kind == "char":
        return CharTokenizer.from_file(base / spec["token_list"])
    raise ValueError(f"tokenizer type {kind!r} unknown: use 'sentencepiece' or 'char'")


TOKENIZER_FILE = "tokenizer.yaml"


def save_tokenizer(tokenizer: SentencePieceTokenizer | CharTokenizer, out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Save the tokenizer's files and a ``tokenizer.yaml`` that describes them."""
    import yaml

    spec = tokenizer.save(out_dir)
    with atomic_open(Path(out_dir) / TOKENIZER_FILE) as f:
        yaml.safe_dump(spec, f)
    return spec


def load_tokenizer_dir(path: str | os.PathLike[str]) -> SentencePieceTokenizer | CharTokenizer:
    """Load a tokenizer folder written by :func:`save_tokenizer`."""
    import yaml

    spec_file = Path(path) / TOKENIZER_FILE
    if not spec_file.is_file():
        raise FileNotFoundError(
            f"{spec_file} not found: run the train_tokenizer stage first, or point "
            "the config's tokenizer key at a folder made by it"
        )
    return load_tokenizer(yaml.safe_load(spec_file.read_text()), path)


class TokenizerMismatchError(ValueError):
    """Two models that must share a tokenizer (an ASR model and its LM) do not."""


def check_same_tokenizer(
    tokenizer: Tokenizer, reference: Tokenizer, *, name: str, reference_name: str
) -> None:
    """Raise :class:`TokenizerMismatchError` unless both token lists are the same.

    ``name`` and ``reference_name`` say where each tokenizer comes from (their files);
    the message names both, their sizes and the first id that differs.
    """
    mine, theirs = list(tokenizer.token_list), list(reference.token_list)
    if mine == theirs:
        return
    if len(mine) != len(theirs):
        what = f"{len(mine)} tokens vs {len(theirs)}"
    else:
        first = next(i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b)
        what = f"both {len(mine)} tokens, but id {first} is {mine[first]!r} vs {theirs[first]!r}"
    raise TokenizerMismatchError(
        f"tokenizers differ: {name} and {reference_name} ({what}). A language model must "
        f"use the tokenizer of the ASR model it is fused with: train it with that "
        f"tokenizer folder (training.yaml: tokenizer), or retrain it after the ASR "
        f"tokenizer changed"
    )
