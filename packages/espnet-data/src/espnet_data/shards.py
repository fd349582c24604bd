"""Write a corpus as WebDataset tar shards, in parallel (processes or MPI), resumably.

Layout of one split::

    <out_dir>/shard-000000.tar   # <key>.flac (or .wav) + <key>.json per utterance
    <out_dir>/shard-000000.json  # that shard's index rows, rejects and size (written last)
    <out_dir>/index.jsonl        # key, shard, duration, text, speaker (one per utterance)
    <out_dir>/summary.json       # counts, hours, shards, rejected samples with reasons

A shard is done when its ``.json`` companion exists, its tar has the recorded size and
it holds the planned keys; a rerun skips it. Every file is written under a temporary
name and renamed, so a killed job leaves no half shard. Bad samples (see
:data:`espnet_data.samples.REJECT_CODES`) are skipped and listed with their key, code
and reason; they never stop the job.

Shards are sized in utterances (``utterances_per_shard``) or in megabytes
(``ShardOptions.target_shard_mb``: the bytes per utterance are measured on a few
entries spread over the split, and the utterance count follows). The same code runs in
one process, in a local process pool (``num_workers``) and under ``mpiexec -n N``,
where each rank writes its share of the shards and rank 0 the index and summary.

In a pool the work items are pieces of shards (up to 32 utterances, ~8 per worker over
all pending shards of all splits: :func:`piece_size`), so a split of few shards keeps
every worker busy. A worker loads, checks and encodes a piece's samples into a fragment
file (``.shard-NNNNNN.tar.PPPP.part``: complete tar members); when a shard's pieces are
all back, this process joins its fragments in entry order under a temporary name and
renames it. A shard is therefore byte-identical for any number of workers, and it is
the same file ``tarfile`` would write.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
import shutil
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .atomic import read_jsonl, write_json, write_jsonl
from .corpus import Corpus, Entry, check_split
from .parallel import Backend, World, get_world, map_unordered, one_thread
from .progress import Progress
from .samples import Rejected, SampleOptions, prepare_sample

log = logging.getLogger(__name__)

_TAR_OVERHEAD = 1024  # bytes of tar header and padding per member, about
_SIZE_PROBES = 16  # entries encoded to measure bytes per utterance for target_shard_mb


@dataclass(frozen=True)
class ShardOptions:
    """How samples are checked and stored, and how big a shard is.

    Args:
        sample_rate: the rate every stored sample has.
        min_duration: shorter samples are rejected (seconds, after resampling).
        max_duration: longer samples are rejected.
        resample: convert other rates; False rejects them instead.
        keep_original: store a FLAC or 16-bit WAV source as it is when it is already
            mono at ``sample_rate`` (no re-encoding); False re-encodes everything to FLAC.
        target_shard_mb: when set, size shards to about this many MB (and ignore
            ``utterances_per_shard``).
    """

    sample_rate: int = 16000
    min_duration: float = 0.1
    max_duration: float = 30.0
    resample: bool = True
    keep_original: bool = True
    target_shard_mb: float | None = None

    def __post_init__(self) -> None:
        if self.target_shard_mb is not None and self.target_shard_mb <= 0:
            raise ValueError(f"target_shard_mb must be > 0 MB or null, got {self.target_shard_mb}")

    def sample_options(self) -> SampleOptions:
        return SampleOptions(
            sample_rate=self.sample_rate,
            min_duration=self.min_duration,
            max_duration=self.max_duration,
            resample=self.resample,
            keep_original=self.keep_original,
        )


@dataclass
class ShardResult:
    """What one shard holds: its index rows, its rejected samples, its size on disk."""

    shard: str
    rows: list[dict[str, Any]]
    rejected: list[dict[str, str]]
    bytes: int = 0
    stored_original: int = 0

    @classmethod
    def load(cls, path: Path) -> ShardResult:
        data = json.loads(path.read_text())
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def _reject(key: str, err: Rejected) -> dict[str, str]:
    return {"key": key, "code": err.code, "reason": str(err)}


def member_bytes(name: str, data: bytes) -> bytes:
    """Tar member ``name`` holding ``data``, header and padding included, as
    ``TarFile.addfile`` writes it in PAX format (mtime 0, read-only: reproducible)."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o444
    header = info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    return header + data + bytes(-len(data) % tarfile.BLOCKSIZE)


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add ``data`` as member ``name`` (mtime 0, read-only: shards are reproducible)."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o444
    tar.addfile(info, io.BytesIO(data))


