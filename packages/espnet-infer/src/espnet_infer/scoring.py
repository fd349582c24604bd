"""WER / CER scoring of hypothesis transcripts against references (via jiwer).

Typical use::

    refs = read_text_file("data/test/text")          # Kaldi "key text..." or JSONL
    hyps = read_text_file("exp/decode/test/hyp.txt")
    result = score_texts(refs, hyps)
    print(format_summary(result))
    write_scores(result, "exp/decode/test/score")    # scores.json, result.txt, scores.md
    print(format_markdown({"test": result}))          # one row per test set

Every reference key is scored. References without hypothesis (utterances whose
decoding failed, or that were never decoded) make the set incomplete: scoring refuses
it unless ``allow_incomplete=True``, which scores them as all deletions, lists them in
``missing_keys`` and flags the result (``complete`` is False, ``INCOMPLETE`` in the
summary). Hypothesis keys without reference are listed in ``extra_keys`` and not scored. Whitespace is always collapsed (words are
whitespace-separated, characters include the single spaces between words); upper-casing
and punctuation stripping happen only when asked for.
"""

from __future__ import annotations

import json
import math
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jiwer
from espnet_data.atomic import atomic_open

__all__ = [
    "ErrorCounts",
    "IncompleteHypotheses",
    "ScoreResult",
    "UtteranceScore",
    "format_markdown",
    "format_summary",
    "normalize_text",
    "read_text_file",
    "score_texts",
    "worst_utterances",
    "write_scores",
]

Pathlike = str | os.PathLike[str]

#: missing keys named in the error about an incomplete set
_NAMED_KEYS = 5


class IncompleteHypotheses(ValueError):
    """References without hypothesis, scored only with ``allow_incomplete=True``."""


@dataclass(frozen=True)
class ErrorCounts:
    """Edit-distance counts of one alignment (or a sum of alignments)."""

    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @property
    def num_ref(self) -> int:
        return self.hits + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def error_rate(self) -> float:
        """``errors / num_ref``; with an empty reference 0.0 if no errors, else inf."""
        if self.num_ref == 0:
            return 0.0 if self.errors == 0 else math.inf
        return self.errors / self.num_ref

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            hits=self.hits + other.hits,
            substitutions=self.substitutions + other.substitutions,
            deletions=self.deletions + other.deletions,
            insertions=self.insertions + other.insertions,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "num_ref": self.num_ref,
            "errors": self.errors,
            "error_rate": _finite_or_none(self.error_rate),
        }


@dataclass(frozen=True)
class UtteranceScore:
    """Scores of one utterance; ``alignment`` holds ``(ref, hyp, op)`` word triples with
    ``op`` in ``C`` (correct), ``S``, ``D`` (hyp ``""``), ``I`` (ref ``""``)."""

    key: str
    ref: str
    hyp: str
    words: ErrorCounts
    chars: ErrorCounts
    alignment: list[tuple[str, str, str]]
    missing: bool = False


