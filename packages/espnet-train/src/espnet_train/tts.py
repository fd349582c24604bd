"""The text-to-speech tasks of ``train``: ``task: tts``, ``task: tts_aligner``, ``task: vocoder``.

The trainer, checkpoints, resume, best-N averaging and ``max_time`` are the ASR task's;
what differs lives here: the model block (``espnet_model.tts``), the tokenizer (the
phoneme tokenizer of ``espnet_data.tts``, a folder with ``tokens.txt`` and
``tokenizer.json``) and the batches. All three read the same speech splits as ASR
(``create_dataset``'s shards), bucketed by seconds of audio (``data.max_seconds``):

==============  =====================================================  ========================
task            batch keys (``model(**batch)``)                        model block
==============  =====================================================  ========================
tts             text (phoneme ids, padded 0), text_lengths, speech,    ``tts: fastspeech2``,
                speech_lengths, durations, durations_lengths           ``tts_conf``, ...
tts_aligner     text, text_lengths, speech, speech_lengths             ``aligner_conf``, ...
vocoder         speech (``data.segment_seconds`` random crops),        HiFi-GAN: ``generator_params``,
                speech_lengths                                         ``discriminator_params``, ...
==============  =====================================================  ========================

``task: tts`` reads each split's ``durations.jsonl`` (written by the TTS system's
``collect_stats``: one line per utterance, a duration in mel frames for each token of
``tokenizer.encode(text)``); an utterance without durations, or whose text the
phonemizer refuses, is skipped and counted (logged with its key and reason).

Exported folder (``exp_dir/model``)::

    config.yaml   task: tts | tts_aligner | vocoder, model, vocab_size, sample_rate,
                  tokenizer: {type: phoneme, token_list: tokenizer/tokens.txt,
                  config: tokenizer/tokenizer.json}, training
    model.pt      best-N averaged state_dict
    tokenizer/    the phoneme tokenizer (not for a vocoder)
    stats.npz     the mel statistics of global_mvn (reference copy; also in model.pt)

Example training.yaml::

    task: tts
    exp_dir: exp/tts
    tokenizer: exp/tokenizer                 # train_tokenizer's phoneme tokenizer
    stats_file: exp/stats/feats_stats.npz    # collect_stats' mel statistics
    data: {train: data/train, valid: data/dev, max_seconds: 200}
    model: {tts: fastspeech2, tts_conf: {adim: 128, ...}, feats_extract_conf: {fs: 16000, ...},
            normalize: global_mvn}
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from espnet_data import DynamicBatcher, ShardDataset, map_stage, read_index, shard_paths
from espnet_data.batching import pad_sequences

from .config import DataConfig, TrainingConfig
from .data import BatchStream, batch_loader

log = logging.getLogger(__name__)

TTS_TASKS = ("tts", "tts_aligner", "vocoder")
DURATIONS_FILE = "durations.jsonl"
TOKENIZER_SPEC = {"type": "phoneme", "token_list": "tokens.txt", "config": "tokenizer.json"}
"""How ``config.yaml: tokenizer`` describes a phoneme tokenizer (paths relative to its folder)."""


# -- tokenizer -------------------------------------------------------------------------


def load_phoneme_tokenizer(folder: str | Path) -> Any:
    """The phoneme tokenizer ``train_tokenizer`` saved in ``folder`` (``tokens.txt``)."""
    from espnet_data.tts.tokens import PhonemeTokenizer

    path = Path(folder)
    if not (path / "tokens.txt").is_file():
        raise FileNotFoundError(
            f"tokenizer: {path} holds no tokens.txt: a TTS task needs the phoneme tokenizer "
            "the TTS system's train_tokenizer stage writes (e.g. exp/tokenizer)"
        )
    return PhonemeTokenizer.load(path)


def vocab_size(tokenizer: Any) -> int:
    return int(getattr(tokenizer, "vocab_size", None) or len(tokenizer))


def save_phoneme_tokenizer(tokenizer: Any, folder: Path) -> dict[str, str]:
    """Write the tokenizer's files into ``folder``; the spec ``config.yaml`` records."""
    tokenizer.save(folder)
    return dict(TOKENIZER_SPEC)


# -- the model block -------------------------------------------------------------------


