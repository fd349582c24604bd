"""Write a corpus as WebDataset tar shards, in parallel, resumably.

Layout of one split::

    <out_dir>/shard-000000.tar   # <key>.flac + <key>.json per utterance
    <out_dir>/shard-000000.json  # that shard's index rows and rejects (written last)
    <out_dir>/index.jsonl        # key, shard, duration, text, speaker (one per utterance)
    <out_dir>/summary.json       # counts, hours, shards, rejected samples with reasons

A shard is done when its ``.json`` companion exists; a rerun skips it. Every file is
written under a temporary name and renamed, so a killed job leaves no half shard.
Bad samples (undecodable audio, empty transcript, too short or long) are skipped and
listed with their key and reason; they never stop the job.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .atomic import read_jsonl, write_json, write_jsonl
from .audio import AudioError, check_audio, encode_flac, resample
from .corpus import Corpus, Entry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardOptions:
    """How samples are checked and stored."""

    sample_rate: int = 16000
    min_duration: float = 0.1
    max_duration: float = 30.0
    resample: bool = True  # False: reject audio at another rate instead of resampling


@dataclass
class ShardResult:
    shard: str
    rows: list[dict[str, Any]]
    rejected: list[dict[str, str]]


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o444
    tar.addfile(info, io.BytesIO(data))


def _prepare(corpus: Corpus, entry: Entry, opts: ShardOptions) -> tuple[bytes, dict[str, Any]]:
    """Load, check and encode one entry; raise ``AudioError``/``ValueError`` to reject it."""
    text = " ".join(entry.text.split())
    if not text:
        raise ValueError("empty transcript")
    audio, rate = corpus.load_audio(entry)
    check_audio(audio, entry.key)
    if rate != opts.sample_rate:
        if not opts.resample:
            raise AudioError(
                f"sample rate {rate} Hz != {opts.sample_rate} Hz "
                "(set resample: true to convert it)"
            )
        audio = resample(audio, rate, opts.sample_rate)
    duration = len(audio) / opts.sample_rate
    if not opts.min_duration <= duration <= opts.max_duration:
        raise ValueError(
            f"duration {duration:.2f}s outside [{opts.min_duration}, {opts.max_duration}]"
        )
    meta = {"key": entry.key, "text": text, "speaker": entry.speaker, "duration": round(duration, 4)}
    meta.update(entry.extra)
    return encode_flac(audio, opts.sample_rate), meta


def write_shard(
    corpus: Corpus, entries: Sequence[Entry], path: Path, opts: ShardOptions
) -> ShardResult:
    """Write one shard tar and its companion ``.json``; both atomically."""
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, str]] = []
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # PAX, not USTAR: USTAR cannot store member names over 100 bytes (long keys)
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for entry in entries:
                try:
                    flac, meta = _prepare(corpus, entry, opts)
                except (AudioError, ValueError, OSError) as err:
                    rejected.append({"key": entry.key, "reason": str(err)})
                    log.warning("skipping %s: %s", entry.key, err)
                    continue
                _add_member(tar, f"{entry.key}.flac", flac)
                _add_member(tar, f"{entry.key}.json", json.dumps(meta).encode())
                rows.append({**meta, "shard": path.name})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    result = ShardResult(shard=path.name, rows=rows, rejected=rejected)
    # rows keep their key order, so a resumed run writes a byte-identical index.jsonl
    write_json(path.with_suffix(".json"), asdict(result), sort_keys=False)
    return result


def _write_shard_job(args: tuple[Corpus, Sequence[Entry], Path, ShardOptions]) -> ShardResult:
    return write_shard(*args)


def plan_shards(entries: Sequence[Entry], utterances_per_shard: int) -> list[list[Entry]]:
    if utterances_per_shard < 1:
        raise ValueError(f"utterances_per_shard must be >= 1, got {utterances_per_shard}")
    return [
        list(entries[i : i + utterances_per_shard])
        for i in range(0, len(entries), utterances_per_shard)
    ]


def _check_keys(split: str, keys: Sequence[str]) -> None:
    """Keys name tar members: unique, non-empty, no '.' (WebDataset cuts keys at the first dot)."""
    dupes = sorted(k for k, n in Counter(keys).items() if n > 1)[:5]
    if dupes:
        raise ValueError(f"split {split!r} has duplicate keys, e.g. {dupes}; keys must be unique")
    bad = [k for k in keys if not k or "." in k][:5]
    if bad:
        raise ValueError(
            f"split {split!r} has keys that are empty or contain '.', e.g. {bad}: WebDataset "
            "splits a member name at its first dot; replace the dots in the corpus's keys"
        )


_SHARD_FILE = re.compile(r"shard-(\d{6})\.(tar|json)")


def _remove_stale_shards(out: Path, num_shards: int) -> None:
    """Delete shards numbered past the plan (left by a run with other entries or sizes)."""
    for path in out.glob("shard-*"):
        match = _SHARD_FILE.fullmatch(path.name)
        if match and int(match.group(1)) >= num_shards:
            log.info("removing %s: the split now has %d shards", path, num_shards)
            path.unlink()


def write_split(
    corpus: Corpus,
    split: str,
    out_dir: str | os.PathLike[str],
    *,
    options: ShardOptions = ShardOptions(),
    utterances_per_shard: int = 500,
    num_workers: int = 1,
    on_shard_complete: Callable[[ShardResult], None] | None = None,
) -> dict[str, Any]:
    """Write ``split`` of ``corpus`` into ``out_dir``; return the summary.

    Finished shards (those with a companion ``.json``) are kept as they are.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    entries = corpus.entries(split)
    _check_keys(split, [e.key for e in entries])
    groups = plan_shards(entries, utterances_per_shard)
    _remove_stale_shards(out, len(groups))
    results: dict[int, ShardResult] = {}
    todo: list[tuple[int, tuple[Corpus, Sequence[Entry], Path, ShardOptions]]] = []
    for i, group in enumerate(groups):
        path = out / f"shard-{i:06d}.tar"
        done = path.with_suffix(".json")
        if done.exists() and path.exists():
            result = ShardResult(**json.loads(done.read_text()))
            stored = {r["key"] for r in result.rows} | {r["key"] for r in result.rejected}
            if stored == {e.key for e in group}:
                results[i] = result
                continue
            log.info("%s holds other keys than planned (entries changed); rewriting it", path)
        todo.append((i, (corpus, group, path, options)))
    log.info("%s: %d shards, %d to write, %d done", split, len(groups), len(todo), len(results))
    if num_workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(min(num_workers, len(todo))) as pool:
            for (i, _), result in zip(
                todo, pool.map(_write_shard_job, [a for _, a in todo]), strict=True
            ):
                results[i] = result
                if on_shard_complete:
                    on_shard_complete(result)
    else:
        for i, args in todo:
            results[i] = write_shard(*args)
            if on_shard_complete:
                on_shard_complete(results[i])
    rows = [row for i in sorted(results) for row in results[i].rows]
    rejected = [r for i in sorted(results) for r in results[i].rejected]
    write_jsonl(out / "index.jsonl", rows)
    seconds = sum(r["duration"] for r in rows)
    summary = {
        "split": split,
        "num_utterances": len(rows),
        "num_rejected": len(rejected),
        "hours": round(seconds / 3600, 4),
        "num_shards": len(groups),
        "sample_rate": options.sample_rate,
        "rejected": rejected,
        "elapsed_seconds": round(time.perf_counter() - start, 2),
    }
    write_json(out / "summary.json", summary)
    if rejected:
        log.warning("%s: rejected %d samples (see %s)", split, len(rejected), out / "summary.json")
    return summary


def read_index(split_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of ``<split_dir>/index.jsonl``; a clear error when the split was never made."""
    path = Path(split_dir) / "index.jsonl"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: run the create_dataset stage first "
            f"(or point the config at a folder made by it)"
        )
    return read_jsonl(path)


def shard_paths(split_dir: str | os.PathLike[str]) -> list[str]:
    """The shard tar files of a split, sorted; an error when there are none."""
    paths = sorted(str(p) for p in Path(split_dir).glob("shard-*.tar"))
    if not paths:
        raise FileNotFoundError(
            f"no shard-*.tar in {split_dir}: run the create_dataset stage first"
        )
    return paths