@dataclass(frozen=True)
class ScoreResult:
    """Corpus-level and per-utterance scores."""

    words: ErrorCounts
    chars: ErrorCounts
    utterances: list[UtteranceScore]
    missing_keys: list[str] = field(default_factory=list)
    extra_keys: list[str] = field(default_factory=list)
    uppercase: bool = False
    strip_punctuation: bool = False

    @property
    def wer(self) -> float:
        return self.words.error_rate

    @property
    def complete(self) -> bool:
        """Every reference had a hypothesis (none scored as deletions for lack of one)."""
        return not self.missing_keys

    @property
    def cer(self) -> float:
        return self.chars.error_rate

    @property
    def num_sentences(self) -> int:
        return len(self.utterances)

    @property
    def num_sentence_errors(self) -> int:
        return sum(1 for u in self.utterances if u.words.errors > 0)

    @property
    def ser(self) -> float:
        return self.num_sentence_errors / self.num_sentences if self.utterances else 0.0

    def to_dict(self, *, worst: int = 10) -> dict[str, Any]:
        """JSON form: totals, the ``worst`` worst keys, per-utterance counts and
        word alignments (``[ref, hyp, op]`` with ``op`` in C/S/D/I)."""
        return {
            "wer": _finite_or_none(self.wer),
            "cer": _finite_or_none(self.cer),
            "ser": self.ser,
            "num_sentences": self.num_sentences,
            "num_sentence_errors": self.num_sentence_errors,
            "complete": self.complete,
            "words": self.words.to_dict(),
            "chars": self.chars.to_dict(),
            "missing_keys": list(self.missing_keys),
            "extra_keys": list(self.extra_keys),
            "normalization": {
                "uppercase": self.uppercase,
                "strip_punctuation": self.strip_punctuation,
            },
            "worst_utterances": [u.key for u in worst_utterances(self, worst)],
            "utterances": [
                {
                    "key": u.key,
                    "ref": u.ref,
                    "hyp": u.hyp,
                    "missing": u.missing,
                    "words": u.words.to_dict(),
                    "chars": u.chars.to_dict(),
                    "alignment": [list(t) for t in u.alignment],
                }
                for u in self.utterances
            ],
        }


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def normalize_text(text: str, *, uppercase: bool = False, strip_punctuation: bool = False) -> str:
    """Collapse whitespace; optionally upper-case and replace punctuation by spaces.

    Apostrophes between two letters (``don't``) are kept when stripping punctuation.
    """
    if strip_punctuation:
        chars = list(text)
        for i, ch in enumerate(chars):
            if not unicodedata.category(ch).startswith("P"):
                continue
            inner_apostrophe = (
                ch in "'\u2019"
                and 0 < i < len(chars) - 1
                and chars[i - 1].isalpha()
                and chars[i + 1].isalpha()
            )
            if not inner_apostrophe:
                chars[i] = " "
        text = "".join(chars)
    if uppercase:
        text = text.upper()
    return " ".join(text.split())


def _counts(chunks: list[Any]) -> ErrorCounts:
    tally = {"equal": 0, "substitute": 0, "delete": 0, "insert": 0}
    for chunk in chunks:
        if chunk.type == "insert":
            tally["insert"] += chunk.hyp_end_idx - chunk.hyp_start_idx
        else:
            tally[chunk.type] += chunk.ref_end_idx - chunk.ref_start_idx
    return ErrorCounts(
        hits=tally["equal"],
        substitutions=tally["substitute"],
        deletions=tally["delete"],
        insertions=tally["insert"],
    )


def _word_alignment(
    ref: list[str], hyp: list[str], chunks: list[Any]
) -> list[tuple[str, str, str]]:
    pairs: list[tuple[str, str, str]] = []
    for c in chunks:
        r, h = ref[c.ref_start_idx : c.ref_end_idx], hyp[c.hyp_start_idx : c.hyp_end_idx]
        if c.type == "equal":
            pairs += [(a, b, "C") for a, b in zip(r, h, strict=True)]
        elif c.type == "substitute":
            pairs += [(a, b, "S") for a, b in zip(r, h, strict=True)]
        elif c.type == "delete":
            pairs += [(a, "", "D") for a in r]
        else:
            pairs += [("", b, "I") for b in h]
    return pairs


def score_texts(
    refs: Mapping[str, str],
    hyps: Mapping[str, str],
    *,
    uppercase: bool = False,
    strip_punctuation: bool = False,
    allow_incomplete: bool = False,
) -> ScoreResult:
    """Score ``hyps`` against ``refs`` (both ``key -> text``) at word and character level.

    Args:
        refs: reference transcripts; every key is scored, in sorted key order.
        hyps: hypothesis transcripts.
        uppercase: upper-case both sides before scoring.
        strip_punctuation: replace punctuation by spaces on both sides.
        allow_incomplete: score a reference without hypothesis as an empty hypothesis
            (all deletions; listed in ``missing_keys``). False: refuse the set.

    Raises:
        IncompleteHypotheses: (a ``ValueError``) some references have no hypothesis and
            ``allow_incomplete`` is False.
    """
    if not refs:
        raise ValueError("no reference utterances to score; check the --ref file is not empty")
    keys = sorted(refs)
    missing = [k for k in keys if k not in hyps]
    if missing and not allow_incomplete:
        named = ", ".join(missing[:_NAMED_KEYS]) + (" ..." if len(missing) > _NAMED_KEYS else "")
        raise IncompleteHypotheses(
            f"{len(missing)} of {len(keys)} reference utterances have no hypothesis "
            f"({named}): their decoding failed or they were never decoded (espnet-infer's "
            "hyp.jsonl and summary.json say why). A WER without them is not the set's WER: "
            "decode them (run espnet-infer again, or repair the shards), or score them as "
            "deletions with allow_incomplete=True (espnet-score --allow_incomplete; "
            "metrics.yaml: allow_incomplete: true)"
        )
    extra = sorted(k for k in hyps if k not in refs)
    norm = {"uppercase": uppercase, "strip_punctuation": strip_punctuation}
    ref_texts = [normalize_text(refs[k], **norm) for k in keys]
    hyp_texts = [normalize_text(hyps.get(k, ""), **norm) for k in keys]

    words = jiwer.process_words(ref_texts, hyp_texts)
    chars = jiwer.process_characters(ref_texts, hyp_texts)
    missing_set = set(missing)
    utterances = [
        UtteranceScore(
            key=key,
            ref=ref_texts[i],
            hyp=hyp_texts[i],
            words=_counts(words.alignments[i]),
            chars=_counts(chars.alignments[i]),
            alignment=_word_alignment(
                words.references[i], words.hypotheses[i], words.alignments[i]
            ),
            missing=key in missing_set,
        )
        for i, key in enumerate(keys)
    ]
    total_words, total_chars = ErrorCounts(), ErrorCounts()
    for u in utterances:
        total_words, total_chars = total_words + u.words, total_chars + u.chars
    return ScoreResult(
        words=total_words,
        chars=total_chars,
        utterances=utterances,
        missing_keys=missing,
        extra_keys=extra,
        uppercase=uppercase,
        strip_punctuation=strip_punctuation,
    )