def stats_files(stats_file: str | None) -> dict[str, str | None]:
    """The statistics files of a TTS model: mel (``stats_file``), and beside it ESPnet2's
    ``pitch_stats.npz`` / ``energy_stats.npz`` (collect_stats writes them when the model
    block extracts pitch / energy)."""
    if not stats_file:
        return {"normalize": None, "pitch_normalize": None, "energy_normalize": None}
    folder = Path(stats_file).parent
    return {"normalize": stats_file, "pitch_normalize": str(folder / "pitch_stats.npz"),
            "energy_normalize": str(folder / "energy_stats.npz")}


def _link_stats(block: dict[str, Any], stats_file: str | None, *, default: str | None) -> dict[str, Any]:
    """Each ``global_mvn`` normaliser gets its statistics file unless the block names one
    (``normalize`` is ``global_mvn`` when left out of a FastSpeech2 block, as in ESPnet2)."""
    block = json.loads(json.dumps(block))
    for key, path in stats_files(stats_file).items():
        if block.get(key, default if key == "normalize" else None) != "global_mvn":
            continue
        conf = block.setdefault(f"{key}_conf", {})
        conf.setdefault("stats_file", path)
        if not conf["stats_file"] or not Path(conf["stats_file"]).is_file():
            raise FileNotFoundError(
                f"{key}: global_mvn needs {key}_conf.stats_file, got {conf['stats_file']!r}: set "
                "stats_file and run the collect_stats stage first (it writes the statistics), or "
                f"set {key}: null"
            )
    return block


def build_tts_task_model(config: TrainingConfig, vocab: int | None) -> torch.nn.Module:
    """The model block of a TTS-family config, errors naming the task and the key."""
    block = _link_stats(config.model, config.stats_file,
                        default="global_mvn" if config.task == "tts" else None)
    try:
        if config.task == "tts":
            from espnet_model.tts import build_tts

            return build_tts(block, vocab_size=int(vocab or 0))
        if config.task == "tts_aligner":
            from espnet_model.tts.aligner import build_aligner

            return build_aligner(block, vocab_size=int(vocab or 0))
        from espnet_model.tts.hifigan import build_hifigan

        return build_hifigan(block)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"model (task: {config.task}): {err}") from None


# -- batches ---------------------------------------------------------------------------


class SkipCounter:
    """Counts skipped samples by reason and logs the first few keys of each."""

    def __init__(self, name: str, shown: int = 5) -> None:
        self.name, self.shown = name, shown
        self.counts: Counter[str] = Counter()

    def skip(self, key: str, reason: str) -> None:
        self.counts[reason] += 1
        if self.counts[reason] <= self.shown:
            log.warning("%s: skipping %s: %s", self.name, key, reason)
        elif self.counts[reason] == self.shown + 1:
            log.warning("%s: more samples skipped for %r (counted, not shown)", self.name, reason)


