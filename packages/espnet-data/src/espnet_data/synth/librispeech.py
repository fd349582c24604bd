"""A LibriSpeech-shaped synthetic corpus: LibriSpeech's layout and lengths, no download.

Usage::

    uv run --locked python -m espnet_data.synth.librispeech --out /data/synth-ls --hours 10 --num-workers 8
    uv run --locked python -m espnet_data.synth.librispeech --out /data/synth-ls100 --hours 100 --num-workers 16
    # egs/librispeech/asr/conf/data.yaml: root: /data/synth-ls, download: false
    just asr librispeech create_dataset train_tokenizer

Writes LibriSpeech's own layout, so ``LibriSpeechCorpus`` (and the librispeech recipe)
reads it as it reads the real corpus::

    <out>/LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>-<nnnn>.flac   16 kHz FLAC
    <out>/LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt    <key> <TEXT>
    <out>/LibriSpeech/SPEAKERS.TXT, CHAPTERS.TXT                                  as LibriSpeech's
    <out>/LibriSpeech/synth.json                                                  config + figures

Parts: ``train-clean-100`` (``hours`` of audio), ``dev-clean``, ``dev-other``,
``test-clean``, ``test-other`` (``eval_hours`` each; default ``hours * 0.054``, LibriSpeech's
ratio of 5.4 h to 100 h). Speakers are espeak-ng voice variants with their own rate and
pitch; train, dev and test speakers come from disjoint voice groups
(:func:`~espnet_data.synth.split_voices`), speaker ids are unique over the corpus, and
each speaker reads 1-4 chapters. An utterance joins as many generated sentences as its
drawn length needs (0.15-0.5 s pauses between them): training utterances 2-24.5 s with a
mean of about 12.7 s, dev/test utterances 1.5-35 s with a mean of about 7 s, as in
LibriSpeech. ``-other`` parts are noisier (5-15 dB SNR) than ``-clean`` ones.

Everything follows from ``seed`` and the sizes; an utterance's audio depends on its own
seed only, so the corpus is the same for any ``num_workers``. Utterances are rendered by a
pool of workers; a chapter is complete when its ``.trans.txt`` exists (written last,
atomically), so a rerun renders only the chapters that were not finished.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..parallel import map_unordered
from ..progress import Progress
from . import _effects
from ._espeak import synthesize
from .text import generate_sentence
from .voices import split_voices

__all__ = ["PARTS", "LibriUtterance", "make_librispeech", "plan_librispeech", "render_utterance"]

log = logging.getLogger(__name__)

Pathlike = str | os.PathLike[str]

PARTS: tuple[str, ...] = ("train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other")
EVAL_RATIO = 0.054  # LibriSpeech: 5.4 h per dev/test part next to 100 h of train-clean-100
MAX_SECONDS = 35.0  # LibriSpeech's segmentation keeps utterances under 35 s
#: speakers per hour of audio: train-clean-100 has 251 in 100.6 h, dev-clean 40 in 5.4 h
SPEAKERS_PER_HOUR = {"train": 2.5, "eval": 7.4}
_PAUSE_S = (0.15, 0.5)
_MAX_SENTENCES = 60


def _kind(part: str) -> str:
    return "train" if part.startswith("train") else "eval"


def draw_duration(rng: random.Random, part: str) -> float:
    """A target utterance length in seconds, shaped like LibriSpeech's ``part``.

    Training parts: three quarters around 14 s (LibriSpeech's segments pile up below
    its ~17 s cut), a fifth spread over 2-11 s and a few long ones up to 24.5 s: mean
    ~12.7 s. Dev/test parts: log-normal around 6 s, 1.5-35 s, mean ~7 s.
    """
    if _kind(part) == "train":
        u = rng.random()
        if u < 0.75:
            return min(17.5, max(11.0, rng.gauss(14.0, 1.6)))
        if u < 0.95:
            return rng.uniform(2.0, 11.0)
        return rng.uniform(17.5, 24.5)
    return min(MAX_SECONDS, max(1.5, rng.lognormvariate(math.log(6.0), 0.6)))


@dataclass(frozen=True)
class LibriUtterance:
    """One planned utterance: who reads it, how long it should be, its random stream."""

    key: str  # <speaker>-<chapter>-<nnnn>
    part: str
    voice: str  # espeak voice variant
    rate: int  # words per minute
    pitch: int
    target_s: float
    snr_db: float | None
    seed: int


@dataclass
class _Chapter:
    part: str
    speaker: int
    chapter: int
    utterances: list[LibriUtterance] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return Path(self.part) / str(self.speaker) / str(self.chapter)


@dataclass(frozen=True)
class _Speaker:
    id: int
    part: str
    voice: str
    rate: int
    pitch: int


def plan_librispeech(
    hours: float = 10.0,
    eval_hours: float | None = None,
    seed: int = 0,
    parts: Sequence[str] = PARTS,
) -> list[_Chapter]:
    """Every chapter of the corpus with its utterances (no audio), deterministic in the
    arguments. ``hours`` sizes ``train-clean-100``, ``eval_hours`` each other part."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown parts {unknown}; choose from {list(PARTS)}")
    if hours < 0 or (eval_hours is not None and eval_hours < 0):
        raise ValueError(f"hours={hours} and eval_hours={eval_hours} must be >= 0")
    eval_h = hours * EVAL_RATIO if eval_hours is None else eval_hours
    voices = split_voices(seed, test_groups=8, dev_groups=4)
    sizes = {p: hours if _kind(p) == "train" else eval_h for p in parts}
    counts = {p: max(1, round(h * SPEAKERS_PER_HOUR[_kind(p)])) for p, h in sizes.items() if h > 0}
    ids = random.Random(f"librispeech-{seed}-speaker-ids").sample(range(10, 10000), sum(counts.values()))
    chapter_ids = iter(
        random.Random(f"librispeech-{seed}-chapter-ids").sample(range(100, 400000), 4 * len(ids))
    )
    chapters: list[_Chapter] = []
    taken = 0
    for part, n_speakers in counts.items():
        pool = voices["train" if part.startswith("train") else part.split("-")[0]]
        rng = random.Random(f"librispeech-{seed}-{part}")
        order = sorted(pool)
        rng.shuffle(order)
        speakers = [
            _Speaker(ids[taken + i], part, order[i % len(order)], rng.randint(140, 200),
                     rng.randint(30, 70))
            for i in range(n_speakers)
        ]
        taken += n_speakers
        per_speaker = sizes[part] * 3600 / n_speakers
        other = part.endswith("-other")
        for spk in sorted(speakers, key=lambda s: s.id):
            n_chapters = rng.choice([1, 2, 2, 3, 3, 4]) if per_speaker > 120 else 1
            for c in sorted(next(chapter_ids) for _ in range(n_chapters)):
                chapter = _Chapter(part, spk.id, c)
                budget = per_speaker / n_chapters * rng.uniform(0.85, 1.15)
                total = 0.0
                while total < budget or not chapter.utterances:
                    target = draw_duration(rng, part)
                    n = len(chapter.utterances)
                    snr = rng.uniform(5.0, 15.0) if other else (rng.uniform(20.0, 40.0) if rng.random() < 0.5 else None)
                    chapter.utterances.append(LibriUtterance(
                        key=f"{spk.id}-{c}-{n:04d}", part=part, voice=spk.voice,
                        rate=min(450, max(80, spk.rate + rng.randint(-8, 8))),
                        pitch=min(99, max(0, spk.pitch + rng.randint(-4, 4))),
                        target_s=round(target, 3),
                        snr_db=None if snr is None else round(snr, 1),
                        seed=rng.getrandbits(31),
                    ))
                    total += target
                chapters.append(chapter)
    return chapters


