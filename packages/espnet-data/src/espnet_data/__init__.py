"""espnet-data: speech data as sharded WebDataset tars, batching and tokenizers."""

from .audio import AudioError, read_audio
from .batching import Collate, DynamicBatcher, map_stage
from .corpus import Corpus, Entry
from .dataset import ShardDataset
from .shards import ShardOptions, read_index, shard_paths, write_split, write_splits
from .tokenizer import (
    CharTokenizer,
    SentencePieceTokenizer,
    load_tokenizer,
    load_tokenizer_dir,
    save_tokenizer,
    train_sentencepiece,
)

__version__ = "0.1.0"

__all__ = [
    "AudioError",
    "CharTokenizer",
    "Collate",
    "Corpus",
    "DynamicBatcher",
    "Entry",
    "SentencePieceTokenizer",
    "ShardDataset",
    "ShardOptions",
    "load_tokenizer",
    "load_tokenizer_dir",
    "map_stage",
    "read_audio",
    "read_index",
    "save_tokenizer",
    "shard_paths",
    "train_sentencepiece",
    "write_split",
    "write_splits",
]
