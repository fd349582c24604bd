"""Corpus readers: each turns a corpus on disk (or made on the fly) into entries."""

from .an4 import AN4Corpus
from .kaldi import KaldiDirCorpus
from .librispeech import LibriSpeechCorpus
from .mini import MiniCorpus

__all__ = ["AN4Corpus", "KaldiDirCorpus", "LibriSpeechCorpus", "MiniCorpus"]
