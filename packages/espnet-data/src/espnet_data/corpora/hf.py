"""Hugging Face ``datasets`` as a corpus: an audio column and a text column.

Needs the ``hf`` extra (``pip install 'espnet-data[hf]'``: ``datasets`` and pyarrow).
The dataset is either a folder written by ``save_to_disk`` (``path``: a ``Dataset`` or a
``DatasetDict``) or anything ``load_dataset`` takes (``name``, ``config``): a Hub id,
read from the local cache (``cache_dir``, else ``HF_DATASETS_CACHE``) with the Hub
offline unless ``allow_download``, or a local folder of data files.

Audio is never decoded by ``datasets`` (its decoder needs torchcodec and FFmpeg): the
audio column is read as stored (``{"bytes", "path"}`` of an ``Audio`` feature, a path
string, or ``{"array", "sampling_rate"}``) and decoded by soundfile; the shard writer
resamples. The audio is re-encoded into the shards (FLAC), never stored as it was.
Texts, speakers and keys are read from their columns only; the audio column is read
row by row in the workers.

Keys: ``key_column``'s values, else ``<dataset split>-<row number>``; dots and spaces
become ``_``. A row whose text is missing, whose audio is missing or does not decode
is listed by the shard writer with its key and reason; it never stops the job.

Usage::

    from espnet_data import write_split
    from espnet_data.corpora import HFDatasetCorpus

    corpus = HFDatasetCorpus(name="openslr/librispeech_asr", config="clean",
                             split_map={"train": "train.100", "dev": "validation"},
                             key_column="id", speaker_column="speaker_id")
    write_split(corpus, "dev", "data/dev")
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import AudioError, check_finite, read_audio, to_mono
from ..corpus import Entry, check_split
from ._spans import safe_key
from ._tables import Unusable

__all__ = ["HFDatasetCorpus"]

_INSTALL = "HFDatasetCorpus needs the datasets package: pip install 'espnet-data[hf]'"


@dataclass(frozen=True)
class RowRef:
    """The source of an entry: row ``index`` of the dataset's split ``split``."""

    split: str
    index: int


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError as err:
        raise ImportError(_INSTALL) from err
    return datasets


@contextlib.contextmanager
def _offline(datasets: Any) -> Iterator[None]:
    """The Hub offline for the duration (``datasets`` and ``huggingface_hub`` read these
    flags when they are about to connect); restored afterwards."""
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def _value(cell: Any) -> str | None:
    return None if cell is None or cell == "" else str(cell)


