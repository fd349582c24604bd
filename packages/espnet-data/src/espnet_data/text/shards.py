"""Write sentences as WebDataset tar shards (a *text split*) and read them back.

Layout of one text split::

    <out_dir>/shard-000000.tar   # block000000.txt + block000000.json, block000001.txt ...
    <out_dir>/shard-000000.json  # that shard's index row and the sha256 of its sentences
    <out_dir>/index.jsonl        # one row per shard: shard, num_sentences, words, chars, keys
    <out_dir>/summary.json       # counts, rejected lines with key and reason (kind: text)

A sample of a text shard is a *block* of up to ``sentences_per_block`` sentences:
``<block>.txt`` holds them, one per line (UTF-8, whitespace collapsed), and
``<block>.json`` their keys (``{"keys": [...]}``). One sample per sentence would cost
two tar headers (~2 KB) for a ~100-byte sentence: LibriSpeech's 40 million LM sentences
would take ~80 GB instead of ~5. For the same reason ``index.jsonl`` has a row per shard,
not per sentence. :func:`decode_text_blocks` turns blocks back into one sample per
sentence (``{"key", "text"}``), so a reader never sees them.

Bad lines are skipped, counted and listed with key and reason in ``summary.json``
(``rejected_counts``, ``rejected``; at most :data:`MAX_LISTED` are listed, all are
counted): ``empty`` (nothing but whitespace) and ``not_utf8`` (bytes that do not decode).

Writing is streamed: the sentences may come from a generator of any length. A shard is
kept as it is on a rerun when its ``.json`` companion records the same sentences (a
sha256 over keys and texts) and its tar has the recorded size; a killed run therefore
resumes by rewriting only what it had not finished. Every file is written under a
temporary name and renamed (:func:`espnet_data.shards.open_shard`).

Usage::

    from espnet_data.text import TextFile, read_text_split, write_text_split

    summary = write_text_split(TextFile("corpus.txt.gz").sentences(), "data/lm_train")
    for key, text in read_text_split("data/lm_train"):
        ...
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..atomic import read_jsonl, write_json, write_jsonl
from ..shards import add_member, open_shard, remove_stale_shards, shard_paths

log = logging.getLogger(__name__)

Pathlike = str | os.PathLike[str]
Sentence = tuple[str, str | bytes]

KIND = "text"  # summary.json's ``kind`` of a text split (audio splits have none)
MAX_LISTED = 10_000  # rejected lines listed by key in summary.json (all are counted)
REJECT_CODES: dict[str, str] = {
    "empty": "the line is empty or only whitespace",
    "not_utf8": "the line's bytes are not UTF-8",
}


class RejectedLine(ValueError):
    """A line that cannot be a training sentence; ``code`` is a key of :data:`REJECT_CODES`."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def clean_sentence(raw: str | bytes) -> str:
    """``raw`` decoded (bytes must be UTF-8) with its whitespace collapsed to single spaces.

    Raises:
        RejectedLine: ``not_utf8`` naming the first bad byte, or ``empty``.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            bad = raw[err.start : err.start + 4]
            raise RejectedLine(
                "not_utf8", f"not UTF-8: {err.reason} at byte {err.start} ({bad!r})"
            ) from None
    text = " ".join(raw.split())
    if not text:
        raise RejectedLine("empty", "empty line (nothing but whitespace)")
    return text


def _block_name(index: int) -> str:
    return f"block{index:06d}"


class _ShardBuffer:
    """The sentences of the shard being filled, and what its index row will say."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.texts: list[str] = []
        self.words = 0
        self.chars = 0
        self.digest = hashlib.sha256()

    def add(self, key: str, text: str) -> None:
        self.keys.append(key)
        self.texts.append(text)
        self.words += text.count(" ") + 1
        self.chars += len(text)
        self.digest.update(f"{key}\t{text}\n".encode())

    def __len__(self) -> int:
        return len(self.keys)


def _finished_shard(path: Path, digest: str) -> dict[str, Any] | None:
    """The companion row of ``path`` when the shard on disk holds exactly these sentences."""
    companion = path.with_suffix(".json")
    if not (companion.is_file() and path.is_file()):
        return None
    try:
        row = json.loads(companion.read_text())
    except ValueError:
        return None
    if row.get("sha256") != digest or path.stat().st_size != row.get("bytes"):
        return None
    return row


def _write_text_shard(path: Path, buffer: _ShardBuffer, sentences_per_block: int) -> dict[str, Any]:
    digest = buffer.digest.hexdigest()
    done = _finished_shard(path, digest)
    if done is not None:
        return done
    with open_shard(path) as tar:
        for block, start in enumerate(range(0, len(buffer), sentences_per_block)):
            end = start + sentences_per_block
            name = _block_name(block)
            add_member(tar, f"{name}.txt", "".join(t + "\n" for t in buffer.texts[start:end]).encode())
            add_member(tar, f"{name}.json", json.dumps({"keys": buffer.keys[start:end]}).encode())
    row = {
        "shard": path.name,
        "num_sentences": len(buffer),
        "num_words": buffer.words,
        "num_chars": buffer.chars,
        "first_key": buffer.keys[0],
        "last_key": buffer.keys[-1],
        "bytes": path.stat().st_size,
        "sha256": digest,
    }
    write_json(path.with_suffix(".json"), row, sort_keys=False)
    return row


