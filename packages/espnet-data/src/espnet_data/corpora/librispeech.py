"""LibriSpeech (OpenSLR resource 12): read English audiobooks, 16 kHz FLAC.

Layout read (the archives unpack into it)::

    <root>/LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    <root>/LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt

``<root>`` may also be the ``LibriSpeech`` folder itself. Splits: ``train`` (the parts
chosen by ``train_set``: ``train-clean-100`` by default, ``train-960`` for the full 960
hours), ``dev`` (dev-clean + dev-other, for validation as in ESPnet2's recipes),
``dev-clean``, ``dev-other``, ``test-clean``, ``test-other``. Keys are LibriSpeech's own
utterance ids ``<speaker>-<chapter>-<utt>``.

Usage::

    from espnet_data import write_split
    from espnet_data.corpora import LibriSpeechCorpus

    corpus = LibriSpeechCorpus(root="/data/corpora", download=True)   # or $LIBRISPEECH_ROOT
    write_split(corpus, "dev-clean", "data/dev-clean")

A part missing under ``<root>`` is downloaded (``download: true``) from ``base_url``,
then the ``mirrors`` in turn, checked against its published md5 and extracted; a part
already there is used as it is. A transcript line without its audio file, or an audio
file without a transcript line, becomes a rejected sample in the split's summary.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..audio import AudioError, read_audio
from ..corpus import Entry, check_split
from ..download import extract_archive, fetch

__all__ = [
    "ARCHIVE_MD5",
    "EVAL_PARTS",
    "LibriSpeechCorpus",
    "OPENSLR_MIRRORS",
    "OPENSLR_URL",
    "ROOT_ENV",
    "TRAIN_SETS",
    "download_librispeech",
    "read_part",
]

log = logging.getLogger(__name__)

Pathlike = str | os.PathLike[str]

OPENSLR_URL = "https://www.openslr.org/resources/12"
#: the mirrors listed on https://www.openslr.org/12 (US, EU, CN)
OPENSLR_MIRRORS: tuple[str, ...] = (
    "https://us.openslr.org/resources/12",
    "https://openslr.elda.org/resources/12",
    "https://openslr.magicdatatech.com/resources/12",
)
#: md5 of each ``<part>.tar.gz``, as published in OpenSLR's resources/12/md5sum.txt
ARCHIVE_MD5: dict[str, str] = {
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
    "train-clean-100": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500": "d1a0fd59409feb2c614ce4d30c387708",
}
#: the ``train`` split's parts, by the name of the training set
TRAIN_SETS: dict[str, tuple[str, ...]] = {
    "train-clean-100": ("train-clean-100",),
    "train-clean-460": ("train-clean-100", "train-clean-360"),
    "train-960": ("train-clean-100", "train-clean-360", "train-other-500"),
}
EVAL_PARTS: tuple[str, ...] = ("dev-clean", "dev-other", "test-clean", "test-other")
#: environment variable naming a folder that holds (or will hold) ``LibriSpeech/``
ROOT_ENV = "LIBRISPEECH_ROOT"
DEFAULT_ROOT = "downloads"

TrainSet = Literal["train-clean-100", "train-clean-460", "train-960"]


def _part_dir(root: Path, part: str) -> Path | None:
    """``<root>/LibriSpeech/<part>`` or ``<root>/<part>``, whichever exists."""
    for candidate in (root / "LibriSpeech" / part, root / part):
        if candidate.is_dir():
            return candidate
    return None


def download_librispeech(
    parts: Sequence[str],
    root: Pathlike,
    *,
    base_url: str = OPENSLR_URL,
    mirrors: Sequence[str] = (),
    archive_dir: Pathlike | None = None,
    keep_archives: bool = False,
    retries: int = 3,
) -> dict[str, Path]:
    """Make ``<root>/LibriSpeech/<part>`` exist for each part; return part -> folder.

    Parts already present are skipped. Others are fetched as ``<part>.tar.gz`` into
    ``archive_dir`` (default ``<root>/archives``) from ``base_url`` then ``mirrors``,
    resumably, checked against :data:`ARCHIVE_MD5` and extracted into ``root``.
    """
    unknown = [p for p in parts if p not in ARCHIVE_MD5]
    if unknown:
        raise ValueError(f"unknown LibriSpeech parts {unknown}; choose from {sorted(ARCHIVE_MD5)}")
    root = Path(root)
    archives = Path(archive_dir) if archive_dir is not None else root / "archives"
    found: dict[str, Path] = {}
    for part in parts:
        existing = _part_dir(root, part)
        if existing is not None:
            log.info("LibriSpeech %s is present in %s: not downloading it", part, existing)
            found[part] = existing
            continue
        name = f"{part}.tar.gz"
        archive = fetch(name, [base_url, *mirrors], archives, md5=ARCHIVE_MD5[part], retries=retries)
        extract_archive(archive, root)
        extracted = _part_dir(root, part)
        if extracted is None:
            raise FileNotFoundError(
                f"{archive} did not contain LibriSpeech/{part}/: it is not the OpenSLR "
                f"archive; delete it and check base_url ({base_url})"
            )
        if not keep_archives:
            archive.unlink()
        found[part] = extracted
    return found


def _sort_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Numeric order for LibriSpeech's ids (``19-198-0001``); odd names sort after."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in name.split("-"))


def _read_transcripts(path: Path) -> list[tuple[str, str | bytes]]:
    """``(key, text)`` per line of a ``.trans.txt`` file, in file order.

    Lines are decoded one by one: a line that is not UTF-8 keeps its text as the raw
    bytes, so the shard writer rejects that utterance alone (``bad_text_encoding``).
    """
    lines: list[tuple[str, str | bytes]] = []
    for raw in path.read_bytes().splitlines():
        key_bytes, _, text_bytes = raw.strip().partition(b" ")
        if not key_bytes:
            continue
        key = key_bytes.decode("utf-8", errors="replace")
        try:
            lines.append((key, text_bytes.decode("utf-8").strip()))
        except UnicodeDecodeError:
            lines.append((key, text_bytes.strip()))
    return lines


def read_part(part_dir: Pathlike, part: str = "") -> list[Entry]:
    """Entries of one part folder (``.../LibriSpeech/dev-clean``), sorted by key.

    Audio is not read. Bad utterances are listed all the same, so that the shard writer
    rejects them with their key and reason instead of stopping: an audio file without a
    transcript line has no text (``missing_transcript``), a transcript line without its
    audio file keeps the path (``load_audio`` says it is missing), a line that is not
    UTF-8 keeps its bytes (``bad_text_encoding``), and a key given two lines appears
    twice (the second is a ``duplicate_key``).
    """
    folder = Path(part_dir).resolve()
    part = part or folder.name
    entries: list[Entry] = []
    speakers = sorted((d for d in folder.iterdir() if d.is_dir()), key=lambda d: _sort_key(d.name))
    for speaker_dir in speakers:
        chapters = sorted((d for d in speaker_dir.iterdir() if d.is_dir()), key=lambda d: _sort_key(d.name))
        for chapter_dir in chapters:
            speaker, chapter = speaker_dir.name, chapter_dir.name
            trans = chapter_dir / f"{speaker}-{chapter}.trans.txt"
            lines: list[tuple[str, str | bytes]] = []
            if trans.is_file():
                lines = _read_transcripts(trans)
            else:
                log.warning("%s is missing: the chapter's utterances have no text", trans)
            texts: dict[str, list[str | bytes]] = {}
            for key, text in lines:
                texts.setdefault(key, []).append(text)
            audio = {p.name[: -len(".flac")] for p in chapter_dir.glob("*.flac")}
            for key in sorted(texts.keys() | audio, key=_sort_key):
                source = str(chapter_dir / f"{key}.flac")
                extra = {"chapter": chapter, "part": part}
                for text in texts.get(key, [None]):
                    # text is None or bytes only for utterances the writer will reject
                    entries.append(Entry(key, text, speaker, source, extra))  # type: ignore[arg-type]
    return entries


@dataclass
class LibriSpeechCorpus:
    """LibriSpeech from a local copy, downloaded on demand.

    Args:
        root: folder holding ``LibriSpeech/<part>/`` (or the ``LibriSpeech`` folder
            itself). ``None``: the ``LIBRISPEECH_ROOT`` environment variable, else
            ``downloads`` (relative to the working directory: the recipe folder).
        train_set: parts of the ``train`` split: ``train-clean-100`` (100 h),
            ``train-clean-460`` (+ train-clean-360) or ``train-960`` (+ train-other-500).
        download: fetch the parts missing under ``root``; ``False`` makes a missing part
            an error that says where it was looked for.
        base_url: where ``<part>.tar.gz`` is fetched from first.
        mirrors: base URLs tried in turn when ``base_url`` fails (see ``OPENSLR_MIRRORS``).
        archive_dir: where archives are downloaded (default ``<root>/archives``).
        keep_archives: keep each ``.tar.gz`` after it was extracted.
        retries: attempts per URL after a dropped connection, each resuming the file.
    """

    root: str | None = None
    train_set: TrainSet = "train-clean-100"
    download: bool = False
    base_url: str = OPENSLR_URL
    mirrors: list[str] = field(default_factory=list)
    archive_dir: str | None = None
    keep_archives: bool = False
    retries: int = 3

    def __post_init__(self) -> None:
        if self.train_set not in TRAIN_SETS:
            raise ValueError(f"train_set={self.train_set!r}; choose from {sorted(TRAIN_SETS)}")

    def splits(self) -> list[str]:
        return ["train", "dev", *EVAL_PARTS]

    def parts(self, split: str) -> tuple[str, ...]:
        """The LibriSpeech parts that make up ``split``."""
        check_split(self, split)
        if split == "train":
            return TRAIN_SETS[self.train_set]
        if split == "dev":
            return ("dev-clean", "dev-other")
        return (split,)

    def root_dir(self) -> Path:
        """``root``, else ``$LIBRISPEECH_ROOT``, else ``downloads``."""
        return Path(self.root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT).expanduser()

    def part_dirs(self, split: str) -> dict[str, Path]:
        """Folder of each part of ``split``, downloading missing ones if allowed."""
        root = self.root_dir()
        parts = self.parts(split)
        missing = [p for p in parts if _part_dir(root, p) is None]
        if missing and not self.download:
            source = "root" if self.root else (f"${ROOT_ENV}" if os.environ.get(ROOT_ENV) else "default root")
            raise FileNotFoundError(
                f"LibriSpeech {missing} not found under {root.resolve()} ({source}): looked for "
                f"{root / 'LibriSpeech' / missing[0]}. Point root (data.yaml) or ${ROOT_ENV} at "
                "the folder that holds LibriSpeech/, or set download: true to fetch it"
            )
        return download_librispeech(
            parts,
            root,
            base_url=self.base_url,
            mirrors=self.mirrors,
            archive_dir=self.archive_dir,
            keep_archives=self.keep_archives,
            retries=self.retries,
        )

    def entries(self, split: str) -> list[Entry]:
        folders = self.part_dirs(split)
        entries: list[Entry] = []
        for part in self.parts(split):
            entries.extend(read_part(folders[part], part))
        return entries

    def load_audio(self, entry: Entry) -> tuple[np.ndarray, int]:
        path = Path(entry.source)
        if not path.is_file():
            raise AudioError(f"missing audio file {path} (the transcript lists {entry.key})")
        return read_audio(path)