def render_utterance(utt: LibriUtterance, sample_rate: int = 16000) -> tuple[np.ndarray, str]:
    """``(audio, transcript)``: sentences spoken one after another until ``utt.target_s``
    is reached (never past :data:`MAX_SECONDS`), then levelled, noised and clipped."""
    rng = random.Random(utt.seed)
    noise_rng = np.random.default_rng(utt.seed)
    chunks: list[np.ndarray] = []
    words: list[str] = []
    length = 0
    target, limit = int(utt.target_s * sample_rate), int(MAX_SECONDS * sample_rate)
    while length < target and len(words) < _MAX_SENTENCES:
        text, spoken = generate_sentence(rng)
        pcm, rate = synthesize(utt.voice, spoken, rate=utt.rate, pitch=utt.pitch, seed=rng.getrandbits(31))
        x = _effects.resample(pcm.astype(np.float32) / 32768.0, rate, sample_rate)
        x = _effects.trim_silence(x, sample_rate, keep_s=0.05)
        pause = np.zeros(int(rng.uniform(*_PAUSE_S) * sample_rate), np.float32) if chunks else None
        extra = x.size + (pause.size if pause is not None else 0)
        if chunks and length + extra > limit:
            break
        if pause is not None:
            chunks.append(pause)
        chunks.append(x)
        words.append(text)
        length += extra
    lead = np.zeros(int(rng.uniform(0.1, 0.3) * sample_rate), np.float32)
    audio = np.concatenate([lead, *chunks, lead])[:limit]
    audio = _effects.set_peak(audio, rng.uniform(-12.0, -3.0))
    if utt.snr_db is not None:
        audio = _effects.add_noise(audio, noise_rng, utt.snr_db, rng.choice(["white", "pink"]))
    audio = _effects.add_noise_floor(audio, noise_rng, rng.uniform(-70.0, -60.0))
    return np.clip(audio, -1.0, 1.0).astype(np.float32), " ".join(words)