@contextlib.contextmanager
def open_shard(path: Path) -> Iterator[tarfile.TarFile]:
    """A shard tar written under a temporary name and renamed to ``path`` when the block
    ends without error (a failure leaves no file); the audio and text writers share it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # PAX, not USTAR: USTAR cannot store member names over 100 bytes (long keys)
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            yield tar
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass
class _Piece:
    """A run of consecutive entries of one shard, prepared by one worker into ``fragment``."""

    split: str
    shard: int
    number: int  # position of the piece in its shard
    entries: list[Entry]
    fragment: Path


@dataclass
class _PieceResult:
    rows: list[dict[str, Any]]
    rejected: list[dict[str, str]]
    original: int
    seconds: float


def _fragment_path(shard_path: Path, number: int) -> Path:
    return shard_path.with_name(f".{shard_path.name}.{number:04d}.part")


def _prepare_piece(context: tuple[Corpus, SampleOptions], piece: _Piece) -> _PieceResult:
    """Load, check and encode the piece's entries; write their tar members to its fragment."""
    corpus, sample_opts = context
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, str]] = []
    original = 0
    with open(piece.fragment, "wb") as out:
        for entry in piece.entries:
            try:
                sample = prepare_sample(corpus, entry, sample_opts)
            except Rejected as err:
                rejected.append(_reject(entry.key, err))
                log.warning("skipping %s: %s", entry.key, err)
                continue
            out.write(member_bytes(f"{entry.key}.{sample.ext}", sample.audio))
            out.write(member_bytes(f"{entry.key}.json", json.dumps(sample.meta).encode()))
            rows.append(sample.meta)
            original += sample.original
    return _PieceResult(rows, rejected, original, sum(r["duration"] for r in rows))


