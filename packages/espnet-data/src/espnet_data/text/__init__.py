"""Text for language models: text sources, text shards, tokenized token-count batches.

Usage::

    from espnet_data import load_tokenizer_dir
    from espnet_data.text import SplitText, TextFile, text_batches, write_text_split
    from itertools import chain

    sentences = chain(SplitText("data/train").sentences(), TextFile("extra.txt.gz").sentences())
    summary = write_text_split(sentences, "data/lm_train")   # bad lines counted, with keys
    batches = text_batches("data/lm_train", load_tokenizer_dir("exp/tokenizer").encode,
                           max_tokens=4000, shuffle=True)

A text split is the audio shards' layout with sentences instead of utterances
(:mod:`espnet_data.text.shards`); sources are :class:`TextFile` (plain or gzip, one
sentence per line), :class:`SplitText` (an ASR split's transcripts or another text
split), :class:`MiniLMText` (the mini corpus's generator) and
:class:`LibriSpeechLMText` (OpenSLR 11, downloaded on demand).
"""

from .batching import TextCollate, Tokenize, text_batches, token_batcher
from .librispeech import LibriSpeechLMText, download_librispeech_lm
from .shards import (
    check_text_split,
    clean_sentence,
    decode_text_blocks,
    read_text_split,
    write_text_split,
)
from .sources import MiniLMText, SplitText, TextFile, TextSource

__all__ = [
    "LibriSpeechLMText",
    "MiniLMText",
    "SplitText",
    "TextCollate",
    "TextFile",
    "TextSource",
    "Tokenize",
    "check_text_split",
    "clean_sentence",
    "decode_text_blocks",
    "download_librispeech_lm",
    "read_text_split",
    "text_batches",
    "token_batcher",
    "write_text_split",
]
