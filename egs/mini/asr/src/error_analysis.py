"""Which words a recognizer gets wrong: substitution pairs, deletions and insertions, and
whose speech it gets wrong: WER by speaker.

``measure`` gives one number per test set (WER/CER) and the worst utterances; this module
says *what* the errors are, which is where a recipe goes next (a tokenizer that splits a
frequent word badly, a homophone pair, words the training text never had). The counts
come from jiwer's word alignment (``jiwer.process_words`` + ``collect_error_counts``).

Usage (a recipe stage runs it; by hand)::

    python -c "
    import sys; sys.path.insert(0, 'egs/mini/asr/src')
    from error_analysis import analyze_set
    print(analyze_set('egs/mini/asr/exp/infer/test', top_n=10)['substitutions'][:3])"

The speakers come from the test split's ``index.jsonl`` (``create_dataset`` writes each
key's ``speaker``); on the mini corpus a speaker is an espeak-ng voice variant, and the
table shows at once when one unseen voice holds most of the errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
from espnet_data import read_index
from espnet_data.atomic import atomic_open, write_json
from espnet_infer.scoring import read_text_file

Pathlike = str | os.PathLike[str]


@dataclass
class ErrorAnalysisConfig:
    """``conf/analysis.yaml``: the ``analyze_errors`` stage.

    Args:
        inference_dir: ``output_dir`` of inference (``<set>/ref.txt`` and ``<set>/hyp.txt``).
        test_sets: sets to analyse (default: every set with a ``hyp.txt``).
        top_n: rows kept in each table.
        splits: set name -> its split folder (``index.jsonl`` gives each key's speaker)
            for the WER-by-speaker table; a set not named here gets none.
    """

    inference_dir: str = "exp/infer"
    test_sets: list[str] | None = None
    top_n: int = 20
    splits: dict[str, str] | None = None


def read_speakers(split_dir: Pathlike) -> dict[str, str]:
    """``key -> speaker`` from a split folder's ``index.jsonl`` ("" where a row has none)."""
    speakers = {}
    for number, row in enumerate(read_index(split_dir), 1):
        if "key" not in row:
            raise ValueError(
                f"{Path(split_dir) / 'index.jsonl'}: row {number} has no key; write the split "
                "again with create_dataset"
            )
        speakers[str(row["key"])] = str(row.get("speaker") or "")
    return speakers


def by_speaker(keys: Sequence[str], out: Any, speakers: Mapping[str, str]) -> list[dict[str, Any]]:
    """WER of each speaker's utterances (worst first), from ``out``, the word alignment of
    ``keys`` (``jiwer.process_words``); keys without a speaker count as ``""``."""
    groups: dict[str, list[int]] = {}  # speaker -> [utterances, ref words, errors]
    for key, ref, chunks in zip(keys, out.references, out.alignments, strict=True):
        errors = sum(max(c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx)
                     for c in chunks if c.type != "equal")
        row = groups.setdefault(speakers.get(key, ""), [0, 0, 0])
        row[0] += 1
        row[1] += len(ref)
        row[2] += errors
    rows = [{"speaker": speaker, "utterances": n, "ref_words": words, "errors": errors,
             "wer": round(100 * errors / words, 2)}
            for speaker, (n, words, errors) in groups.items()]
    return sorted(rows, key=lambda r: (-r["wer"], r["speaker"]))


def _top(counts: Mapping[Any, int], n: int) -> list[tuple[Any, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:n]


def analyze_texts(
    refs: Mapping[str, str],
    hyps: Mapping[str, str],
    *,
    top_n: int = 20,
    speakers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Error tables for ``hyps`` against ``refs`` (both ``key -> text``), and with
    ``speakers`` (``key -> speaker``) the WER of each speaker (``by_speaker``).

    A key missing from ``hyps`` counts as an empty hypothesis (every word deleted); an
    utterance whose reference is empty cannot be aligned by word and is skipped and
    counted under ``skipped_empty_reference`` with its key.
    """
    keys = sorted(k for k in refs if refs[k].strip())
    skipped = sorted(k for k in refs if not refs[k].strip())
    if not keys:
        raise ValueError("no non-empty reference to align; check ref.txt")
    out = jiwer.process_words([refs[k] for k in keys], [hyps.get(k, "") for k in keys])
    subs, ins, dels = jiwer.collect_error_counts(out)
    ref_words = sum(len(r) for r in out.references)
    return {
        "num_utterances": len(keys),
        "num_ref_words": ref_words,
        "substitutions_total": out.substitutions,
        "deletions_total": out.deletions,
        "insertions_total": out.insertions,
        "wer": round(100 * out.wer, 2),
        "substitutions": [{"ref": r, "hyp": h, "count": c} for (r, h), c in _top(subs, top_n)],
        "deletions": [{"word": w, "count": c} for w, c in _top(dels, top_n)],
        "insertions": [{"word": w, "count": c} for w, c in _top(ins, top_n)],
        "missing_hypotheses": sorted(k for k in keys if k not in hyps),
        "skipped_empty_reference": skipped,
        **({"by_speaker": by_speaker(keys, out, speakers)} if speakers is not None else {}),
    }


def format_report(name: str, report: Mapping[str, Any]) -> str:
    """A plain-text view of :func:`analyze_texts`' result."""
    lines = [
        f"{name}: {report['num_utterances']} utterances, {report['num_ref_words']} reference "
        f"words, WER {report['wer']:.2f}% = {report['substitutions_total']} sub + "
        f"{report['deletions_total']} del + {report['insertions_total']} ins",
        "",
        f"{'count':>6}  substitution (ref -> hyp)",
    ]
    lines += [f"{r['count']:>6}  {r['ref']} -> {r['hyp']}" for r in report["substitutions"]]
    lines += ["", f"{'count':>6}  deleted word"]
    lines += [f"{r['count']:>6}  {r['word']}" for r in report["deletions"]]
    lines += ["", f"{'count':>6}  inserted word"]
    lines += [f"{r['count']:>6}  {r['word']}" for r in report["insertions"]]
    if report.get("by_speaker"):
        lines += ["", f"{'WER %':>7} {'errors':>7} {'words':>6}  speaker (worst first)"]
        lines += [f"{r['wer']:>7.2f} {r['errors']:>7} {r['ref_words']:>6}  {r['speaker'] or '(none)'}"
                  for r in report["by_speaker"]]
    if report["skipped_empty_reference"]:
        lines += ["", f"skipped (empty reference): {', '.join(report['skipped_empty_reference'])}"]
    return "\n".join(lines) + "\n"


def analyze_set(
    set_dir: Pathlike, *, top_n: int = 20, split_dir: Pathlike | None = None
) -> dict[str, Any]:
    """Analyse ``<set_dir>/ref.txt`` against ``hyp.txt``; write ``errors.json`` and
    ``errors.txt``. ``split_dir``: the set's split folder, for the WER-by-speaker table."""
    set_dir = Path(set_dir)
    for name in ("ref.txt", "hyp.txt"):
        if not (set_dir / name).is_file():
            raise FileNotFoundError(f"{set_dir / name} not found: run the infer stage first")
    speakers = None if split_dir is None else read_speakers(split_dir)
    report = analyze_texts(
        read_text_file(set_dir / "ref.txt"), read_text_file(set_dir / "hyp.txt"), top_n=top_n,
        speakers=speakers,
    )
    write_json(set_dir / "errors.json", report)
    with atomic_open(set_dir / "errors.txt") as f:
        f.write(format_report(set_dir.name, report))
    return report
