"""Kaldi-style data directories (as ESPnet2 prepares them) as a corpus.

One directory per split, each with::

    wav.scp    <recording-id> <path>                  a file soundfile reads
               <recording-id> <command> |             a pipe writing audio to stdout
               <recording-id> <ark-path>:<offset>      a WAV inside a Kaldi ark
    text       <utterance-id> <TRANSCRIPT>
    utt2spk    <utterance-id> <speaker-id>            (optional)
    segments   <utterance-id> <recording-id> <start> <end>   (optional; seconds,
               end -1 = to the end of the recording)

Without ``segments`` an utterance is a whole recording (utterance id = recording id).
Pipes (``sox in.sph -t wav - |``, ``flac -dc x.flac |``, any shell command) run
through ``bash -o pipefail``; relative paths are relative to the working directory, as
in Kaldi (the recipe folder when run by ``espnet-run``). Every utterance named by any
of the files is listed, in sorted order; one without text, without its recording,
with an impossible segment or a line that is not UTF-8 is rejected by the shard writer
with its key and reason. The first line of a key counts; a later line of the same key
adds a second entry that the writer rejects as a duplicate.

Usage::

    from espnet_data.corpora import KaldiDirCorpus

    corpus = KaldiDirCorpus(dirs={"train": "data/train_nodev", "dev": "data/train_dev",
                                  "test": "data/test"})
    corpus.entries("train")
"""

from __future__ import annotations

import logging
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import AudioError, check_finite, read_audio, to_mono
from ..corpus import Entry, check_split
from ._tables import CorpusError, Unusable, index_table

log = logging.getLogger(__name__)

#: a segment may end this far past its recording (Kaldi's extract-segments --max-overshoot)
MAX_OVERSHOOT = 0.5
_ARK_OFFSET = re.compile(r"(?P<path>.+):(?P<offset>\d+)")


@dataclass(frozen=True)
class Recording:
    """One line of ``wav.scp``: a file, a file inside an ark, or a shell pipe."""

    rec: str
    path: str = ""
    offset: int | None = None  # byte offset of a WAV inside a Kaldi ark
    command: str = ""  # a pipe; its stdout is the audio


@dataclass(frozen=True)
class Segment:
    """The source of an entry: part of a recording (``end`` None: to its end)."""

    recording: Recording
    start: float = 0.0
    end: float | None = None


def parse_wav_scp_value(rec: str, value: str) -> Recording:
    """The :class:`Recording` a ``wav.scp`` value describes."""
    if value.endswith("|"):
        return Recording(rec, command=value[:-1].strip())
    match = _ARK_OFFSET.fullmatch(value)
    if match and not Path(value).exists():
        return Recording(rec, path=match["path"], offset=int(match["offset"]))
    return Recording(rec, path=value)


def parse_segment(value: str, recordings: dict[str, Recording]) -> Segment | str:
    """A ``segments`` value ``<rec> <start> <end>`` as a :class:`Segment`, or why not."""
    parts = value.split()
    if len(parts) != 3:
        return f"segments line {value!r} needs <recording-id> <start> <end>"
    rec, start_s, end_s = parts
    try:
        start, end = float(start_s), float(end_s)
    except ValueError:
        return f"segment times {start_s!r} {end_s!r} are not numbers"
    if not (np.isfinite(start) and np.isfinite(end)) or start < 0:
        return f"segment start {start_s} must be a number >= 0"
    if end != -1 and end <= start:
        return f"segment end {end_s} is not after its start {start_s}"
    if rec not in recordings:
        return f"recording {rec} of the segment is not in wav.scp"
    return Segment(recordings[rec], start, None if end == -1 else end)


def _run_pipe(command: str, timeout: float) -> bytes:
    shell = ["bash", "-o", "pipefail", "-c"] if shutil.which("bash") else ["sh", "-c"]
    try:
        proc = subprocess.run(
            [*shell, command], capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise AudioError(f"wav.scp command {command!r} ran past {timeout:.0f} s") from err
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-300:]
        raise AudioError(f"wav.scp command {command!r} exited with {proc.returncode}: {tail}")
    if not proc.stdout:
        raise AudioError(f"wav.scp command {command!r} wrote no audio to stdout")
    return proc.stdout