def _tokenize_stage(tokenize: Callable[[str], list[int]], skipped: SkipCounter
                    ) -> Callable[[Iterable[dict[str, Any]]], Iterator[dict[str, Any]]]:
    """Samples with ``ids`` (phoneme ids of their text); a text the front-end refuses is
    skipped and counted. Ids are cached by text (the phonemizer is the slow part)."""
    cache: dict[str, list[int]] = {}

    def stage(samples: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for sample in samples:
            text = sample["text"]
            ids = cache.get(text)
            if ids is None:
                try:
                    ids = list(tokenize(text))
                except ValueError as err:
                    skipped.skip(sample["key"], f"text refused by the front-end: {err}")
                    continue
                if not ids:
                    skipped.skip(sample["key"], "text gives no tokens")
                    continue
                cache[text] = ids
            yield {**sample, "ids": ids}

    return stage


def _durations_stage(durations: Mapping[str, list[int]], where: str, skipped: SkipCounter
                     ) -> Callable[[Iterable[dict[str, Any]]], Iterator[dict[str, Any]]]:
    """Samples with ``durations``; one without (or with a count that is not one per
    token) is skipped and counted."""

    def stage(samples: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for sample in samples:
            found = durations.get(sample["key"])
            if found is None:
                skipped.skip(sample["key"], f"no durations in {where}")
                continue
            if len(found) != len(sample["ids"]):
                skipped.skip(sample["key"], f"{len(found)} durations for {len(sample['ids'])} tokens "
                             f"in {where} (the tokenizer changed since collect_stats: run it again)")
                continue
            yield {**sample, "durations": found}

    return stage


def _crop_stage(seconds: float, seed: int
                ) -> Callable[[Iterable[dict[str, Any]]], Iterator[dict[str, Any]]]:
    """Random crops of ``seconds`` (vocoder training; shorter audio is kept whole)."""
    rng = random.Random(seed)

    def stage(samples: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for sample in samples:
            n = int(round(seconds * sample["sample_rate"]))
            audio = sample["audio"]
            if len(audio) > n:
                start = rng.randrange(len(audio) - n + 1)
                audio = audio[start:start + n]
            yield {**sample, "audio": audio, "duration": len(audio) / sample["sample_rate"]}

    return stage


def collate_tts(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Padded model inputs of TTS samples (ids padded with 0, as ESPnet2's TTS collate)."""
    out: dict[str, Any] = {
        "keys": [s["key"] for s in batch],
        "texts": [s["text"] for s in batch],
        "speech": pad_sequences([s["audio"] for s in batch], 0.0),
        "speech_lengths": torch.tensor([len(s["audio"]) for s in batch], dtype=torch.long),
    }
    if "ids" in batch[0]:
        out["text"] = pad_sequences([np.asarray(s["ids"], dtype=np.int64) for s in batch], 0)
        out["text_lengths"] = torch.tensor([len(s["ids"]) for s in batch], dtype=torch.long)
    if "durations" in batch[0]:
        out["durations"] = pad_sequences([np.asarray(s["durations"], dtype=np.int64) for s in batch], 0)
        out["durations_lengths"] = torch.tensor([len(s["durations"]) for s in batch], dtype=torch.long)
    return out


def durations_path(split_dir: str | Path) -> Path:
    return Path(split_dir) / DURATIONS_FILE


def _read_durations(split_dir: str) -> dict[str, list[int]]:
    path = durations_path(split_dir)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: task: tts trains on durations; run the TTS system's "
            "collect_stats stage (it trains the aligner and writes durations.jsonl beside the "
            "shards of data.train and data.valid)"
        )
    from espnet_data.tts.durations import read_durations

    return read_durations(path)


def make_tts_stream(config: TrainingConfig, split_dir: str, tokenizer: Any, *, train: bool,
                    seed: int = 0, pin_memory: bool = False) -> BatchStream:
    """Bucketed batches of one split for ``config.task`` in a :class:`BatchStream`."""
    data: DataConfig = config.data
    name = "train" if train else "valid"
    skipped = SkipCounter(f"{name} ({split_dir})")
    stages: list[Any] = []
    if config.task == "vocoder":
        stages.append(_crop_stage(data.segment_seconds, seed))
    else:
        stages.append(_tokenize_stage(tokenizer.encode, skipped))
        if config.task == "tts":
            stages.append(_durations_stage(_read_durations(split_dir),
                                           str(durations_path(split_dir)), skipped))
    stages += [
        DynamicBatcher(max_seconds=data.max_seconds, max_batch_size=data.max_batch_size,
                       buffer_size=data.buffer_size, shuffle=train, seed=seed),
        map_stage(collate_tts),
    ]
    dataset = ShardDataset(
        shard_paths(split_dir), shuffle_shards=train, stages=stages, seed=seed,
        batches_per_rank="auto" if train else None,
        index=_cropped_index(split_dir, data.segment_seconds if config.task == "vocoder" else None)
        if train else None,
    )
    loader = batch_loader(dataset, int(data.num_workers), seed, pin_memory=pin_memory)
    return BatchStream(loader, dataset, name=name)


def _cropped_index(split_dir: str, seconds: float | None) -> list[dict[str, Any]]:
    """The split's index, durations capped at the crop length (the batches' real sizes)."""
    rows = read_index(split_dir)
    if seconds is None:
        return rows
    return [{**r, "duration": min(float(r["duration"]), seconds)} for r in rows]


def tts_steps_per_epoch(config: TrainingConfig) -> int:
    """Batches of one epoch, about (for ``cosine``): padded seconds over ``max_seconds``."""
    rows = _cropped_index(config.data.train,
                          config.data.segment_seconds if config.task == "vocoder" else None)
    seconds = sum(float(r["duration"]) for r in rows)
    return max(1, int(seconds * 1.15 / config.data.max_seconds) + 1)