def write_text_split(
    sentences: Iterable[Sentence],
    out_dir: Pathlike,
    *,
    split: str | None = None,
    sentences_per_shard: int = 100_000,
    sentences_per_block: int = 1000,
    sources: list[str] | None = None,
    on_shard_complete: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Write ``(key, text)`` pairs (``text`` a ``str`` or raw line ``bytes``) as a text split.

    Bad lines are skipped and counted (module docstring). ``sources`` describes where the
    sentences came from (written to the summary). ``on_shard_complete`` is called with
    each shard's index row. Returns the summary.

    Raises:
        ValueError: every line was rejected, or there was none (naming the summary file).
    """
    if sentences_per_shard < 1 or sentences_per_block < 1:
        raise ValueError(
            f"sentences_per_shard ({sentences_per_shard}) and sentences_per_block "
            f"({sentences_per_block}) must be >= 1"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    rejected: list[dict[str, str]] = []
    lines = 0
    buffer = _ShardBuffer()

    def flush() -> None:
        nonlocal buffer
        path = out / f"shard-{len(rows):06d}.tar"
        row = _write_text_shard(path, buffer, sentences_per_block)
        rows.append(row)
        if on_shard_complete:
            on_shard_complete(row)
        buffer = _ShardBuffer()

    for key, raw in sentences:
        lines += 1
        try:
            text = clean_sentence(raw)
        except RejectedLine as err:
            counts[err.code] += 1
            if len(rejected) < MAX_LISTED:
                rejected.append({"key": key, "code": err.code, "reason": str(err)})
            continue
        buffer.add(key, text)
        if len(buffer) >= sentences_per_shard:
            flush()
    if len(buffer):
        flush()
    remove_stale_shards(out, len(rows))
    write_jsonl(out / "index.jsonl", [{k: v for k, v in r.items() if k not in ("bytes", "sha256")}
                                      for r in rows])
    num_rejected = sum(counts.values())
    summary = {
        "kind": KIND,
        "split": split or out.name,
        "sources": sources or [],
        "num_lines": lines,
        "num_sentences": sum(r["num_sentences"] for r in rows),
        "num_words": sum(r["num_words"] for r in rows),
        "num_chars": sum(r["num_chars"] for r in rows),
        "num_rejected": num_rejected,
        "rejected_counts": dict(sorted(counts.items())),
        "num_shards": len(rows),
        "sentences_per_shard": sentences_per_shard,
        "sentences_per_block": sentences_per_block,
        "megabytes": round(sum(r["bytes"] for r in rows) / 1e6, 3),
        "rejected": rejected,
        "rejected_listed": len(rejected),
        "elapsed_seconds": round(time.perf_counter() - start, 2),
    }
    write_json(out / "summary.json", summary)
    if num_rejected:
        log.warning("%s: skipped %d of %d lines %s (see %s)", summary["split"], num_rejected,
                    lines, summary["rejected_counts"], out / "summary.json")
    if not rows:
        raise ValueError(
            f"text split {summary['split']!r} got no usable sentence out of {lines} lines "
            f"({summary['rejected_counts'] or 'no lines at all'}); see {out / 'summary.json'} "
            "and check the text sources"
        )
    return summary


def check_text_split(split_dir: Pathlike) -> list[dict[str, Any]]:
    """The index rows of a text split; a clear error for a missing or an audio split."""
    folder = Path(split_dir)
    index = folder / "index.jsonl"
    if not index.is_file():
        raise FileNotFoundError(
            f"{index} does not exist: {folder} is not a text split; write it with "
            "write_text_split (the LM recipe's create_dataset stage)"
        )
    rows = read_jsonl(index)
    if rows and "num_sentences" not in rows[0]:
        raise ValueError(
            f"{folder} is a split of audio shards (its index rows have no num_sentences); "
            "an LM reads text splits: point it at a folder written by write_text_split, or "
            "read the transcripts with espnet_data.text.SplitText"
        )
    return rows


def decode_text_blocks(
    raw: Iterable[dict[str, Any]], handler: Callable[[Exception], bool] | None = None
) -> Iterator[dict[str, str]]:
    """Raw tar members (``txt`` + ``json`` blocks) -> one ``{"key", "text"}`` per sentence.

    ``handler`` decides what a broken block does (True: skip it; default: warn and skip);
    a block whose key list does not match its lines is broken.
    """
    if handler is None:
        from ..dataset import warn_and_skip

        handler = warn_and_skip
    for item in raw:
        try:
            keys = json.loads(item["json"])["keys"]
            texts = item["txt"].decode("utf-8").splitlines()
            if len(keys) != len(texts):
                raise ValueError(f"{len(keys)} keys for {len(texts)} lines")
        except Exception as err:  # noqa: BLE001 - the handler is the error policy
            err.add_note(f"text block {item.get('__key__')!r} of {item.get('__url__')}")
            if handler(err):
                continue
            break
        for key, text in zip(keys, texts, strict=True):
            yield {"key": key, "text": text}


def read_text_split(split_dir: Pathlike) -> Iterator[tuple[str, str]]:
    """``(key, text)`` of every sentence of a text split, in the order written."""
    import webdataset as wds

    check_text_split(split_dir)

    def reraise(err: Exception) -> bool:
        raise err

    stream = wds.WebDataset(shard_paths(split_dir), shardshuffle=False, nodesplitter=None,
                            workersplitter=None, empty_check=False, handler=reraise)
    for sample in decode_text_blocks(stream, reraise):
        yield sample["key"], sample["text"]