def _fill_streamed_wav_sizes(blob: bytes) -> bytes:
    """A WAV written to a pipe may declare 0 bytes of data (its writer could not seek
    back to fill the sizes in) and would decode as empty: declare what arrived."""
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        return blob
    pos = 12
    while pos + 8 <= len(blob):
        chunk, size = blob[pos : pos + 4], struct.unpack("<I", blob[pos + 4 : pos + 8])[0]
        if chunk == b"data":
            have = len(blob) - pos - 8
            if size != 0 or have == 0:
                return blob
            fixed = bytearray(blob)
            fixed[pos + 4 : pos + 8] = struct.pack("<I", have)
            fixed[4:8] = struct.pack("<I", len(blob) - 8)
            return bytes(fixed)
        pos += 8 + size + (size & 1)
    return blob


def _read_ark_wav(path: str, offset: int) -> bytes:
    """The RIFF/WAV blob stored at ``offset`` of a Kaldi ark file."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            head = f.read(8)
            if len(head) < 8 or head[:4] != b"RIFF":
                raise AudioError(
                    f"{path}:{offset} is not a WAV in an ark (no RIFF header there); only "
                    "wav arks hold audio: write files with wav-copy or use a pipe"
                )
            return head + f.read(struct.unpack("<I", head[4:])[0])
    except FileNotFoundError as err:
        raise AudioError(f"ark file {path} does not exist") from err


def _check_range(start: int, stop: int, frames: int, rate: int, seg: Segment) -> int:
    """The stop frame clipped to the recording; an error for a segment outside it."""
    length = frames / rate
    if start >= frames:
        raise CorpusError(
            f"segment starts at {seg.start:.2f} s, after the end of recording "
            f"{seg.recording.rec} ({length:.2f} s)"
        )
    if stop > frames + MAX_OVERSHOOT * rate:
        raise CorpusError(
            f"segment ends at {seg.end:.2f} s, past the end of recording "
            f"{seg.recording.rec} ({length:.2f} s)"
        )
    return min(stop, frames)


@dataclass
class KaldiDirCorpus:
    """Kaldi/ESPnet2 data directories, one per split.

    Args:
        dirs: split name -> data directory (``wav.scp``, ``text``, optional ``utt2spk``
            and ``segments``).
        pipe_timeout: seconds a ``wav.scp`` command may run before its utterance is
            rejected.
        channel: which channel of a multi-channel recording to use (0 is the first);
            ``None`` (the default) averages the channels, so speech recorded on one
            channel only is kept.
    """

    dirs: dict[str, str]
    pipe_timeout: float = 600.0
    channel: int | None = None
    # the last recording a pipe or ark produced: segments of one recording follow each
    # other, so a pipe runs once for its consecutive segments in a shard, not once per
    # segment (not pickled: every shard job starts empty)
    _cache: tuple[Recording, np.ndarray, int] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.dirs:
            raise ValueError("KaldiDirCorpus needs dirs: a mapping split -> data directory")

    def splits(self) -> list[str]:
        return list(self.dirs)

    def _dir(self, split: str) -> Path:
        check_split(self, split)
        folder = Path(self.dirs[split])
        for name in ("wav.scp", "text"):
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    f"{folder / name} is missing: dirs[{split!r}] must be a Kaldi data "
                    "directory with wav.scp, text and (optionally) utt2spk and segments"
                )
        return folder

    def entries(self, split: str) -> list[Entry]:
        folder = self._dir(split)
        scp = index_table(folder / "wav.scp")
        recordings = {rec: parse_wav_scp_value(rec, value) for rec, value in scp.values.items()}
        text = index_table(folder / "text")
        utt2spk = index_table(folder / "utt2spk") if (folder / "utt2spk").is_file() else None
        has_segments = (folder / "segments").is_file()
        sources: dict[str, Segment | Unusable | str] = {}
        if has_segments:
            segments = index_table(folder / "segments")
            for utt, value in segments.values.items():
                seg = parse_segment(value, recordings)
                sources[utt] = Unusable(seg) if isinstance(seg, str) else seg
            # a recording's problem concerns the segments cut from it
            problems = {
                utt: scp.problems[s.recording.rec]
                for utt, s in sources.items()
                if isinstance(s, Segment) and s.recording.rec in scp.problems
            } | segments.problems
            repeats = segments.repeats
        else:
            for rec, recording in recordings.items():
                plain = recording.path and recording.offset is None
                sources[rec] = recording.path if plain else Segment(recording)
            problems, repeats = scp.problems, scp.repeats
        speakers = utt2spk.values if utt2spk else {}
        if utt2spk:
            problems = problems | utt2spk.problems
            repeats = repeats + utt2spk.repeats
        problems = problems | text.problems
        repeated: dict[str, list[str]] = {}
        for key, reason in repeats + text.repeats:
            repeated.setdefault(key, []).append(reason)
        entries = []
        for key in sorted(set(sources) | set(text.values) | set(speakers)):
            source = sources.get(key)
            if key in problems:
                source = Unusable(problems[key])
            elif source is None:
                where = "segments" if has_segments else "wav.scp"
                source = Unusable(f"utterance {key} has no recording: it is not in {where}")
            # text None: the shard writer rejects it as a missing transcript
            utt_text, speaker = text.values.get(key), speakers.get(key, "")
            entries.append(Entry(key, utt_text, speaker, source=source))  # type: ignore[arg-type]
            for reason in repeated.get(key, []):
                # a second entry of the key: the writer keeps the first, rejects this one
                log.warning("%s: %s", folder, reason)
                entries.append(Entry(key, utt_text, speaker, source=Unusable(reason)))  # type: ignore[arg-type]
        return entries

    def load_audio(self, entry: Entry) -> tuple[np.ndarray, int]:
        source = entry.source
        if isinstance(source, Unusable):
            source.raise_()
        if isinstance(source, str):
            if not Path(source).is_file():
                raise AudioError(f"audio file {source} (wav.scp of {entry.key}) does not exist")
            return read_audio(source, channel=self.channel)
        if source.recording.path and source.recording.offset is None:
            return self._read_file_segment(source)
        audio, rate = self._recording(source.recording)
        start = round(source.start * rate)
        stop = len(audio) if source.end is None else round(source.end * rate)
        stop = _check_range(start, stop, len(audio), rate, source)
        return audio[start:stop], rate

    def _read_file_segment(self, seg: Segment) -> tuple[np.ndarray, int]:
        """Read only the segment's frames of a file."""
        path = seg.recording.path
        if not Path(path).is_file():
            raise AudioError(f"audio file {path} (recording {seg.recording.rec}) does not exist")
        try:
            info = sf.info(path)
            start = round(seg.start * info.samplerate)
            stop = info.frames if seg.end is None else round(seg.end * info.samplerate)
            stop = _check_range(start, stop, info.frames, info.samplerate, seg)
            audio, rate = sf.read(path, start=start, stop=stop, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            raise AudioError(f"cannot decode audio {path}: {err}") from err
        mono = to_mono(audio, self.channel, name=path)
        check_finite(mono, f"{path} (recording {seg.recording.rec})")
        return mono, int(rate)

    def _recording(self, recording: Recording) -> tuple[np.ndarray, int]:
        """A whole recording from a pipe or an ark, through the one-recording cache."""
        if self._cache is not None and self._cache[0] == recording:
            return self._cache[1], self._cache[2]
        if recording.command:
            blob = _fill_streamed_wav_sizes(_run_pipe(recording.command, self.pipe_timeout))
        else:
            assert recording.offset is not None
            blob = _read_ark_wav(recording.path, recording.offset)
        audio, rate = read_audio(blob, channel=self.channel, name=f"recording {recording.rec}")
        self._cache = (recording, audio, rate)
        return audio, rate

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_cache": None}