def _assemble_shard(path: Path, fragments: Sequence[Path], parts: Sequence[_PieceResult]) -> ShardResult:
    """Concatenate the pieces' fragments (in entry order) into the shard tar, atomically,
    then write its companion ``.json``: the same bytes whoever prepared the pieces."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            for fragment in fragments:
                with open(fragment, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
            # end of archive: two zero blocks, then zeros up to a whole record (as tarfile)
            size = out.tell() + 2 * tarfile.BLOCKSIZE
            out.write(bytes(2 * tarfile.BLOCKSIZE + (-size % tarfile.RECORDSIZE)))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    for fragment in fragments:
        fragment.unlink(missing_ok=True)
    rows = [{**row, "shard": path.name} for part in parts for row in part.rows]
    rejected = [rej for part in parts for rej in part.rejected]
    result = ShardResult(
        path.name, rows, rejected, bytes=path.stat().st_size,
        stored_original=sum(part.original for part in parts),
    )
    # rows keep their key order, so a resumed run writes a byte-identical index.jsonl
    write_json(path.with_suffix(".json"), asdict(result), sort_keys=False)
    return result


def _pieces(split: str, shard: int, path: Path, entries: Sequence[Entry], size: int) -> list[_Piece]:
    return [
        _Piece(split, shard, n, list(entries[i : i + size]), _fragment_path(path, n))
        for n, i in enumerate(range(0, len(entries), size))
    ] or [_Piece(split, shard, 0, [], _fragment_path(path, 0))]


def write_shard(
    corpus: Corpus, entries: Sequence[Entry], path: Path, opts: ShardOptions
) -> ShardResult:
    """Write one shard tar and its companion ``.json`` in this process; both atomically."""
    context = (corpus, opts.sample_options())
    pieces = _pieces("", 0, path, entries, max(1, len(entries)))
    return _assemble_shard(path, [p.fragment for p in pieces], [_prepare_piece(context, p) for p in pieces])


def plan_shards(entries: Sequence[Entry], utterances_per_shard: int) -> list[list[Entry]]:
    """Consecutive groups of ``utterances_per_shard`` entries, one per shard."""
    if utterances_per_shard < 1:
        raise ValueError(f"utterances_per_shard must be >= 1, got {utterances_per_shard}")
    return [
        list(entries[i : i + utterances_per_shard])
        for i in range(0, len(entries), utterances_per_shard)
    ]


def screen_entries(entries: Sequence[Entry]) -> tuple[list[Entry], list[dict[str, str]]]:
    """Drop entries whose key cannot be stored: repeated keys (the first one is kept) and
    keys that are empty or hold a '.' (WebDataset cuts member names at the first dot)."""
    kept: list[Entry] = []
    rejected: list[dict[str, str]] = []
    first: dict[str, int] = {}
    for position, entry in enumerate(entries):
        if not entry.key or "." in entry.key:
            err = Rejected(
                "bad_key",
                f"key {entry.key!r} is empty or holds a '.': WebDataset splits a member name "
                "at its first dot; replace the dots in the corpus's keys",
            )
        elif entry.key in first:
            err = Rejected(
                "duplicate_key",
                f"duplicate key: entry #{position} repeats entry #{first[entry.key]}, which is kept",
            )
        else:
            first[entry.key] = position
            kept.append(entry)
            continue
        rejected.append(_reject(entry.key, err))
        log.warning("skipping %s: %s", entry.key, err)
    return kept, rejected


def measure_utterances_per_shard(
    corpus: Corpus, entries: Sequence[Entry], opts: ShardOptions, fallback: int
) -> int:
    """Utterances per shard that give shards of about ``opts.target_shard_mb``.

    Encodes up to 16 entries spread evenly over ``entries`` (deterministic, so a rerun
    plans the same shards) and divides the target by their mean stored size.
    """
    assert opts.target_shard_mb is not None
    step = max(1, len(entries) // _SIZE_PROBES)
    sizes = []
    with one_thread():  # the sizes a worker would encode
        for entry in list(entries)[::step][:_SIZE_PROBES]:
            try:
                sample = prepare_sample(corpus, entry, opts.sample_options())
            except Rejected:
                continue
            sizes.append(len(sample.audio) + len(json.dumps(sample.meta)) + 2 * _TAR_OVERHEAD)
    if not sizes:
        log.warning("no probe entry could be encoded; using %d utterances per shard", fallback)
        return fallback
    mean = sum(sizes) / len(sizes)
    return max(1, round(opts.target_shard_mb * 1e6 / mean))


_SHARD_FILE = re.compile(r"shard-(\d{6})\.(tar|json)")


def remove_stale_shards(out: Path, num_shards: int) -> None:
    """Delete shards numbered past the plan (left by a run with other entries or sizes)."""
    for path in out.glob("shard-*"):
        match = _SHARD_FILE.fullmatch(path.name)
        if match and int(match.group(1)) >= num_shards:
            log.info("removing %s: the split now has %d shards", path, num_shards)
            path.unlink()


def _finished(path: Path, group: Sequence[Entry]) -> ShardResult | None:
    """The shard's result when it is complete on disk and holds ``group``; else ``None``."""
    done = path.with_suffix(".json")
    if not (done.exists() and path.exists()):
        return None
    try:
        result = ShardResult.load(done)
    except (ValueError, TypeError, KeyError) as err:
        log.info("%s is unreadable (%s); rewriting the shard", done, err)
        return None
    if result.bytes and path.stat().st_size != result.bytes:
        log.info("%s is %d bytes, %d recorded; rewriting it", path, path.stat().st_size, result.bytes)
        return None
    stored = {r["key"] for r in result.rows} | {r["key"] for r in result.rejected}
    if stored != {e.key for e in group}:
        log.info("%s holds other keys than planned (entries changed); rewriting it", path)
        return None
    return result


