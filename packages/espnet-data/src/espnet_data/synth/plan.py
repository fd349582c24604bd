"""Corpus plans: what each synthetic utterance says, with which voice and settings.

A plan is cheap (no audio) and deterministic: utterance ``i`` of a split is drawn
from ``random.Random(f"{seed}-{split}-{i}")`` alone, so any slice of a plan can be
re-created or rendered independently (e.g. one shard per process).  Voices are
assigned round-robin over a seed-shuffled order of voice groups, so small
corpora still cover many voices; each group gets the same share of utterances
whatever its number of variants (robosoft has 8, most voices 1).

Usage::

    from espnet_data.synth import plan_corpus, split_voices
    voices = split_voices(seed=0, test_groups=8, dev_groups=4)
    train = plan_corpus("train", 10_000, seed=0, voices=voices["train"])
    train[0].key, train[0].text      # 'mini-train-<voice>-000000', 'MY NAME IS ...'
    tts = plan_single_voice("train", 100, seed=0, voice="m3")   # one voice, clean

The text comes from the census sentence generator unless ``plan_corpus`` gets a
``sentences`` source: any callable ``(split, index, rng) -> (transcript, spoken)``, e.g.
:class:`~espnet_data.synth.books.BookSentences` (sentences read from books).
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .text import generate_sentence
from .voices import check_voice, voice_group

__all__ = ["SPEEDS", "SentenceSource", "SynthUtterance", "plan_corpus", "plan_single_voice"]

#: Speed perturbation factors, drawn uniformly per utterance.
SPEEDS: tuple[float, ...] = (0.9, 1.0, 1.1)
RATE_RANGE = (140, 200)  # words per minute (espeak's default is 175)
PITCH_RANGE = (30, 70)  # espeak pitch parameter, 50 = the voice's own pitch
SNR_RANGE = (15.0, 30.0)  # dB, for the half of the utterances that get noise
NOISY_FRACTION = 0.5

#: ``(split, index, rng) -> (transcript, spoken)``: the text of utterance ``index``.
SentenceSource = Callable[[str, int, random.Random], tuple[str, str]]


@dataclass(frozen=True)
class SynthUtterance:
    """One planned utterance; ``render(utt)`` turns it into audio."""

    key: str
    text: str  # transcript: UPPER CASE words, no punctuation
    speaker: str  # espeak voice variant, e.g. "m3"
    voice_group: str  # audibly-distinct voice the variant belongs to
    spoken: str  # exact text sent to espeak
    rate: int  # words per minute
    pitch: int  # espeak pitch 0..99
    speed: float  # speed perturbation factor
    snr_db: float | None  # additive noise SNR, None = clean (noise floor only)
    seed: int  # drives espeak's randomness and all rendering randomness

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> SynthUtterance:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def plan_utterance(
    split: str,
    index: int,
    seed: int,
    voice: str,
    sentences: SentenceSource | None = None,
    prefix: str = "mini",
) -> SynthUtterance:
    """Utterance ``index`` of ``split``, spoken by ``voice`` (no audio is made)."""
    rng = random.Random(f"{seed}-{split}-{index}")
    if sentences is None:
        text, spoken = generate_sentence(rng)
    else:
        text, spoken = sentences(split, index, rng)
    noisy = rng.random() < NOISY_FRACTION
    return SynthUtterance(
        key=f"{prefix}-{split}-{_slug(voice)}-{index:06d}",
        text=text,
        speaker=voice,
        voice_group=voice_group(voice),
        spoken=spoken,
        rate=rng.randint(*RATE_RANGE),
        pitch=rng.randint(*PITCH_RANGE),
        speed=rng.choice(SPEEDS),
        snr_db=round(rng.uniform(*SNR_RANGE), 1) if noisy else None,
        seed=rng.getrandbits(31),
    )


def plan_corpus(
    split: str,
    num_utterances: int,
    seed: int,
    voices: Sequence[str],
    sentences: SentenceSource | None = None,
    prefix: str = "mini",
) -> list[SynthUtterance]:
    """Plan ``num_utterances`` utterances of ``split`` spoken by ``voices``.

    ``split`` is free text (``"train"``, ``"dev"``, ``"test"``...) and becomes part of
    every key and of every utterance's random stream. ``sentences`` replaces the census
    sentence generator (see the module docstring); ``prefix`` starts every key.
    """
    if num_utterances < 0:
        raise ValueError(f"num_utterances={num_utterances} must be >= 0")
    if not voices:
        raise ValueError(
            "plan_corpus got an empty voice list; pass e.g. "
            "split_voices(seed)['train'] or available_voices()."
        )
    for name, value in (("split", split), ("prefix", prefix)):
        if not re.fullmatch(r"[A-Za-z0-9_]+", value):
            raise ValueError(
                f"{name}={value!r} must be letters, digits or '_' (it is part of keys)"
            )
    groups: dict[str, list[str]] = {}
    for name in sorted(set(voices)):
        groups.setdefault(voice_group(check_voice(name)), []).append(name)
    order = sorted(groups)
    random.Random(f"plan_corpus-{seed}-{split}").shuffle(order)
    plan = []
    for i in range(num_utterances):
        # Round-robin over voice GROUPS (robosoft has 8 variants, most voices 1), then a
        # variant of that group picked from the utterance's own stream.
        variants = groups[order[i % len(order)]]
        pick = random.Random(f"{seed}-{split}-{i}-voice").randrange(len(variants))
        plan.append(plan_utterance(split, i, seed, variants[pick], sentences, prefix))
    return plan


def plan_single_voice(
    split: str,
    num_utterances: int,
    seed: int,
    voice: str,
    *,
    rate: int = 165,
    pitch: int = 50,
    prefix: str = "minitts",
    exclude: Collection[str] = (),
) -> list[SynthUtterance]:
    """A single-speaker plan, for a TTS corpus: ``voice`` at one ``rate`` and ``pitch``,
    no speed change and no added noise (``render`` still trims the silences, sets a
    peak level and adds its -70..-60 dBFS noise floor).

    Sentences come from the generator of :func:`plan_corpus`, drawn from streams of
    their own (``"<prefix>-<seed>-<split>-<i>"``), so they are not the sentences
    ``plan_corpus`` gives the same index. Keys are ``<prefix>-<split>-<i:06d>``.
    Sentences whose transcript is in ``exclude`` (e.g. the test split's, when planning
    the training split) are skipped and more are drawn; their indices are not used.
    """
    if num_utterances < 0:
        raise ValueError(f"num_utterances={num_utterances} must be >= 0")
    for name, value in (("split", split), ("prefix", prefix)):
        if not re.fullmatch(r"[A-Za-z0-9_]+", value):
            raise ValueError(f"{name}={value!r} must be letters, digits or '_' (it is part of keys)")
    group = voice_group(check_voice(voice))
    if not 80 <= rate <= 450 or not 0 <= pitch <= 99:
        raise ValueError(f"rate={rate} must be in 80..450 words/min and pitch={pitch} in 0..99")
    excluded = set(exclude)
    plan: list[SynthUtterance] = []
    limit = 20 * num_utterances + 1000  # the generator has millions of sentences
    for i in itertools.count():
        if len(plan) == num_utterances:
            break
        if i == limit:
            raise ValueError(
                f"only {len(plan)} of {num_utterances} sentences in {limit} draws were not "
                "excluded; exclude fewer sentences"
            )
        rng = random.Random(f"{prefix}-{seed}-{split}-{i}")
        text, spoken = generate_sentence(rng)
        if text in excluded:
            continue
        plan.append(
            SynthUtterance(
                key=f"{prefix}-{split}-{i:06d}", text=text, speaker=voice, voice_group=group,
                spoken=spoken, rate=rate, pitch=pitch, speed=1.0, snr_db=None,
                seed=rng.getrandbits(31),
            )
        )
    return plan
