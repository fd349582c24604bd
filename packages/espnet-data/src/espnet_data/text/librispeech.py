"""LibriSpeech's LM text (OpenSLR resource 11): ``librispeech-lm-norm.txt.gz``.

About 40 million normalised sentences (upper case, no punctuation) from ~14,500 Project
Gutenberg books, the books of the dev and test sets left out; 1.5 GB gzip, 4.3 GB of
text. ESPnet2's LibriSpeech recipes train their LMs on it plus the training transcripts.

Layout read::

    <root>/librispeech-lm-norm.txt.gz     # as downloaded (or librispeech-lm-norm.txt, unpacked)

``<root>`` defaults to ``$LIBRISPEECH_ROOT`` (the folder that holds ``LibriSpeech/`` for
the ASR corpus), else ``downloads``. With ``download: true`` a missing file is fetched
from ``base_url``, then the ``mirrors``, resumably (an interrupted download continues
from its ``.part`` file), and checked against :data:`LM_TEXT_MD5`. The file stays
gzipped: it is streamed line by line.

Usage::

    from espnet_data.text import LibriSpeechLMText, write_text_split

    source = LibriSpeechLMText(root="/data/corpora", download=True)
    write_text_split(source.sentences(), "data/lm_train")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..download import fetch
from .sources import TextFile

__all__ = [
    "LM_TEXT_MD5",
    "LM_TEXT_MIRRORS",
    "LM_TEXT_NAME",
    "LM_TEXT_URL",
    "LibriSpeechLMText",
    "download_librispeech_lm",
]

log = logging.getLogger(__name__)

LM_TEXT_NAME = "librispeech-lm-norm.txt.gz"
LM_TEXT_URL = "https://www.openslr.org/resources/11"
#: the mirrors listed on https://www.openslr.org/11 (US, EU)
LM_TEXT_MIRRORS: tuple[str, ...] = (
    "https://us.openslr.org/resources/11",
    "https://openslr.elda.org/resources/11",
)
#: md5 of ``librispeech-lm-norm.txt.gz`` as recorded by the recipes that check it (the
#: md5 tables that list it beside the published ``resources/12`` sums); set
#: ``md5: null`` to record the sha256 of the first download instead
LM_TEXT_MD5 = "c83c64c726a1aedfe65f80aa311de402"
ROOT_ENV = "LIBRISPEECH_ROOT"
DEFAULT_ROOT = "downloads"
KEY_PREFIX = "librispeech_lm_norm"  # keys librispeech_lm_norm_00000001, ... (line numbers)


def _present(root: Path) -> Path | None:
    for name in (LM_TEXT_NAME, LM_TEXT_NAME.removesuffix(".gz")):
        if (root / name).is_file():
            return root / name
    return None


def download_librispeech_lm(
    root: str | os.PathLike[str],
    *,
    base_url: str = LM_TEXT_URL,
    mirrors: tuple[str, ...] | list[str] = LM_TEXT_MIRRORS,
    md5: str | None = LM_TEXT_MD5,
    retries: int = 3,
) -> Path:
    """``<root>/librispeech-lm-norm.txt.gz`` (or the unpacked ``.txt``), fetched when missing.

    ``md5=None``: no checksum to check against; the first download's sha256 is recorded
    in ``<file>.sha256`` (with a warning) and later downloads must match it.
    """
    root = Path(root)
    found = _present(root)
    if found is not None:
        log.info("LibriSpeech LM text is present: %s", found)
        return found
    return fetch(LM_TEXT_NAME, [base_url, *mirrors], root, md5=md5, retries=retries,
                 record_sha256=md5 is None)


@dataclass
class LibriSpeechLMText:
    """The sentences of ``librispeech-lm-norm.txt.gz``, keyed by line number.

    Args:
        root: folder holding the file. None: ``$LIBRISPEECH_ROOT``, else ``downloads``
            (relative to the working directory: the recipe folder).
        download: fetch the file when it is missing (1.5 GB); False makes a missing file
            an error that says where it was looked for.
        base_url: where the file is fetched from first (OpenSLR resource 11).
        mirrors: base URLs tried in turn when ``base_url`` fails.
        md5: the checksum the download must have; null records the first download's
            sha256 instead (trust on first use).
        retries: attempts per URL after a dropped connection, each resuming the file.
        max_lines: read only the first lines (a quick run); None: all ~40 million.
    """

    root: str | None = None
    download: bool = False
    base_url: str = LM_TEXT_URL
    mirrors: list[str] = field(default_factory=lambda: list(LM_TEXT_MIRRORS))
    md5: str | None = LM_TEXT_MD5
    retries: int = 3
    max_lines: int | None = None

    def root_dir(self) -> Path:
        return Path(self.root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT).expanduser()

    def input_paths(self) -> dict[str, str]:
        """The file when it must be there already (``download: false``)."""
        if self.download:
            return {}
        key = "root" if self.root else f"root (unset: ${ROOT_ENV}, else {DEFAULT_ROOT})"
        found = _present(self.root_dir())
        return {key: str(found or self.root_dir() / LM_TEXT_NAME)}

    def file(self) -> Path:
        """The text file, downloaded first when allowed and missing."""
        root = self.root_dir()
        found = _present(root)
        if found is not None:
            return found
        if not self.download:
            raise FileNotFoundError(
                f"{root / LM_TEXT_NAME} not found: point root (or ${ROOT_ENV}) at the folder "
                f"that holds {LM_TEXT_NAME}, or set download: true to fetch it from "
                f"{self.base_url} (1.5 GB)"
            )
        return download_librispeech_lm(root, base_url=self.base_url, mirrors=self.mirrors,
                                       md5=self.md5, retries=self.retries)

    def sentences(self) -> Iterator[tuple[str, str | bytes]]:
        source = TextFile(str(self.file()), key_prefix=KEY_PREFIX, max_lines=self.max_lines)
        yield from source.sentences()