@dataclass
class _Plan:
    """Rank 0's plan of a split, sent to every rank."""

    out: Path
    groups: list[list[Entry]]  # entries of each shard to write
    todo: list[int]  # shard number of each group
    num_shards: int
    utterances_per_shard: int

    def path(self, j: int) -> Path:
        return self.out / f"shard-{self.todo[j]:06d}.tar"


def _plan_split(
    corpus: Corpus,
    split: str,
    out: Path,
    options: ShardOptions,
    utterances_per_shard: int,
) -> tuple[_Plan, dict[int, ShardResult], list[dict[str, str]], int]:
    check_split(corpus, split)
    out.mkdir(parents=True, exist_ok=True)
    for fragment in out.glob(".shard-*.part"):  # pieces of a killed run
        fragment.unlink()
    all_entries = corpus.entries(split)
    entries, screened = screen_entries(all_entries)
    if options.target_shard_mb is not None:
        utterances_per_shard = _cached_size(out, options, len(all_entries)) or (
            measure_utterances_per_shard(corpus, entries, options, utterances_per_shard)
        )
    groups = plan_shards(entries, utterances_per_shard)
    remove_stale_shards(out, len(groups))
    done: dict[int, ShardResult] = {}
    todo_groups, todo = [], []
    for i, group in enumerate(groups):
        result = _finished(out / f"shard-{i:06d}.tar", group)
        if result is not None:
            done[i] = result
        else:
            todo_groups.append(group)
            todo.append(i)
    log.info("%s: %d shards, %d to write, %d done", split, len(groups), len(todo), len(done))
    plan = _Plan(out, todo_groups, todo, len(groups), utterances_per_shard)
    return plan, done, screened, len(all_entries)


def _cached_size(out: Path, options: ShardOptions, num_entries: int) -> int | None:
    """The shard size measured by the last run when its target and entry count match."""
    path = out / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = (summary.get("target_shard_mb"), summary.get("num_entries")) == (
        options.target_shard_mb,
        num_entries,
    )
    return int(summary["utterances_per_shard"]) if same and "utterances_per_shard" in summary else None


def _collective(world: World, fn: Callable[[], Any], what: str) -> Any:
    """Run ``fn`` on this rank; under MPI, turn a failure on any rank into one on all ranks."""
    if world.comm is None:
        return fn()
    try:
        value, error = fn(), None
    except Exception as err:  # noqa: BLE001 - re-raised below on every rank
        value, error = None, f"rank {world.rank}: {type(err).__name__}: {err}"
    errors = [e for e in world.comm.allgather(error) if e]
    if errors:
        raise RuntimeError(f"{what} failed on {len(errors)} rank(s): {'; '.join(errors)}")
    return value


def piece_size(num_utterances: int, num_workers: int) -> int:
    """Utterances per work item: about 8 items per worker, at most 32 utterances.

    Items smaller than a shard keep every worker busy however few shards there are (a
    dev split is often one shard); the size never changes what is written.
    """
    return max(1, min(32, math.ceil(num_utterances / (8 * max(1, num_workers)))))


def _write_pool(
    corpus: Corpus,
    plans: dict[str, _Plan],
    options: ShardOptions,
    num_workers: int,
    on_shard_complete: Callable[[ShardResult], None] | None,
    show_progress: bool,
) -> dict[str, dict[int, ShardResult]]:
    """Write every planned shard of every split here or in one pool of ``num_workers``.

    Shards are cut into pieces; a worker prepares a piece's samples into a fragment
    file, and this process joins a shard's fragments in entry order once all of them
    are ready. So the shards are byte-identical for any number of workers.
    """
    total = sum(len(g) for plan in plans.values() for g in plan.groups)
    size = piece_size(total, num_workers)
    pieces: list[_Piece] = []
    left: dict[tuple[str, int], int] = {}  # pieces of each shard not back yet
    for split, plan in plans.items():
        for j, group in enumerate(plan.groups):
            mine = _pieces(split, j, plan.path(j), group, size)
            pieces += mine
            left[split, j] = len(mine)
    parts: dict[tuple[str, int], dict[int, _PieceResult]] = {key: {} for key in left}
    written: dict[str, dict[int, ShardResult]] = {split: {} for split in plans}
    progress = Progress(total, desc="create_dataset") if show_progress and total else None
    context = (corpus, options.sample_options())
    for i, part in map_unordered(_prepare_piece, pieces, context=context, num_workers=num_workers):
        piece = pieces[i]
        key = (piece.split, piece.shard)
        parts[key][piece.number] = part
        if progress is not None:
            progress.update(len(piece.entries), part.seconds)
        left[key] -= 1
        if left[key]:
            continue
        plan = plans[piece.split]
        by_number = parts.pop(key)
        done = [by_number[n] for n in range(len(by_number))]
        fragments = [_fragment_path(plan.path(piece.shard), n) for n in range(len(done))]
        result = _assemble_shard(plan.path(piece.shard), fragments, done)
        written[piece.split][plan.todo[piece.shard]] = result
        if on_shard_complete:
            on_shard_complete(result)
    if progress is not None:
        progress.close()
    return written


