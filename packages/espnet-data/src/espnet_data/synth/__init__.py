"""An embedded AN4-like spoken corpus generated with espeak-ng.

Usage::

    from espnet_data.synth import plan_corpus, render, split_voices, make_tiny_corpus
    voices = split_voices(seed=0, test_groups=8, dev_groups=4)
    utts = plan_corpus("test", 100, seed=0, voices=voices["test"])
    audio = render(utts[0])                 # float32 mono 16 kHz
    make_tiny_corpus("/tmp/tiny")           # 6 FLACs + transcripts.txt + manifest.jsonl
"""

from ._espeak import EspeakError
from .corpus import make_tiny_corpus, write_corpus
from .plan import SynthUtterance, plan_corpus
from .render import render
from .text import generate_sentence, vocabulary
from .voices import UnknownVoiceError, available_voices, split_voices, voice_group

__all__ = [
    "EspeakError",
    "SynthUtterance",
    "UnknownVoiceError",
    "available_voices",
    "generate_sentence",
    "make_tiny_corpus",
    "plan_corpus",
    "render",
    "split_voices",
    "voice_group",
    "vocabulary",
    "write_corpus",
]
