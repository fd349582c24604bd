"""Score hypothesis transcripts against references: WER, CER and sentence error rate.

Usage:

    # Kaldi-style "key text..." files (or JSONL lines {"key": ..., "text": ...})
    espnet-score --ref data/test/text --hyp exp/decode/test/hyp.txt

    # also write scores.json and a per-utterance result.txt into a folder
    espnet-score --ref data/test/text --hyp exp/decode/test/hyp.txt --out exp/decode/test/score

    # case- and punctuation-insensitive scoring (off by default)
    espnet-score --ref ref.jsonl --hyp hyp.jsonl --uppercase --strip-punctuation

The exit status is 0 on success and 2 when an input file is missing or malformed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from espnet_infer.scoring import format_summary, read_text_file, score_texts, write_scores

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="espnet-score",
        description="Compute WER/CER of hypothesis transcripts against references.",
        epilog="Input files hold 'key text...' lines or JSONL objects with 'key' and 'text'.",
    )
    parser.add_argument("--ref", required=True, help="reference transcripts (Kaldi text or JSONL)")
    parser.add_argument("--hyp", required=True, help="hypothesis transcripts (Kaldi text or JSONL)")
    parser.add_argument(
        "--out", default=None, help="folder for scores.json and result.txt (not written if omitted)"
    )
    parser.add_argument(
        "--uppercase", action="store_true", help="upper-case references and hypotheses first"
    )
    parser.add_argument(
        "--strip-punctuation",
        action="store_true",
        help="replace punctuation by spaces (word-internal apostrophes are kept)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``espnet-score``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        refs = read_text_file(args.ref)
        hyps = read_text_file(args.hyp)
        result = score_texts(
            refs, hyps, uppercase=args.uppercase, strip_punctuation=args.strip_punctuation
        )
    except (OSError, ValueError) as e:
        print(f"espnet-score: error: {e}", file=sys.stderr)
        return 2
    print(format_summary(result))
    if args.out is not None:
        json_path, txt_path = write_scores(result, args.out)
        print(f"wrote {json_path} and {txt_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