def _write_mpi_share(
    corpus: Corpus,
    plans: dict[str, _Plan],
    options: ShardOptions,
    world: World,
    on_shard_complete: Callable[[ShardResult], None] | None,
) -> dict[str, dict[int, ShardResult]]:
    """This rank's shards (``todo[rank::size]`` of each split), written in-process."""
    context = (corpus, options.sample_options())
    written: dict[str, dict[int, ShardResult]] = {}
    with one_thread():  # the same bytes as a pool worker's
        for split, plan in plans.items():
            written[split] = _write_mpi_split(context, split, plan, world, on_shard_complete)
    return written


def _write_mpi_split(
    context: tuple[Corpus, SampleOptions],
    split: str,
    plan: _Plan,
    world: World,
    on_shard_complete: Callable[[ShardResult], None] | None,
) -> dict[int, ShardResult]:
    written: dict[int, ShardResult] = {}
    for j in range(world.rank, len(plan.groups), world.size):
        pieces = _pieces(split, j, plan.path(j), plan.groups[j], len(plan.groups[j]))
        parts = [_prepare_piece(context, p) for p in pieces]
        result = _assemble_shard(plan.path(j), [p.fragment for p in pieces], parts)
        written[plan.todo[j]] = result
        if on_shard_complete:
            on_shard_complete(result)
    return written