def format_summary(result: ScoreResult) -> str:
    """A small WER/CER table (percentages), as printed by ``espnet-score``."""
    header = f"| {'':5} | {'#Snt':>6} | {'#Ref':>8} | {'Corr':>6} | {'Sub':>6} | {'Del':>6} | {'Ins':>6} | {'Err':>6} | {'S.Err':>6} |"
    rule = "|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|"
    lines = [header, rule]
    for name, counts in (("WER", result.words), ("CER", result.chars)):
        pct = 100.0 / counts.num_ref if counts.num_ref else math.nan
        lines.append(
            f"| {name:5} | {result.num_sentences:>6} | {counts.num_ref:>8} "
            f"| {counts.hits * pct:>6.1f} | {counts.substitutions * pct:>6.1f} "
            f"| {counts.deletions * pct:>6.1f} | {counts.insertions * pct:>6.1f} "
            f"| {100.0 * counts.error_rate:>6.1f} | {100.0 * result.ser:>6.1f} |"
        )
    if result.missing_keys:
        lines.append(
            f"INCOMPLETE: {len(result.missing_keys)} of {result.num_sentences} reference(s) "
            "without hypothesis, scored as deletions: "
            + ", ".join(result.missing_keys[:10])
            + (" ..." if len(result.missing_keys) > 10 else "")
        )
    if result.extra_keys:
        lines.append(
            f"{len(result.extra_keys)} hypothesis key(s) without reference, not scored: "
            + ", ".join(result.extra_keys[:10])
            + (" ..." if len(result.extra_keys) > 10 else "")
        )
    return "\n".join(lines)


def worst_utterances(result: ScoreResult, n: int = 10) -> list[UtteranceScore]:
    """The ``n`` utterances with the most word errors (ties: higher error rate, then key);
    utterances without errors are left out."""
    wrong = [u for u in result.utterances if u.words.errors > 0]
    wrong.sort(key=lambda u: (-u.words.errors, -_rate_for_sort(u.words), u.key))
    return wrong[:n]


def _rate_for_sort(counts: ErrorCounts) -> float:
    rate = counts.error_rate
    return rate if math.isfinite(rate) else float(counts.errors)


def _pct(value: float) -> str:
    return f"{100.0 * value:.2f}" if math.isfinite(value) else "n/a"


