"""Corpus readers: each turns a corpus on disk (or made on the fly) into entries."""

from .mini import MiniCorpus

__all__ = ["MiniCorpus"]
