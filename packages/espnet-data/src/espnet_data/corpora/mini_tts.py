"""The embedded TTS corpus ``mini_tts``: one espeak-ng voice saying the mini corpus's sentences.

An LJSpeech-shaped corpus (one speaker, clean, a few hours at most) made on the user's
machine: every utterance is a plan of :func:`espnet_data.synth.plan.plan_single_voice`
(one voice at one rate and pitch, no speed change, no noise), rendered when the shard
writer loads it, so ``create_dataset`` renders it in parallel like ``MiniCorpus``.

The sentences come from the generator of the mini ASR corpus (names, spelled words,
digits, dates, addresses, commands), so the mini ASR pack knows every word and can
score synthesised speech. The default voice, ``m3``, is one of the voices that pack
was trained on (``split_voices(0)["train"]``), at a rate and pitch inside its training
ranges.

Each entry's ``text`` is what the voice says, written for a speaker and for the
phonemizer (``"my name is john smith."``, ``"C, H, A."``: punctuation for pauses, a
capital letter and a comma for a spelled letter); its ``transcript`` (stored in the
index rows beside ``text``) is the mini corpus's transcript (``"MY NAME IS JOHN
SMITH"``, ``"C H A"``), the reference an ASR model's output is scored against.

The ``train`` split leaves out every sentence (transcript) of the other splits, so
the dev and test sentences are never heard in training (the generator repeats short
sentences, zip codes or commands, often); more sentences are drawn in their place.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from ..corpus import Entry, check_split
from ..synth.plan import SynthUtterance, plan_single_voice
from ..synth.render import render
from ..synth.voices import check_voice

__all__ = ["MiniTTSCorpus"]


@dataclass
class MiniTTSCorpus:
    """Sizes are utterance counts (about 2.3 s each: 3000 ≈ 2 hours).

    Args:
        utterances: number of utterances per split.
        seed: the sentences and their rendering follow from it.
        voice: the espeak-ng voice variant (``espnet_data.synth.available_voices()``).
        rate: speaking rate in words per minute (80-450).
        pitch: espeak's pitch, 0-99 (50 is the voice's own).
        sample_rate: rate the audio is rendered at.
    """

    utterances: dict[str, int] = field(
        default_factory=lambda: {"train": 2800, "dev": 100, "test": 100}
    )
    seed: int = 0
    voice: str = "m3"
    rate: int = 165
    pitch: int = 50
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        check_voice(self.voice)
        bad = {split: n for split, n in self.utterances.items() if n < 0}
        if bad:
            raise ValueError(f"utterance counts must be >= 0, got {bad}")

    def splits(self) -> list[str]:
        return list(self.utterances)

    def _plan(self, split: str, exclude: Collection[str] = ()) -> list[SynthUtterance]:
        return plan_single_voice(
            split, self.utterances[split], self.seed, self.voice,
            rate=self.rate, pitch=self.pitch, exclude=exclude,
        )

    def entries(self, split: str) -> list[Entry]:
        check_split(self, split)
        held_out: set[str] = set()
        if split == "train":  # no sentence of a held-out split is heard in training
            for other in self.splits():
                if other != "train":
                    held_out.update(u.text for u in self._plan(other))
        plan = self._plan(split, held_out)
        return [
            Entry(key=u.key, text=u.spoken, speaker=u.speaker, source=u, extra={"transcript": u.text})
            for u in plan
        ]

    def load_audio(self, entry: Entry) -> tuple[np.ndarray, int]:
        return render(entry.source, self.sample_rate), self.sample_rate