def write_splits(
    corpus: Corpus,
    splits: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    options: ShardOptions = ShardOptions(),
    utterances_per_shard: int = 500,
    num_workers: int = 1,
    backend: Backend = "auto",
    on_shard_complete: Callable[[ShardResult], None] | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Write each of ``splits`` into ``<out_dir>/<split>``; return each split's summary.

    All splits are planned first, then their shards are written by one pool of
    ``num_workers`` processes (see :func:`write_split`), so small splits do not leave
    workers idle. ``progress`` shows utterances/s, audio hours/s and the ETA: a bar on
    a terminal, a log line every 30 s otherwise.
    """
    targets = {split: Path(out_dir) / split for split in splits}
    return _write(corpus, targets, options=options, utterances_per_shard=utterances_per_shard,
                  num_workers=num_workers, backend=backend, on_shard_complete=on_shard_complete,
                  progress=progress)


def write_split(
    corpus: Corpus,
    split: str,
    out_dir: str | os.PathLike[str],
    *,
    options: ShardOptions = ShardOptions(),
    utterances_per_shard: int = 500,
    num_workers: int = 1,
    backend: Backend = "auto",
    on_shard_complete: Callable[[ShardResult], None] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write ``split`` of ``corpus`` into ``out_dir``; return the summary (on every rank).

    Finished shards are kept as they are. ``num_workers`` processes prepare pieces of
    the shards (a few utterances each) and this process joins them into shard files in
    entry order, so the output does not depend on ``num_workers``. Under ``mpiexec -n
    N`` (``backend="auto"`` or ``"mpi"``) each of the N ranks writes its share of the
    shards in-process and rank 0 writes ``index.jsonl`` and ``summary.json``.
    ``on_shard_complete`` is called, on the process that wrote it, with each shard
    written in this run.
    """
    summaries = _write(corpus, {split: Path(out_dir)}, options=options,
                       utterances_per_shard=utterances_per_shard, num_workers=num_workers,
                       backend=backend, on_shard_complete=on_shard_complete, progress=progress)
    return summaries[split]


def _write(
    corpus: Corpus,
    targets: dict[str, Path],
    *,
    options: ShardOptions,
    utterances_per_shard: int,
    num_workers: int,
    backend: Backend,
    on_shard_complete: Callable[[ShardResult], None] | None,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    world = get_world(backend)
    start = time.perf_counter()
    local: dict[str, tuple[_Plan, dict[int, ShardResult], list[dict[str, str]], int]] = {}

    def plan_on_rank_0() -> dict[str, _Plan] | None:
        if world.rank != 0:
            return None
        for split, out in targets.items():
            local[split] = _plan_split(corpus, split, out, options, utterances_per_shard)
        return {split: planned[0] for split, planned in local.items()}

    names = ", ".join(repr(s) for s in targets)
    plans: dict[str, _Plan] = world.bcast(_collective(world, plan_on_rank_0, f"planning split {names}"))

    def write_mine() -> dict[str, dict[int, ShardResult]]:
        if world.comm is not None:
            return _write_mpi_share(corpus, plans, options, world, on_shard_complete)
        return _write_pool(corpus, plans, options, num_workers, on_shard_complete, progress)

    written = _collective(world, write_mine, f"writing shards of {names}")
    gathered = world.gather(written)

    def finish_on_rank_0() -> dict[str, dict[str, Any]] | None:
        if world.rank != 0:
            return None
        assert gathered is not None
        summaries = {}
        for split, out in targets.items():
            plan, results, screened, num_entries = local[split]
            for part in gathered:
                results.update(part[split])
            summaries[split] = _finish(
                out, split, options, plan, results, screened, num_entries,
                backend=world.backend, workers=world.size if world.comm else num_workers,
                seconds=time.perf_counter() - start,
            )
        return summaries

    return world.bcast(_collective(world, finish_on_rank_0, f"indexing split {names}"))


def _finish(
    out: Path,
    split: str,
    options: ShardOptions,
    plan: _Plan,
    results: dict[int, ShardResult],
    screened: list[dict[str, str]],
    num_entries: int,
    *,
    backend: str,
    workers: int,
    seconds: float,
) -> dict[str, Any]:
    """Write ``index.jsonl`` and ``summary.json`` from every shard's result."""
    ordered = [results[i] for i in sorted(results)]
    rows = [row for r in ordered for row in r.rows]
    rejected = screened + [rej for r in ordered for rej in r.rejected]
    write_jsonl(out / "index.jsonl", rows)
    audio_seconds = sum(r["duration"] for r in rows)
    summary = {
        "split": split,
        "num_entries": num_entries,
        "num_utterances": len(rows),
        "num_rejected": len(rejected),
        "rejected_counts": dict(sorted(Counter(r.get("code", "?") for r in rejected).items())),
        "hours": round(audio_seconds / 3600, 4),
        "num_shards": plan.num_shards,
        "utterances_per_shard": plan.utterances_per_shard,
        "target_shard_mb": options.target_shard_mb,
        "megabytes": round(sum(r.bytes for r in ordered) / 1e6, 3),
        "stored_original": sum(r.stored_original for r in ordered),
        "sample_rate": options.sample_rate,
        "backend": backend,
        "workers": workers,
        "rejected": rejected,
        "elapsed_seconds": round(seconds, 2),
    }
    write_json(out / "summary.json", summary)
    if rejected:
        log.warning(
            "%s: rejected %d of %d samples %s (see %s)",
            split, len(rejected), num_entries, summary["rejected_counts"], out / "summary.json",
        )
    if num_entries and not rows:
        raise ValueError(
            f"every one of the {num_entries} entries of split {split!r} was rejected "
            f"({summary['rejected_counts']}); read the reasons in {out / 'summary.json'} "
            "and fix the corpus or the ShardOptions"
        )
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
