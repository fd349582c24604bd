"""Text-to-speech data: an espeak-ng phoneme front-end, phoneme token lists, the TTS
view of a split's shards, and the per-token durations file written beside them.

Usage::

    from espnet_data.tts import PhonemeTokenizer, Phonemizer, read_tts_samples
    tok = PhonemeTokenizer.build(read_texts("data/train").values(), Phonemizer())
    for sample in read_tts_samples("data/test"): ...

The modules: :mod:`.text` (character set, clauses, :func:`chunk_text`), :mod:`.phonemes`
(:class:`Phonemizer`), :mod:`.tokens` (:class:`PhonemeTokenizer`), :mod:`.samples`
(:class:`TTSSample`, :func:`read_tts_samples`), :mod:`.durations` (``durations.jsonl``).
"""

from .durations import read_durations, write_durations
from .phonemes import Phonemizer
from .samples import TTSSample, read_texts, read_transcripts, read_tts_samples
from .text import chunk_text
from .tokens import PhonemeTokenizer

__all__ = [
    "PhonemeTokenizer",
    "Phonemizer",
    "TTSSample",
    "chunk_text",
    "read_durations",
    "read_texts",
    "read_transcripts",
    "read_tts_samples",
    "write_durations",
]