def format_markdown(results: Mapping[str, ScoreResult]) -> str:
    """A Markdown table with one row per test set: WER, CER, SER and the error kinds."""
    lines = [
        "| test set | #Snt | #Wrd | WER (%) | Sub | Del | Ins | CER (%) | SER (%) | missing |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        w = r.words
        lines.append(
            f"| {name} | {r.num_sentences} | {w.num_ref} | {_pct(r.wer)} | {w.substitutions} "
            f"| {w.deletions} | {w.insertions} | {_pct(r.cer)} | {_pct(r.ser)} "
            f"| {len(r.missing_keys)} |"
        )
    return "\n".join(lines)


def _markdown_report(name: str, result: ScoreResult, worst: int) -> str:
    body = [f"# Scores: {name}", "", format_markdown({name: result}), ""]
    bad = worst_utterances(result, worst)
    if bad:
        body += [f"## {len(bad)} worst utterances", "",
                 "| key | errors | WER (%) | reference | hypothesis |",
                 "| --- | ---: | ---: | --- | --- |"]
        body += [
            f"| {u.key} | {u.words.errors} | {_pct(u.words.error_rate)} "
            f"| {_md_cell(u.ref)} | {_md_cell(u.hyp)} |"
            for u in bad
        ]
        body.append("")
    return "\n".join(body)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|") or " "


def _format_utterance(u: UtteranceScore) -> str:
    w = u.words
    lines = [f"id: ({u.key})" + ("  [no hypothesis]" if u.missing else "")]
    lines.append(f"Scores: (#C #S #D #I) {w.hits} {w.substitutions} {w.deletions} {w.insertions}")
    refs, hyps, ops = ["REF: "], ["HYP: "], ["Eval:"]
    for ref, hyp, op in u.alignment:
        width = max(len(ref), len(hyp), 1)
        refs.append((ref or "*" * width).ljust(width))
        hyps.append((hyp or "*" * width).ljust(width))
        ops.append(("" if op == "C" else op).ljust(width))
    lines += [" ".join(refs).rstrip(), " ".join(hyps).rstrip(), " ".join(ops).rstrip()]
    return "\n".join(lines)


def write_scores(
    result: ScoreResult, out_dir: Pathlike, *, name: str | None = None, worst: int = 10
) -> tuple[Path, Path]:
    """Write into ``out_dir``, atomically: ``scores.json`` (totals, worst keys, per-utterance
    counts and alignments), ``result.txt`` (sclite-style alignments) and ``scores.md``
    (a Markdown table and the ``worst`` worst utterances).

    Args:
        name: the test set's name in ``scores.md`` (default: the folder's name).

    Returns:
        The paths of ``scores.json`` and ``result.txt``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, txt_path = out / "scores.json", out / "result.txt"
    with atomic_open(json_path) as f:
        f.write(json.dumps(result.to_dict(worst=worst), indent=2, ensure_ascii=False) + "\n")
    with atomic_open(out / "scores.md") as f:
        f.write(_markdown_report(name or out.resolve().name, result, worst))
    body = [format_summary(result), ""]
    body += [_format_utterance(u) + "\n" for u in result.utterances]
    with atomic_open(txt_path) as f:
        f.write("\n".join(body))
    return json_path, txt_path


def read_text_file(path: Pathlike) -> dict[str, str]:
    """Read ``key -> text`` from a Kaldi-style ``key text...`` file or a JSONL file.

    A file is JSONL when its first non-blank line starts with ``{``; each line is then
    an object ``{"key": ..., "text": ...}``. Blank lines are skipped; a Kaldi line with a
    key only means an empty transcript. Malformed lines and duplicate keys raise
    ``ValueError`` naming ``path:line``.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e}); convert it with iconv -t utf-8") from e
    first = next((line.lstrip() for line in lines if line.strip()), "")
    is_jsonl = first.startswith("{")
    texts: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key, text = _parse_jsonl(path, lineno, line) if is_jsonl else _parse_kaldi(line)
        if key in texts:
            raise ValueError(
                f"{path}:{lineno}: duplicate key {key!r} (first on line {first_line[key]}); "
                "every utterance key must appear once"
            )
        texts[key], first_line[key] = text, lineno
    return texts


def _parse_kaldi(line: str) -> tuple[str, str]:
    parts = line.strip().split(maxsplit=1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _parse_jsonl(path: Path, lineno: int, line: str) -> tuple[str, str]:
    expected = 'each line must be an object like {"key": "utt1", "text": "hello world"}'
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg}); {expected}") from e
    if not isinstance(record, dict):
        raise ValueError(f"{path}:{lineno}: got {type(record).__name__}, {expected}")
    key, text = record.get("key"), record.get("text")
    if not isinstance(key, str) or not key or not isinstance(text, str):
        raise ValueError(
            f"{path}:{lineno}: needs a non-empty string 'key' and a string 'text', "
            f"got key={key!r} text={text!r}; {expected}"
        )
    return key, text
