"""Score hypothesis transcripts against references: WER, CER and sentence error rate.

Usage:

    # Kaldi-style "key text..." files (or JSONL lines {"key": ..., "text": ...})
    espnet-score exp/decode/test/ref.txt exp/decode/test/hyp.txt
    espnet-score --ref data/test/text --hyp exp/decode/test/hyp.txt     # the same, named

    # also write scores.json (with alignments), result.txt and scores.md into a folder
    espnet-score ref.txt hyp.txt --out exp/decode/test/score --worst 20

    # case- and punctuation-insensitive scoring (off by default)
    espnet-score --ref ref.jsonl --hyp hyp.jsonl --uppercase --strip_punctuation

    # references without hypothesis (failed or undecoded utterances) as deletions
    espnet-score ref.txt hyp.txt --allow_incomplete

The exit status is 0 on success and 2 when an input file is missing or malformed, or
when references lack a hypothesis and ``--allow_incomplete`` is not given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from espnet_infer.scoring import (
    IncompleteHypotheses,
    format_summary,
    read_text_file,
    score_texts,
    worst_utterances,
    write_scores,
)

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="espnet-score",
        description="Compute WER/CER of hypothesis transcripts against references. Input files "
                    "hold 'key text...' lines or JSONL objects with 'key' and 'text'.",
        epilog="usage examples:" + __doc__.split("Usage:")[1].split("The exit status")[0].rstrip()
        if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("ref_file", nargs="?", metavar="REF", help="reference transcripts")
    parser.add_argument("hyp_file", nargs="?", metavar="HYP", help="hypothesis transcripts")
    parser.add_argument("--ref", default=None, help="reference transcripts (Kaldi text or JSONL)")
    parser.add_argument("--hyp", default=None, help="hypothesis transcripts (Kaldi text or JSONL)")
    parser.add_argument(
        "--out", default=None,
        help="folder for scores.json, result.txt and scores.md (not written if omitted)",
    )
    parser.add_argument(
        "--worst", type=int, default=10, help="worst utterances listed (default: 10)"
    )
    parser.add_argument(
        "--uppercase", action="store_true", help="upper-case references and hypotheses first"
    )
    parser.add_argument(
        "--strip_punctuation", "--strip-punctuation",
        action="store_true",
        help="replace punctuation by spaces (word-internal apostrophes are kept)",
    )
    parser.add_argument(
        "--allow_incomplete", "--allow-incomplete",
        action="store_true",
        help="score references without hypothesis as deletions (flagged INCOMPLETE) "
        "instead of refusing the set",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``espnet-score``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    ref = _one_of(parser, "REF", args.ref_file, args.ref, "--ref")
    hyp = _one_of(parser, "HYP", args.hyp_file, args.hyp, "--hyp")
    try:
        refs = read_text_file(ref)
        hyps = read_text_file(hyp)
        result = score_texts(
            refs, hyps, uppercase=args.uppercase, strip_punctuation=args.strip_punctuation,
            allow_incomplete=args.allow_incomplete,
        )
    except IncompleteHypotheses as e:
        print(f"espnet-score: error: {hyp} against {ref}: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        print(f"espnet-score: error: {e}", file=sys.stderr)
        return 2
    print(format_summary(result))
    worst = worst_utterances(result, args.worst)
    if worst:
        print("worst utterances: " + ", ".join(f"{u.key} ({u.words.errors})" for u in worst))
    if args.out is not None:
        json_path, txt_path = write_scores(result, args.out, worst=args.worst)
        print(f"wrote {json_path}, {txt_path} and {json_path.with_name('scores.md')}")
    return 0


def _one_of(
    parser: argparse.ArgumentParser, name: str, positional: str | None, option: str | None,
    flag: str,
) -> str:
    if positional is not None and option is not None:
        parser.error(f"give {name} once: either as an argument or with {flag}")
    value = positional if positional is not None else option
    if value is None:
        parser.error(f"missing {name}: espnet-score REF HYP (or {flag} FILE)")
    return value


if __name__ == "__main__":
    sys.exit(main())
