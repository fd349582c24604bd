"""LJSpeech 1.1: one speaker reading non-fiction, 13,100 clips, 22,050 Hz 16-bit WAV.

Layout read (the archive unpacks into it)::

    <root>/LJSpeech-1.1/metadata.csv      <id>|<text>|<normalized text>, one clip a line
    <root>/LJSpeech-1.1/wavs/<id>.wav

``<root>`` may also be the ``LJSpeech-1.1`` folder itself. The third column (numbers,
ordinals and money written out in words) is the text, as ESPnet2's ``ljspeech/tts1``
recipe uses it; the speaker is ``LJ``. Splits as in that recipe: the clips sorted by
id, the last ``dev_size + test_size`` held out, ``dev`` the first ``dev_size`` of them
and ``test`` the rest (ESPnet2's ``eval1``); ``train`` all the others.

Usage::

    from espnet_data import write_split
    from espnet_data.corpora import LJSpeechCorpus

    corpus = LJSpeechCorpus(root="/data/corpora", download=True)   # or $LJSPEECH_ROOT
    write_split(corpus, "test", "data/test")

Missing under ``root``, the corpus is downloaded (``download: true``) from
``base_url``, then the ``mirrors`` in turn, resumably (an interrupted transfer
continues where it stopped), checked against its sha256 (the one torchaudio's
``LJSPEECH`` dataset pins) and extracted. A metadata line without its WAV file, a WAV
file without a metadata line, or a line that is not UTF-8 becomes a rejected sample
(with its key and reason) in the split's summary.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio import AudioError, read_audio
from ..corpus import Entry, check_split
from ..download import extract_archive, fetch

__all__ = [
    "ARCHIVE",
    "ARCHIVE_SHA256",
    "LJSPEECH_URL",
    "LJSpeechCorpus",
    "ROOT_ENV",
    "SPEAKER",
    "download_ljspeech",
    "read_metadata",
]

log = logging.getLogger(__name__)

Pathlike = str | os.PathLike[str]

LJSPEECH_URL = "https://data.keithito.com/data/speech"
ARCHIVE = "LJSpeech-1.1.tar.bz2"
#: sha256 of LJSpeech-1.1.tar.bz2 (as pinned by torchaudio.datasets.LJSPEECH)
ARCHIVE_SHA256 = "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"
FOLDER = "LJSpeech-1.1"
SAMPLE_RATE = 22050
SPEAKER = "LJ"
#: environment variable naming a folder that holds (or will hold) ``LJSpeech-1.1/``
ROOT_ENV = "LJSPEECH_ROOT"
DEFAULT_ROOT = "downloads"


def find_corpus_dir(root: Pathlike) -> Path | None:
    """``<root>/LJSpeech-1.1`` or ``<root>`` itself, whichever holds ``metadata.csv``."""
    root = Path(root)
    for candidate in (root / FOLDER, root):
        if (candidate / "metadata.csv").is_file():
            return candidate
    return None


def download_ljspeech(
    root: Pathlike,
    *,
    base_url: str = LJSPEECH_URL,
    mirrors: Sequence[str] = (),
    archive_dir: Pathlike | None = None,
    keep_archive: bool = False,
    retries: int = 3,
) -> Path:
    """Make ``<root>/LJSpeech-1.1`` exist; return it.

    Present already: nothing is fetched. Else ``LJSpeech-1.1.tar.bz2`` is fetched into
    ``archive_dir`` (default ``<root>/archives``) from ``base_url`` then ``mirrors``,
    resuming a partial file, checked against :data:`ARCHIVE_SHA256` and extracted.
    """
    root = Path(root)
    existing = find_corpus_dir(root)
    if existing is not None:
        log.info("LJSpeech is present in %s: not downloading it", existing)
        return existing
    archives = Path(archive_dir) if archive_dir is not None else root / "archives"
    archive = fetch(ARCHIVE, [base_url, *mirrors], archives, sha256=ARCHIVE_SHA256, retries=retries)
    extract_archive(archive, root)
    extracted = find_corpus_dir(root)
    if extracted is None:
        raise FileNotFoundError(
            f"{archive} did not contain {FOLDER}/metadata.csv: it is not the LJSpeech "
            f"archive; delete it and check base_url ({base_url})"
        )
    if not keep_archive:
        archive.unlink()
    return extracted


def _decode(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def read_metadata(corpus_dir: Pathlike) -> list[Entry]:
    """Entries of ``<corpus_dir>/metadata.csv`` plus WAVs it lacks, sorted by id.

    Audio is not read. Bad clips are listed all the same, so the shard writer rejects
    them with their key and reason instead of stopping: a line without a text column,
    or a WAV without a line, has no text (``missing_transcript``); a line that is not
    UTF-8 keeps its bytes (``bad_text_encoding``); a line without its WAV keeps the
    path (``load_audio`` says it is missing); an id given twice appears twice (the
    second is a ``duplicate_key``). A line with two columns (no normalized text) uses
    the second one, with a warning.
    """
    folder = Path(corpus_dir).resolve()
    metadata = folder / "metadata.csv"
    if not metadata.is_file():
        raise FileNotFoundError(f"{metadata} not found: {folder} is not an LJSpeech-1.1 folder")
    wavs = folder / "wavs"
    rows: list[tuple[str, str | bytes | None, int]] = []
    for lineno, raw in enumerate(metadata.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        columns = raw.rstrip(b"\r").split(b"|")
        key = columns[0].strip().decode("utf-8", errors="replace")
        text: str | bytes | None = None
        if len(columns) >= 3:
            text = _decode(columns[2].strip())
        elif len(columns) == 2:
            log.warning("%s:%d: %s has no normalized text; using its text column", metadata, lineno, key)
            text = _decode(columns[1].strip())
        rows.append((key, text, lineno))
    listed = {key for key, _, _ in rows}
    unlisted = sorted(p.stem for p in wavs.glob("*.wav") if p.stem not in listed) if wavs.is_dir() else []
    if unlisted:
        log.warning("%d WAV files in %s have no line in %s, e.g. %s", len(unlisted), wavs, metadata, unlisted[0])
    rows.extend((key, None, 0) for key in unlisted)
    rows.sort(key=lambda r: (r[0], r[2]))
    return [
        Entry(key, text, SPEAKER, str(wavs / f"{key}.wav")) for key, text, _ in rows
    ]


@dataclass
class LJSpeechCorpus:
    """LJSpeech 1.1 from a local copy, downloaded on demand.

    Args:
        root: folder holding ``LJSpeech-1.1/`` (or that folder itself). ``None``: the
            ``LJSPEECH_ROOT`` environment variable, else ``downloads`` (relative to the
            working directory: the recipe folder).
        dev_size: clips of the ``dev`` split (taken from the end, before ``test``'s).
        test_size: clips of the ``test`` split (the last ones by id).
        download: fetch the corpus when it is missing under ``root``; ``False`` makes
            a missing corpus an error that says where it was looked for.
        base_url: where ``LJSpeech-1.1.tar.bz2`` is fetched from first.
        mirrors: base URLs tried in turn when ``base_url`` fails.
        archive_dir: where the archive is downloaded (default ``<root>/archives``).
        keep_archive: keep the ``.tar.bz2`` (2.6 GB) after it was extracted.
        retries: attempts per URL after a dropped connection, each resuming the file.
    """

    root: str | None = None
    dev_size: int = 250
    test_size: int = 250
    download: bool = False
    base_url: str = LJSPEECH_URL
    mirrors: list[str] = field(default_factory=list)
    archive_dir: str | None = None
    keep_archive: bool = False
    retries: int = 3

    def __post_init__(self) -> None:
        if self.dev_size < 0 or self.test_size < 0:
            raise ValueError(f"dev_size={self.dev_size} and test_size={self.test_size} must be >= 0")

    def splits(self) -> list[str]:
        return ["train", "dev", "test"]

    def root_dir(self) -> Path:
        """``root``, else ``$LJSPEECH_ROOT``, else ``downloads``."""
        return Path(self.root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT).expanduser()

    def corpus_dir(self) -> Path:
        """The ``LJSpeech-1.1`` folder, downloaded first if allowed."""
        root = self.root_dir()
        found = find_corpus_dir(root)
        if found is not None:
            return found
        if not self.download:
            source = "root" if self.root else (f"${ROOT_ENV}" if os.environ.get(ROOT_ENV) else "default root")
            raise FileNotFoundError(
                f"LJSpeech not found under {root.resolve()} ({source}): looked for "
                f"{root / FOLDER / 'metadata.csv'}. Point root (data.yaml) or ${ROOT_ENV} at "
                f"the folder that holds {FOLDER}/, or set download: true to fetch it (2.6 GB)"
            )
        return download_ljspeech(
            root, base_url=self.base_url, mirrors=self.mirrors, archive_dir=self.archive_dir,
            keep_archive=self.keep_archive, retries=self.retries,
        )

    def entries(self, split: str) -> list[Entry]:
        check_split(self, split)
        entries = read_metadata(self.corpus_dir())
        held = self.dev_size + self.test_size
        if held >= len(entries):
            raise ValueError(
                f"dev_size={self.dev_size} + test_size={self.test_size} leaves no training clip: "
                f"{self.corpus_dir()} lists {len(entries)}; lower them"
            )
        cut = len(entries) - held
        if split == "train":
            return entries[:cut]
        if split == "dev":
            return entries[cut : cut + self.dev_size]
        return entries[cut + self.dev_size :]

    def load_audio(self, entry: Entry) -> tuple[np.ndarray, int]:
        path = Path(entry.source)
        if not path.is_file():
            raise AudioError(f"missing audio file {path} (metadata.csv lists {entry.key})")
        return read_audio(path)
