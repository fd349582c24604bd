"""Write rendered utterances to a folder: ``<key>.flac``, ``transcripts.txt``, manifest.

Layout of ``out_dir``::

    <key>.flac          16-bit FLAC, mono
    transcripts.txt     "<key> <TRANSCRIPT>" per line, sorted by key (Kaldi ``text``)
    manifest.jsonl      one JSON object per utterance: every SynthUtterance field
                        plus "path" (file name), "sample_rate", "num_samples", "duration"

Every file is written to a temporary name in ``out_dir`` and renamed, so an
interrupted run never leaves half a file; audio files that already exist are
kept (a rerun resumes), the text files are rewritten.

Usage::

    from espnet_data.synth import make_tiny_corpus
    flacs = make_tiny_corpus("/tmp/tiny", num_utterances=6, seed=0)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import soundfile as sf

from .plan import SynthUtterance, plan_corpus
from .render import render
from .voices import available_voices

__all__ = ["make_tiny_corpus", "write_corpus"]

Pathlike = str | os.PathLike[str]


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_corpus(
    out_dir: Pathlike, utterances: Iterable[SynthUtterance], sample_rate: int = 16000
) -> list[Path]:
    """Render ``utterances`` into ``out_dir`` (layout in the module docstring).

    Returns the FLAC paths in the order given.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    rows: list[dict[str, object]] = []
    for utt in utterances:
        path = out / f"{utt.key}.flac"
        if path.exists():
            info = sf.info(str(path))
            num_samples, rate = info.frames, info.samplerate
        else:
            audio = render(utt, sample_rate)
            tmp = out / f".{utt.key}.flac.tmp"
            sf.write(str(tmp), audio, sample_rate, format="FLAC", subtype="PCM_16")
            os.replace(tmp, path)
            num_samples, rate = audio.size, sample_rate
        paths.append(path)
        row: dict[str, object] = dict(utt.to_dict())
        row.update(
            path=path.name,
            sample_rate=rate,
            num_samples=num_samples,
            duration=round(num_samples / rate, 4),
        )
        rows.append(row)
    rows.sort(key=lambda r: str(r["key"]))
    _atomic_text(out / "transcripts.txt", "".join(f"{r['key']} {r['text']}\n" for r in rows))
    _atomic_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return paths


def make_tiny_corpus(
    out_dir: Pathlike, num_utterances: int = 6, seed: int = 0, sample_rate: int = 16000
) -> list[Path]:
    """A tiny spoken corpus for tests (about 0.1 s of CPU for 6 utterances).

    Utterances come from split ``"tiny"`` over all default voices; returns the
    FLAC paths sorted by key.
    """
    utts = plan_corpus("tiny", num_utterances, seed=seed, voices=available_voices())
    return sorted(write_corpus(out_dir, utts, sample_rate))