@dataclass
class HFDatasetCorpus:
    """A Hugging Face dataset with an audio column and a text column.

    Args:
        path: a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``.
        name: what ``load_dataset`` takes instead: a Hub id (``openslr/librispeech_asr``)
            or a local folder of data files. Give ``path`` or ``name``.
        config: the dataset's configuration (``load_dataset``'s second argument).
        cache_dir: the ``datasets`` cache to read ``name`` from (default: its own).
        allow_download: let ``load_dataset`` reach the Hub; ``False`` (the default)
            reads the cache only, and a dataset that is not there is an error.
        split_map: split name -> the dataset's split (or a list of them, joined in
            turn); ``None``: every split of the dataset under its own name (a single
            ``Dataset`` saved to disk is the split ``train``).
        audio_column: an ``Audio`` column, a column of file paths, or of
            ``{"array", "sampling_rate"}``.
        text_column: the transcripts.
        speaker_column: speaker ids (optional).
        key_column: utterance ids (optional; default: split and row number).
        channel: which channel of multi-channel audio to keep; ``None`` averages them.
    """

    path: str | None = None
    name: str | None = None
    config: str | None = None
    cache_dir: str | None = None
    allow_download: bool = False
    split_map: dict[str, str | list[str]] | None = None
    audio_column: str = "audio"
    text_column: str = "text"
    speaker_column: str | None = None
    key_column: str | None = None
    channel: int | None = None
    # the loaded dataset; not pickled: each worker opens it again (memory-mapped)
    _data: Any = field(default=None, init=False, repr=False, compare=False)
    _audio: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.path is None) == (self.name is None):
            raise ValueError(
                "HFDatasetCorpus needs path (a save_to_disk folder) or name (a Hub id or "
                "data folder for load_dataset), and not both"
            )

    def _load(self) -> Any:
        """The dataset as a mapping split -> ``Dataset``."""
        if self._data is not None:
            return self._data
        datasets = _import_datasets()
        if self.path is not None:
            if not Path(self.path).is_dir():
                raise FileNotFoundError(
                    f"HFDatasetCorpus path {self.path} is not a folder: point it at what "
                    "Dataset.save_to_disk / DatasetDict.save_to_disk wrote"
                )
            data = datasets.load_from_disk(self.path)
        else:
            offline = contextlib.nullcontext() if self.allow_download else _offline(datasets)
            try:
                with offline:
                    data = datasets.load_dataset(self.name, self.config, cache_dir=self.cache_dir)
            except ConnectionError as err:
                raise FileNotFoundError(
                    f"dataset {self.name!r} (config {self.config!r}) is not in the local "
                    f"cache {self.cache_dir or datasets.config.HF_DATASETS_CACHE}: load it "
                    "once where the Hub is reachable (datasets.load_dataset with the same "
                    "cache_dir), or set allow_download: true"
                ) from err
        if isinstance(data, datasets.Dataset):
            data = {"train": data}
        self._data = data
        return data

    def splits(self) -> list[str]:
        if self.split_map is not None:
            return list(self.split_map)
        return list(self._load())

    def _parts(self, split: str) -> list[str]:
        check_split(self, split)
        if self.split_map is None:
            return [split]
        value = self.split_map[split]
        parts = [value] if isinstance(value, str) else list(value)
        have = list(self._load())
        missing = [p for p in parts if p not in have]
        if missing:
            raise ValueError(
                f"split_map[{split!r}] names {missing}, which the dataset does not have; "
                f"its splits are {have}"
            )
        return parts

    def _columns(self, part: str) -> list[str]:
        dataset = self._load()[part]
        wanted = [c for c in (self.audio_column, self.text_column, self.speaker_column,
                              self.key_column) if c is not None]
        missing = [c for c in wanted if c not in dataset.column_names]
        if missing:
            raise ValueError(
                f"the dataset's split {part!r} has no column {missing[0]!r}; its columns are "
                f"{dataset.column_names} (set audio_column / text_column / speaker_column / "
                "key_column)"
            )
        return wanted[1:]

    def entries(self, split: str) -> list[Entry]:
        entries = []
        for part in self._parts(split):
            columns = self._columns(part)
            table = self._load()[part].select_columns(columns).to_dict()
            texts = table[self.text_column]
            speakers = table[self.speaker_column] if self.speaker_column else [None] * len(texts)
            ids = table[self.key_column] if self.key_column else [None] * len(texts)
            for index, (text, speaker, uid) in enumerate(zip(texts, speakers, ids, strict=True)):
                key = safe_key(_value(uid) or f"{part}-{index:07d}")
                source: RowRef | Unusable = RowRef(part, index)
                if self.key_column and _value(uid) is None:
                    source = Unusable(f"row {index} of split {part!r} has no {self.key_column}")
                if text is not None and not isinstance(text, str | bytes):
                    text = str(text)
                entries.append(Entry(key, text, _value(speaker) or "", source=source))
        return entries

    def load_audio(self, entry: Entry) -> tuple[np.ndarray, int]:
        source = entry.source
        if isinstance(source, Unusable):
            source.raise_()
        view = self._audio.get(source.split)
        if view is None:  # the audio column alone, as stored (no decoding by datasets)
            view = self._load()[source.split].select_columns([self.audio_column])
            audio = _import_datasets().Audio
            if isinstance(view.features[self.audio_column], audio):
                view = view.cast_column(self.audio_column, audio(decode=False))
            self._audio[source.split] = view
        return self._decode(view[source.index][self.audio_column], entry.key)

    def _decode(self, cell: Any, key: str) -> tuple[np.ndarray, int]:
        name = f"audio of {key}"
        if cell is None:
            raise AudioError(f"{name}: the {self.audio_column} column is empty in this row")
        if isinstance(cell, str):
            cell = {"path": cell}
        if not isinstance(cell, dict):
            raise AudioError(
                f"{name}: the {self.audio_column} column holds a {type(cell).__name__}; "
                "expected an Audio feature, a file path or {array, sampling_rate}"
            )
        if cell.get("array") is not None:
            rate = cell.get("sampling_rate")
            if not rate:
                raise AudioError(f"{name}: an array without a sampling_rate")
            audio = to_mono(np.asarray(cell["array"], dtype=np.float32), self.channel, name=name)
            check_finite(audio, name)
            return audio, int(rate)
        if cell.get("bytes"):
            where = f" ({cell['path']})" if cell.get("path") else ""
            return read_audio(cell["bytes"], channel=self.channel, name=f"{key}{where}")
        path = cell.get("path")
        if not path:
            raise AudioError(f"{name}: the row has neither audio bytes nor a path")
        if not os.path.isabs(path) and self.path is not None:
            path = os.path.join(self.path, path)
        if not os.path.isfile(path):
            raise AudioError(f"{name}: audio file {path} does not exist")
        return read_audio(path, channel=self.channel)

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_data": None, "_audio": {}}
