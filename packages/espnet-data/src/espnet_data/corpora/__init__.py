"""Corpus readers: each turns a corpus on disk (or made on the fly) into entries.

The data adapters (``JsonlManifestCorpus``, ``HFDatasetCorpus``, ``LhotseCorpus``) read
other toolkits' formats; only ``HFDatasetCorpus`` needs an extra (``espnet-data[hf]``),
and it imports ``datasets`` when it first reads a dataset, not here.
"""

from .an4 import AN4Corpus
from .hard import HardCorpus
from .hf import HFDatasetCorpus
from .jsonl import JsonlManifestCorpus
from .kaldi import KaldiDirCorpus
from .lhotse import LhotseCorpus
from .librispeech import LibriSpeechCorpus
from .ljspeech import LJSpeechCorpus
from .mini import MiniCorpus
from .mini_tts import MiniTTSCorpus

__all__ = [
    "AN4Corpus",
    "HardCorpus",
    "HFDatasetCorpus",
    "JsonlManifestCorpus",
    "KaldiDirCorpus",
    "LhotseCorpus",
    "LJSpeechCorpus",
    "LibriSpeechCorpus",
    "MiniCorpus",
    "MiniTTSCorpus",
]
