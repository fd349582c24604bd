"""lhotse manifests as a corpus: a ``CutSet``, or a ``RecordingSet`` with a ``SupervisionSet``.

Per split, either a cuts manifest (``cuts.jsonl.gz``, as ``CutSet.to_file`` writes it)
or a recordings and a supervisions manifest (``recordings.jsonl.gz`` +
``supervisions.jsonl.gz``). The manifests are read as the JSON lhotse writes
(``.jsonl``, ``.jsonl.gz``, or a ``.json`` list), so lhotse itself is not needed, nor
imported. One entry per supervision segment (``unit: supervision``: key = the
supervision's id, text and speaker its own) or per cut (``unit: cut``: the cut's id, its
supervisions' texts joined in time order; with recordings + supervisions a cut is a
whole recording). Only the segment's frames are read, from the recording's audio file
(source type ``file``; a path relative to the working directory, as lhotse reads it),
on the supervision's channel(s) (several are averaged) or the one ``channel`` names.

Refused with a reason (the shard writer lists the entry with its key; the job goes on):
a recording whose audio is not a file (a URL, a command, in memory, in a Shar tar:
write the audio to files first, ``CutSet.save_audios``), a recording with a transform
other than resampling (speed or volume perturbation: the shard writer resamples by
itself), a mixed or padding cut, a supervision whose recording is not in the manifest,
a segment outside its recording, a missing audio file, a line that is not JSON.

Usage::

    from espnet_data import write_split
    from espnet_data.corpora import LhotseCorpus

    corpus = LhotseCorpus(cuts={"train": "data/cuts_train.jsonl.gz",
                                "dev": "data/cuts_dev.jsonl.gz"})
    write_split(corpus, "dev", "data/dev")
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..corpus import Entry, check_split
from ._spans import Channels, Span, channel_tuple, check_times, read_span, safe_key
from ._tables import Unusable

__all__ = ["LhotseCorpus", "read_lhotse_manifest"]

_READABLE_CUTS = {"MonoCut", "MultiCut", "Cut"}  # "Cut": MonoCut's name before lhotse 1.0


def read_lhotse_manifest(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``(line number, item)`` for each item of a lhotse manifest; the item is the
    reason (a string) where a line is not a JSON object."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    jsonl = ".jsonl" in path.suffixes
    with opener(path, "rb") as f:
        if not jsonl:  # a .json list, lhotse's older format
            items = json.load(f)
            if not isinstance(items, list):
                raise ValueError(f"{path} holds no JSON list of manifest items")
            yield from ((n, item if isinstance(item, dict) else "not a JSON object")
                        for n, item in enumerate(items, 1))
            return
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                yield lineno, f"{path.name} line {lineno} is not JSON ({err})"
                continue
            yield lineno, item if isinstance(item, dict) else f"{path.name} line {lineno} is not a JSON object"


def _audio_file(rec: dict[str, Any], wanted: Channels) -> tuple[str, Channels] | str:
    """The file holding ``wanted`` channels of recording ``rec`` and their indices in it,
    or why it cannot be read."""
    rid = rec.get("id")
    other = [t.get("name") for t in rec.get("transforms") or [] if t.get("name") != "Resample"]
    if other:
        return (f"recording {rid} has transforms {other}: apply them with lhotse and save "
                "the audio (cuts.save_audios), or drop the transforms")
    sources = rec.get("sources") or []
    every = sorted({c for s in sources for c in s.get("channels") or []})
    want = tuple(every) if wanted is None else (wanted,) if isinstance(wanted, int) else wanted
    for source in sources:
        have = list(source.get("channels") or [])
        if not set(want) <= set(have):
            continue
        kind, where = source.get("type"), source.get("source")
        if kind != "file" or not isinstance(where, str):
            return (f"recording {rid}'s audio is a {kind!r} source, not a file; write the "
                    "audio to files first (lhotse: cuts.save_audios(...))")
        index = tuple(have.index(c) for c in want)
        return where, None if len(index) == len(have) else index[0] if len(index) == 1 else index
    return (f"recording {rid} has no audio source holding channel(s) {list(want)} "
            f"(its sources hold {[s.get('channels') for s in sources]})")


def _span(rec: dict[str, Any], start: Any, duration: Any, channel: Any, what: str,
          forced: int | None) -> Span | Unusable:
    wanted = channel_tuple(channel) if forced is None else forced
    if isinstance(wanted, str):
        return Unusable(f"{what}: {wanted}")
    if reason := check_times(start, duration, what):
        return Unusable(reason)
    found = _audio_file(rec, wanted)
    if isinstance(found, str):
        return Unusable(f"{what}: {found}")
    return Span(found[0], float(start), None if duration is None else float(duration), found[1])


def _joined(sups: list[dict[str, Any]]) -> tuple[str | None, str]:
    """A cut's text (its supervisions' in time order; ``None`` if one has none) and
    speaker (theirs when they share one)."""
    sups = sorted(sups, key=lambda s: s.get("start") or 0.0)
    texts = [s.get("text") for s in sups]
    text = None if not texts or any(t is None for t in texts) else " ".join(texts)
    speakers = {s.get("speaker") or "" for s in sups}
    return text, speakers.pop() if len(speakers) == 1 else ""


@dataclass
class LhotseCorpus:
    """lhotse manifests, per split a cuts manifest or recordings + supervisions.

    Args:
        cuts: split name -> a ``CutSet`` manifest (``cuts.jsonl.gz``).
        recordings: split name -> a ``RecordingSet`` manifest (with ``supervisions``).
        supervisions: split name -> a ``SupervisionSet`` manifest (with ``recordings``).
        unit: one entry per ``supervision`` segment, or per ``cut`` (its supervisions'
            texts joined).
        channel: the recording channel to read for every entry; ``None``: each
            supervision's (or cut's) own channel(s), averaged when several.
    """

    cuts: dict[str, str] | None = None
    recordings: dict[str, str] | None = None
    supervisions: dict[str, str] | None = None
    unit: Literal["supervision", "cut"] = "supervision"
    channel: int | None = None

    def __post_init__(self) -> None:
        if self.unit not in ("supervision", "cut"):
            raise ValueError(f"unit={self.unit!r}; choose 'supervision' or 'cut'")
        recs, sups = set(self.recordings or {}), set(self.supervisions or {})
        if recs != sups:
            raise ValueError(
                f"splits {sorted(recs ^ sups)} have a recordings or a supervisions manifest "
                "but not both: give both for each split (or a cuts manifest)"
            )
        both = recs & set(self.cuts or {})
        if both:
            raise ValueError(f"splits {sorted(both)} have cuts and recordings: give one of them")
        if not self.splits():
            raise ValueError("LhotseCorpus needs cuts, or recordings and supervisions, per split")

    def splits(self) -> list[str]:
        return [*(self.cuts or {}), *(self.recordings or {})]

    def entries(self, split: str) -> list[Entry]:
        check_split(self, split)
        if self.cuts and split in self.cuts:
            return self._from_cuts(Path(self.cuts[split]))
        assert self.recordings is not None and self.supervisions is not None
        return self._from_sets(Path(self.recordings[split]), Path(self.supervisions[split]))

    def _from_cuts(self, path: Path) -> list[Entry]:
        entries: list[Entry] = []
        seen: set[tuple[Any, ...]] = set()
        for lineno, cut in read_lhotse_manifest(_existing(path)):
            if isinstance(cut, str):
                entries.append(_refused(f"{safe_key(path.name)}-line{lineno:06d}", cut))
                continue
            cid, sups, rec = str(cut.get("id")), cut.get("supervisions") or [], cut.get("recording")
            what = f"cut {cid}"
            kind = cut.get("type", "MonoCut")
            problem = (f"{what} is a {kind}: only cuts of one recording are read (mix it "
                       "with lhotse and save the audio first)") if kind not in _READABLE_CUTS else (
                       f"{what} has no recording") if not isinstance(rec, dict) else ""
            if problem and (self.unit == "cut" or not sups):
                entries.append(_refused(safe_key(cid), problem))
                continue
            if self.unit == "cut":
                text, speaker = _joined(sups)
                source = _span(rec, cut.get("start", 0.0), cut.get("duration"), cut.get("channel"),
                               what, self.channel)
                entries.append(Entry(safe_key(cid), text, speaker, source=source))
                continue
            if not sups:  # listed, so that it is counted (missing_transcript), not lost
                entries.append(Entry(safe_key(cid), None, source=Unusable(f"{what} has no supervision")))
            for sup in sups:
                start = _offset(cut.get("start"), sup.get("start"))
                ident = (sup.get("id"), sup.get("recording_id"), start, sup.get("duration"))
                if ident in seen:  # the same segment in two overlapping cuts: once
                    continue
                seen.add(ident)
                source = Unusable(problem) if problem else _span(
                    rec, start, sup.get("duration"), sup.get("channel"), f"supervision {sup.get('id')}",
                    self.channel)
                entries.append(self._entry(sup, source))
        return entries

    def _from_sets(self, rec_path: Path, sup_path: Path) -> list[Entry]:
        entries: list[Entry] = []
        recordings: dict[str, dict[str, Any]] = {}
        for lineno, rec in read_lhotse_manifest(_existing(rec_path)):
            if isinstance(rec, str):
                entries.append(_refused(f"{safe_key(rec_path.name)}-line{lineno:06d}", rec))
            else:
                recordings.setdefault(str(rec.get("id")), rec)
        by_recording: dict[str, list[dict[str, Any]]] = {}
        for lineno, sup in read_lhotse_manifest(_existing(sup_path)):
            if isinstance(sup, str):
                entries.append(_refused(f"{safe_key(sup_path.name)}-line{lineno:06d}", sup))
                continue
            rid = str(sup.get("recording_id"))
            by_recording.setdefault(rid, []).append(sup)
            if self.unit == "cut":
                continue
            what = f"supervision {sup.get('id')}"
            rec = recordings.get(rid)
            source = Unusable(f"{what}: its recording {rid} is not in {rec_path}") if rec is None else _span(
                rec, sup.get("start"), sup.get("duration"), sup.get("channel"), what, self.channel)
            entries.append(self._entry(sup, source))
        if self.unit == "cut":
            for rid, rec in recordings.items():
                text, speaker = _joined(by_recording.get(rid, []))
                source = _span(rec, 0.0, None, None, f"recording {rid}", self.channel)
                entries.append(Entry(safe_key(rid), text, speaker, source=source))
            for rid in by_recording.keys() - recordings.keys():
                reason = f"supervisions of recording {rid}, which is not in {rec_path}"
                entries.append(Entry(safe_key(rid), _joined(by_recording[rid])[0], source=Unusable(reason)))
        return entries

    @staticmethod
    def _entry(sup: dict[str, Any], source: Span | Unusable) -> Entry:
        extra = {"recording": str(sup.get("recording_id"))}
        return Entry(safe_key(str(sup.get("id"))), sup.get("text"), sup.get("speaker") or "",
                     source=source, extra=extra)

    def load_audio(self, entry: Entry) -> tuple[np.ndarray, int]:
        source = entry.source
        if isinstance(source, Unusable):
            source.raise_()
        return read_span(source.path, source.start, source.duration, source.channels)


def _refused(key: str, reason: str) -> Entry:
    """An entry the writer always refuses; its text is the reason, so that the reason
    (not a missing transcript) is what the split's summary lists."""
    return Entry(key, reason, source=Unusable(reason))


def _offset(cut_start: Any, sup_start: Any) -> Any:
    """A supervision's start in its recording (``sup_start`` is relative to its cut);
    a value that is not a number is passed on for :func:`check_times` to name."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (cut_start, sup_start))
    return cut_start + sup_start if numbers else sup_start


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"lhotse manifest {path} does not exist")
    return path
