"""The embedded corpus ``mini``: AN4-like census speech synthesised with espeak-ng.

Nothing is downloaded: each entry is a synthesis plan (text, voice, rate, pitch, speed,
noise) and its audio is rendered when the shard writer loads it, so shards can be
written by parallel processes. Test and dev voices are voice groups never heard in
training (a speaker-independent test set).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..corpus import Entry, check_split
from ..synth import plan_corpus, render, split_voices


@dataclass
class MiniCorpus:
    """Sizes are utterance counts (about 2.5 s each: 1440 ≈ 1 hour).

    Args:
        utterances: number of utterances per split.
        seed: everything (texts, voices, jitter, noise) follows from it.
        test_groups: voice groups held out for the test split.
        dev_groups: voice groups held out for the dev split.
        sample_rate: rate the audio is rendered at.
    """

    utterances: dict[str, int] = field(
        default_factory=lambda: {"train": 1440, "dev": 120, "test": 120}
    )
    seed: int = 0
    test_groups: int = 8
    dev_groups: int = 4
    sample_rate: int = 16000

    def splits(self) -> list[str]:
        return list(self.utterances)

    def voices(self) -> dict[str, list[str]]:
        return split_voices(self.seed, test_groups=self.test_groups, dev_groups=self.dev_groups)

    def entries(self, split: str) -> list[Entry]:
        check_split(self, split)
        voices = self.voices()
        if split not in voices:
            raise ValueError(f"mini has voices for {sorted(voices)}, not for split {split!r}")
        plan = plan_corpus(split, self.utterances[split], self.seed, voices[split])
        return [Entry(key=u.key, text=u.text, speaker=u.speaker, source=u) for u in plan]

    def load_audio(self, entry: Entry) -> tuple[np.ndarray, int]:
        return render(entry.source, self.sample_rate), self.sample_rate
