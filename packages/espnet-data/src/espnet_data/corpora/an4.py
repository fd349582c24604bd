"""AN4 (CMU census database) in its original layout: NIST SPHERE audio + etc/ lists.

Layout of ``an4_sphere.tar.gz`` (64 MB; 948 training and 130 test utterances of 74 + 10
speakers spelling names, saying numbers, dates and commands, 16 kHz)::

    an4/wav/an4_clstk/<speaker>/<utt>.sph        # training audio
    an4/wav/an4test_clstk/<speaker>/<utt>.sph    # test audio
    an4/etc/an4_train.fileids                    # an4_clstk/fash/an251-fash-b
    an4/etc/an4_train.transcription              # <s> YES </s> (an251-fash-b)
    an4/etc/an4_test.fileids
    an4/etc/an4_test.transcription               # ELEVEN TWENTY SEVEN (cen8-fcaw-b)

Splits: ``train``, ``dev`` (whole training speakers held out of train) and ``test``.
Keys are AN4's utterance ids. An utterance listed in a fileids file, a transcription
file or found as a ``.sph`` on disk, but lacking its transcript or audio, is still
listed: the shard writer rejects it with its key and reason.

Usage::

    from espnet_data.corpora import AN4Corpus

    corpus = AN4Corpus(root="downloads")            # holds an4/ (or $AN4_ROOT)
    corpus = AN4Corpus(root="downloads", download=True)  # fetch it first if missing
    entries = corpus.entries("train")
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import AudioError, read_audio
from ..corpus import Entry, check_split
from ..download import download as download_file
from ..download import extract_archive
from ._tables import Unusable, read_table

log = logging.getLogger(__name__)

#: CMU serves the archive over https as well as http; https keeps it from being altered in transit
AN4_URL = "https://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"
ROOT_ENV = "AN4_ROOT"

#: split -> (audio folder under wav/, etc/ file stem)
_SOURCES = {"train": ("an4_clstk", "an4_train"), "test": ("an4test_clstk", "an4_test")}
#: markers in the transcriptions that are not words
_NON_WORDS = frozenset({"<s>", "</s>", "<sil>"})
_TRANSCRIPT = re.compile(r"^(?P<text>.*?)\s*\((?P<id>[^()\s]+)\)\s*$")


def parse_transcription(line: str) -> tuple[str, str] | None:
    """``(utt_id, TEXT)`` of one transcription line, with or without ``<s> ... </s>``;
    ``None`` when the line does not end in ``(utt-id)``."""
    match = _TRANSCRIPT.match(line.strip())
    if not match:
        return None
    words = [w for w in match["text"].split() if w.lower() not in _NON_WORDS]
    return match["id"], " ".join(words)


@dataclass(frozen=True)
class _Utterance:
    key: str
    speaker: str
    text: str | None
    audio: Path
    problem: str = ""
    repeats: tuple[str, ...] = ()  # why each later transcription line of the key is refused


@dataclass
class AN4Corpus:
    """The AN4 corpus read from its original layout.

    Args:
        root: folder that holds ``an4/`` (or the ``an4`` folder itself). ``None`` reads
            the ``AN4_ROOT`` environment variable.
        dev_speakers: training speakers held out as the ``dev`` split: a count (spread
            evenly over the sorted speaker ids, so both ``f*`` and ``m*`` speakers go)
            or a list of speaker ids; ``0`` or ``[]`` gives no dev split.
        download: fetch ``url`` into ``root`` and unpack it when ``root`` has no AN4.
        url: where the archive comes from (any ``https://``, ``http://`` or ``file://``
            URL).
        sha256: the archive's checksum, checked when given. CMU publishes none: without
            it the first download's sha256 is recorded in ``an4_sphere.tar.gz.sha256``
            next to the archive (with a warning) and later downloads must match it.
    """

    root: str | None = None
    dev_speakers: int | list[str] = 7
    download: bool = False
    url: str = AN4_URL
    sha256: str | None = None

    def splits(self) -> list[str]:
        has_dev = self.dev_speakers if isinstance(self.dev_speakers, list) else self.dev_speakers > 0
        return ["train", "dev", "test"] if has_dev else ["train", "test"]

    def an4_dir(self) -> Path:
        """The ``an4`` folder (with ``etc/`` and ``wav/``); downloads it when allowed."""
        root = self.root or os.environ.get(ROOT_ENV)
        if not root:
            raise ValueError(
                f"AN4Corpus has no root: set corpus.init_args.root in data.yaml or the "
                f"{ROOT_ENV} environment variable to the folder that holds an4/ (from "
                f"{AN4_URL}), or set root and download: true to fetch it there"
            )
        for candidate in (Path(root) / "an4", Path(root)):
            if (candidate / "etc" / "an4_train.fileids").is_file():
                return candidate
        if self.download:
            return download_an4(root, url=self.url, sha256=self.sha256)
        raise FileNotFoundError(
            f"no AN4 corpus under {root}: expected {Path(root) / 'an4/etc/an4_train.fileids'} "
            f"(root {root!r}{'' if self.root else ' from $' + ROOT_ENV}); unpack "
            f"{AN4_URL} there, or set download: true"
        )

    def prepare(self) -> Path:
        """Make sure the corpus is on disk (download and unpack when allowed)."""
        return self.an4_dir()

    def _utterances(self, source: str) -> list[_Utterance]:
        """Every utterance of ``train`` or ``test``, joined over fileids, transcription
        and the ``.sph`` files on disk."""
        an4 = self.an4_dir()
        audio_dir, stem = _SOURCES[source]
        fileids_path = an4 / "etc" / f"{stem}.fileids"
        trans_path = an4 / "etc" / f"{stem}.transcription"
        paths: dict[str, Path] = {}
        problems: dict[str, str] = {}
        if fileids_path.is_file():
            for row in read_table(fileids_path):
                key = Path(row.key).name
                paths.setdefault(key, an4 / "wav" / f"{row.key}.sph")
                if row.error:
                    problems[key] = row.error
        else:
            log.warning("%s is missing: listing the .sph files on disk", fileids_path)
        texts: dict[str, str] = {}
        repeats: dict[str, list[str]] = {}
        if not trans_path.is_file():
            raise FileNotFoundError(f"{trans_path} is missing: is {an4} a complete AN4 copy?")
        with open(trans_path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parsed = parse_transcription(line)
                if parsed is None:
                    log.warning("%s:%d has no (utt-id) at its end; skipped: %r",
                                trans_path, lineno, line.strip())
                    continue
                key, text = parsed  # U+FFFD from a non-UTF-8 line: the writer rejects it
                if key in texts:  # the first line counts, as the shard writer keeps the first
                    reason = f"{trans_path.name} line {lineno} repeats utterance {key}"
                    repeats.setdefault(key, []).append(reason)
                    continue
                texts[key] = text
        on_disk = {p.stem: p for p in sorted((an4 / "wav" / audio_dir).glob("*/*.sph"))}
        keys = list(paths) + sorted((set(texts) | set(on_disk)) - set(paths))
        utts = []
        for key in keys:
            path = paths.get(key) or on_disk.get(key) or _guess_path(an4, audio_dir, key)
            utts.append(
                _Utterance(
                    key, path.parent.name, texts.get(key), path, problems.get(key, ""),
                    tuple(repeats.get(key, ())),
                )
            )
        return utts

    def speakers(self, split: str) -> list[str]:
        """The sorted speaker ids of a split."""
        return sorted({u.speaker for u in self._split(split)})

    def _dev_speakers(self, train: list[_Utterance]) -> set[str]:
        speakers = sorted({u.speaker for u in train})
        if isinstance(self.dev_speakers, list):
            unknown = sorted(set(self.dev_speakers) - set(speakers))
            if unknown:
                raise ValueError(
                    f"dev_speakers {unknown} are not AN4 training speakers; choose from {speakers}"
                )
            return set(self.dev_speakers)
        n = self.dev_speakers
        if n <= 0:
            return set()
        if n >= len(speakers):
            raise ValueError(
                f"dev_speakers: {n} would leave no training speaker (AN4 under "
                f"{self.an4_dir()} has {len(speakers)}); use fewer"
            )
        return {speakers[int((i + 0.5) * len(speakers) / n)] for i in range(n)}

    def _split(self, split: str) -> list[_Utterance]:
        check_split(self, split)
        if split == "test":
            return self._utterances("test")
        train = self._utterances("train")
        dev = self._dev_speakers(train)
        return [u for u in train if (u.speaker in dev) == (split == "dev")]

    def entries(self, split: str) -> list[Entry]:
        entries = []
        for u in self._split(split):
            source = Unusable(u.problem) if u.problem else str(u.audio)
            # text None: the shard writer rejects it as a missing transcript
            entries.append(Entry(u.key, u.text, u.speaker, source=source))  # type: ignore[arg-type]
            for reason in u.repeats:  # a second entry of the key: the writer rejects it
                log.warning("an4 %s: %s", split, reason)
                entries.append(Entry(u.key, u.text, u.speaker, source=Unusable(reason)))  # type: ignore[arg-type]
        return entries

    def load_audio(self, entry: Entry) -> tuple[np.ndarray, int]:
        if isinstance(entry.source, Unusable):
            entry.source.raise_()
        path = Path(entry.source)
        if not path.is_file():
            raise AudioError(f"audio file {path} is missing (listed in AN4's etc/ files)")
        return read_audio(path)


def download_an4(
    root: str | os.PathLike[str],
    *,
    url: str = AN4_URL,
    sha256: str | None = None,
    keep_archive: bool = True,
) -> Path:
    """Download ``an4_sphere.tar.gz`` into ``root`` and unpack it there; return ``root/an4``.

    Nothing is fetched when ``root/an4`` is already complete, and a download that was
    cut off resumes (see :mod:`espnet_data.download`). CMU publishes no checksum for
    the archive, so one is recorded: the first download's sha256 goes to
    ``root/an4_sphere.tar.gz.sha256`` (a warning says so and shows it), and every later
    download into ``root`` must match it (that file is kept when the archive is
    deleted). Give ``sha256`` to pin the copy you trust instead; it is checked and
    recorded. The transfer is also checked against the server's declared length and the
    gzip stream's CRC, and the archive's members before anything is extracted.
    """
    an4 = Path(root) / "an4"
    if (an4 / "etc" / "an4_train.fileids").is_file():
        log.info("AN4 is present in %s: not downloading it", an4)
        return an4
    archive = download_file(
        url, Path(root) / "an4_sphere.tar.gz", sha256=sha256, record_sha256=True
    )
    extract_archive(archive, root)
    if not (an4 / "etc" / "an4_train.fileids").is_file():
        raise FileNotFoundError(
            f"{archive} (from {url}) did not unpack into {an4}/etc/an4_train.fileids: "
            "is it the AN4 SPHERE archive? Delete it and check the url"
        )
    if not keep_archive:
        archive.unlink()
    return an4


def _guess_path(an4: Path, audio_dir: str, key: str) -> Path:
    """Where AN4 keeps an utterance that only the transcription names: the speaker is
    the middle part of its id (``an251-fash-b``)."""
    parts = key.split("-")
    speaker = parts[1] if len(parts) == 3 else "unknown"
    return an4 / "wav" / audio_dir / speaker / f"{key}.sph"