def _render_to_file(context: tuple[Path, int], utt: LibriUtterance) -> tuple[str, str, float]:
    """Render ``utt`` into its FLAC file (atomically); ``(key, transcript, seconds)``."""
    root, sample_rate = context
    speaker, chapter, _ = utt.key.split("-")
    path = root / utt.part / speaker / chapter / f"{utt.key}.flac"
    audio, text = render_utterance(utt, sample_rate)
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, format="FLAC", subtype="PCM_16")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    return utt.key, text, audio.size / sample_rate


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _check_config(root: Path, config: dict[str, Any]) -> None:
    path = root / "synth.json"
    if not path.exists():
        return
    old = json.loads(path.read_text()).get("config")
    if old != config:
        raise ValueError(
            f"{path} was written with {old}, this run asks for {config}: they make different "
            "corpora. Write into an empty folder, or delete the old one first"
        )


def make_librispeech(
    out_dir: Pathlike,
    *,
    hours: float = 10.0,
    eval_hours: float | None = None,
    seed: int = 0,
    parts: Sequence[str] = PARTS,
    num_workers: int = 1,
    sample_rate: int = 16000,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the corpus under ``<out_dir>/LibriSpeech`` (see the module docstring) and
    return what ``synth.json`` records: the config and, per part, speakers, chapters,
    utterances, hours and the mean/min/max utterance length."""
    root = Path(out_dir) / "LibriSpeech"
    config = {"hours": hours, "eval_hours": eval_hours, "seed": seed, "parts": list(parts),
              "sample_rate": sample_rate}
    root.mkdir(parents=True, exist_ok=True)
    _check_config(root, config)
    _atomic_text(root / "synth.json", json.dumps({"config": config}, indent=2) + "\n")
    chapters = plan_librispeech(hours, eval_hours, seed, parts)
    todo = [c for c in chapters if not (root / c.folder / f"{c.speaker}-{c.chapter}.trans.txt").exists()]
    for chapter in todo:
        (root / chapter.folder).mkdir(parents=True, exist_ok=True)
        for stale in (root / chapter.folder).glob(".*.tmp"):
            stale.unlink()
    items = [(c, u) for c in todo for u in c.utterances]
    log.info("%s: %d chapters, %d to render (%d utterances), %d workers",
             root, len(chapters), len(todo), len(items), num_workers)
    left = {id(c): len(c.utterances) for c in todo}
    lines: dict[int, dict[str, str]] = {id(c): {} for c in todo}
    bar = Progress(len(items), desc="synth librispeech") if progress and items else None
    results = map_unordered(_render_to_file, [u for _, u in items], context=(root, sample_rate),
                            num_workers=num_workers)
    for i, (key, text, seconds) in results:
        chapter = items[i][0]
        lines[id(chapter)][key] = text
        if bar is not None:
            bar.update(1, seconds)
        left[id(chapter)] -= 1
        if not left[id(chapter)]:
            texts = lines.pop(id(chapter))
            body = "".join(f"{u.key} {texts[u.key]}\n" for u in chapter.utterances)
            _atomic_text(root / chapter.folder / f"{chapter.speaker}-{chapter.chapter}.trans.txt", body)
    if bar is not None:
        bar.close()
    seconds = {
        u.key: sf.info(str(root / c.folder / f"{u.key}.flac")).duration
        for c in chapters for u in c.utterances
    }
    summary = {"config": config, "parts": _describe(chapters, seconds)}
    _write_tables(root, chapters, seconds)
    _atomic_text(root / "synth.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _describe(chapters: Sequence[_Chapter], seconds: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Per part: speakers, chapters, utterances, hours, mean/min/max utterance seconds."""
    out: dict[str, dict[str, Any]] = {}
    for part in dict.fromkeys(c.part for c in chapters):
        mine = [c for c in chapters if c.part == part]
        d = [seconds[u.key] for c in mine for u in c.utterances]
        out[part] = {
            "speakers": len({c.speaker for c in mine}), "chapters": len(mine), "utterances": len(d),
            "hours": round(sum(d) / 3600, 4), "mean_s": round(sum(d) / len(d), 2),
            "min_s": round(min(d), 2), "max_s": round(max(d), 2),
        }
    return out


def _write_tables(root: Path, chapters: Sequence[_Chapter], seconds: dict[str, float]) -> None:
    """``SPEAKERS.TXT`` and ``CHAPTERS.TXT`` in LibriSpeech's ``|``-separated format."""
    minutes: dict[int, float] = {}
    rows = ["; ID      |READER|MINUTES| SUBSET           | PROJ.|BOOK ID| CH. TITLE | PROJECT TITLE"]
    for c in chapters:
        length = sum(seconds[u.key] for u in c.utterances) / 60
        minutes[c.speaker] = minutes.get(c.speaker, 0.0) + length
        rows.append(f"{c.chapter:<7d} | {c.speaker:<4d} | {length:5.2f} | {c.part:<16} | 0 | 0 "
                    f"| synthetic chapter {c.chapter} | espeak-ng census sentences")
    _atomic_text(root / "CHAPTERS.TXT", "\n".join(rows) + "\n")
    lines = [";ID  |SEX| SUBSET           |MINUTES| NAME"]
    for spk, (part, voice) in sorted({c.speaker: (c.part, c.utterances[0].voice) for c in chapters}.items()):
        sex = "F" if voice.startswith("f") else "M"  # espeak's f1..f5; the rest are not marked
        lines.append(f"{spk:<4d} | {sex} | {part:<16} | {minutes[spk]:6.2f} | espeak-ng {voice}")
    _atomic_text(root / "SPEAKERS.TXT", "\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m espnet_data.synth.librispeech",
        description="Write a LibriSpeech-shaped synthetic corpus (espeak-ng speech in "
        "LibriSpeech's layout and utterance lengths); point the librispeech recipe's "
        "root: at --out.",
    )
    parser.add_argument("--out", required=True, help="folder that will hold LibriSpeech/")
    parser.add_argument("--hours", type=float, default=10.0, help="hours of train-clean-100 (default 10)")
    parser.add_argument("--eval-hours", type=float, default=None,
                        help=f"hours of each dev/test part (default: hours x {EVAL_RATIO})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--num-workers", type=int, default=os.cpu_count() or 1,
                        help="processes rendering utterances (default: every core)")
    parser.add_argument("--sample-rate", type=int, default=16000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    summary = make_librispeech(
        args.out, hours=args.hours, eval_hours=args.eval_hours, seed=args.seed, parts=args.parts,
        num_workers=args.num_workers, sample_rate=args.sample_rate,
    )
    for part, figures in summary["parts"].items():
        print(f"{part}: {json.dumps(figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
