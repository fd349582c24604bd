"""Fetch corpus archives over HTTP(S): resumable, checksum-checked, extracted atomically.

Usage::

    from espnet_data.download import extract_archive, fetch

    archive = fetch(
        "dev-clean.tar.gz",
        ["https://www.openslr.org/resources/12", "https://us.openslr.org/resources/12"],
        "downloads/archives",
        md5="42e2234ba48799c1f50f24a7926300a1",
    )
    extract_archive(archive, "downloads")      # -> downloads/LibriSpeech/dev-clean/...

Bytes arrive in ``<name>.part``. An interrupted transfer (a dropped connection, a killed
job) continues from the end of that file with an HTTP ``Range`` request, on the next
attempt or the next run. The file gets its final name only after its checksum matched,
so a file under its final name is always complete. Extraction unpacks into a hidden
folder beside the destination and then renames each new top-level entry into place, so
a folder that exists was extracted completely.

What is verified: the md5 / sha256 / size given by the caller (a corpus passes the
checksums its publisher lists). For a file whose publisher lists none,
``download(..., record_sha256=True)`` records the sha256 of the first download in
``<name>.sha256`` next to it, says so in a warning (trust on first use), and checks every
later download of that file against it. https certificates are verified (``urllib``'s
default), and a redirect from https to plain http is refused. Archives are checked member
by member before and while they are extracted (:func:`extract_archive`).

Only the standard library talks HTTP here (``urllib``): no chosen dependency offers a
resumable download with checksums for arbitrary URLs.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._tar_guard import ExtractionGuard, UnsafeMember, check_members
from .atomic import atomic_open

__all__ = [
    "ChecksumError",
    "DownloadError",
    "UnsafeArchiveError",
    "download",
    "extract_archive",
    "fetch",
    "file_digest",
    "md5sum",
    "sha256_record",
]

log = logging.getLogger(__name__)

Pathlike = str | os.PathLike[str]

_USER_AGENT = "espnet-data (resumable downloader)"
_LOG_EVERY_SECONDS = 15.0


class DownloadError(RuntimeError):
    """A file could not be fetched or unpacked; the message says what to do."""


class ChecksumError(DownloadError):
    """A fetched file does not have the expected checksum."""


class UnsafeArchiveError(DownloadError):
    """An archive with a member that must not be extracted (it would write outside the
    target, or is a device file...); nothing of the archive is kept."""

    def __init__(self, archive: Path, member: str, reason: str, *, extracting: bool) -> None:
        when = (
            "while extracting it; what was extracted is removed" if extracting
            else "nothing was extracted"
        )
        super().__init__(
            f"refusing to extract {archive}: member {member!r} {reason} ({when}). The "
            "archive is damaged or hostile: delete it and download it again from a trusted "
            "source, checking its checksum"
        )
        self.archive = archive
        self.member = member
        self.reason = reason


def file_digest(path: Pathlike, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """The hex digest of a file (any ``hashlib`` algorithm), read in chunks."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def md5sum(path: Pathlike) -> str:
    """The hex MD5 digest of a file (the checksum most corpora publish)."""
    return file_digest(path, "md5")


def _mismatch(path: Path, md5: str | None, sha256: str | None, size: int | None) -> str:
    """What is wrong with ``path`` against the expected size and checksums ("" if nothing)."""
    if size is not None and (actual := path.stat().st_size) != size:
        return f"{actual} bytes != expected {size}"
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is not None and (actual_digest := file_digest(path, algorithm)) != expected.lower():
            return f"{algorithm} {actual_digest} != expected {expected}"
    return ""


class _Retryable(Exception):
    """A transfer that stopped early; the next attempt resumes it."""


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follows redirects, except from https to anything else (a downgrade to plain
    http would let anyone on the path replace the file)."""

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if req.full_url.lower().startswith("https:") and not newurl.lower().startswith("https:"):
            raise DownloadError(
                f"{req.full_url} redirects to {newurl}, which is not https: refusing to "
                "download over an unencrypted connection; use a URL that stays on https"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(request: urllib.request.Request, timeout: float) -> Any:
    return urllib.request.build_opener(_NoDowngrade).open(request, timeout=timeout)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_record(dest: Pathlike) -> Path:
    """The file next to ``dest`` that holds the sha256 recorded on its first download."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".sha256")


def _read_record(record: Path) -> str:
    text = record.read_text(encoding="utf-8", errors="replace").split()
    value = text[0].lower() if text else ""
    if not _SHA256.fullmatch(value):
        raise DownloadError(
            f"{record} should hold the sha256 (64 hex digits) recorded on the first download, "
            f"it holds {value[:80]!r}: delete it (and the file it describes) and run again"
        )
    return value


def _update_record(record: Path, dest: Path, url: str, pinned: str | None, verified: bool) -> None:
    """Write ``record`` for ``dest`` when it is missing, or when a pinned sha256 (which
    ``dest`` just matched) differs from it."""
    if record.is_file():
        if pinned is None:
            return
        try:
            if _read_record(record) == pinned.lower():
                return
        except DownloadError:
            pass
        log.warning("%s: replacing the recorded sha256 with the pinned one, %s", record, pinned)
    digest = file_digest(dest)
    with atomic_open(record) as handle:
        handle.write(f"{digest}  {dest.name}\n")
    if verified:
        log.info("recorded the sha256 of %s in %s", dest, record)
        return
    log.warning(
        "%s: no published checksum to check it against, so it is trusted as first "
        "downloaded (from %s). Its sha256 %s is recorded in %s and every later download "
        "is checked against it. Compare it with a copy you trust, or pin it in the "
        "config (sha256: %s)", dest, url, digest, record, digest,
    )


def _transfer(url: str, part: Path, timeout: float, chunk_size: int) -> None:
    """Append the rest of ``url`` to ``part`` (start it when the server ignores ``Range``)."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = _open(request, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing past the end: the .part file is complete
            log.info("%s: %s already holds all %d bytes", url, part, offset)
            return
        raise
    with response:
        if offset and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise DownloadError(
                    f"{url}: asked for bytes from {offset}, server answered Content-Range "
                    f"{content_range!r}; delete {part} to download from the start"
                )
            mode = "ab"
        else:
            if offset:
                log.info("%s: server ignored the Range request; downloading from the start", url)
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        received = offset
        last_log = time.monotonic()
        with open(part, mode) as handle:
            try:
                while chunk := response.read(chunk_size):
                    handle.write(chunk)
                    received += len(chunk)
                    if time.monotonic() - last_log > _LOG_EVERY_SECONDS:
                        last_log = time.monotonic()
                        shown = f"{received / total:.0%}" if total else f"{received >> 20} MiB"
                        log.info("%s: %s", part.name, shown)
            finally:
                handle.flush()
                os.fsync(handle.fileno())
        if total is not None and received < total:
            raise _Retryable(f"connection closed after {received} of {total} bytes")


def download(
    url: str,
    dest: Pathlike,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    record_sha256: bool = False,
    retries: int = 3,
    retry_wait: float = 2.0,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``<dest>.part``; return ``dest``.

    ``md5``, ``sha256`` and ``size`` (bytes) are checked when given. An existing
    ``dest`` that passes them is kept (nothing is fetched). A dropped connection is
    retried ``retries`` times, each attempt resuming where the last one stopped. A
    mismatch deletes the ``.part`` file (so the next run starts afresh) and raises
    :class:`ChecksumError`.

    ``record_sha256``: for a file without a published checksum. The sha256 of ``dest``
    is written to ``<dest>.sha256`` (:func:`sha256_record`) when that file does not
    exist yet, with a warning when nothing vouched for the download; when it exists and
    ``sha256`` is not given, ``dest`` (and any new download of it) must match it.
    """
    dest = Path(dest)
    record = sha256_record(dest) if record_sha256 else None
    pinned, hint = sha256, ""
    if record is not None and sha256 is None and record.is_file():
        sha256 = _read_record(record)
        hint = (
            f" (checked against the sha256 recorded in {record} on the first download; if "
            f"the file at {url} was changed on purpose, delete {record} too)"
        )
    verified = md5 is not None or sha256 is not None
    if dest.is_file():
        problem = _mismatch(dest, md5, sha256, size)
        if not problem:
            log.info("%s is already downloaded", dest)
            if record is not None:
                _update_record(record, dest, url, pinned, verified)
            return dest
        raise ChecksumError(
            f"{dest} exists but does not match ({problem}){hint}: it is not the file at "
            f"{url} or it is damaged; delete it and run again to download it"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout, chunk_size)
            break
        except urllib.error.HTTPError as err:
            if err.code < 500 and err.code != 429:
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from err
            failure: Exception = err
        except (_Retryable, urllib.error.URLError, http.client.HTTPException, OSError) as err:
            failure = err
        have = part.stat().st_size if part.exists() else 0
        if attempt == retries:
            raise DownloadError(
                f"{url}: {failure} (after {retries + 1} attempts); {have} bytes are kept in "
                f"{part}: run again to resume"
            ) from failure
        wait = retry_wait * 2**attempt
        log.warning("%s: %s; resuming from byte %d in %.0f s", url, failure, have, wait)
        time.sleep(wait)
    problem = _mismatch(part, md5, sha256, size)
    if problem:
        part.unlink()
        raise ChecksumError(
            f"{url}: {problem}{hint}; the download was deleted. Run again to download it "
            "afresh, or use another mirror if it happens again"
        )
    os.replace(part, dest)
    log.info("downloaded %s", dest)
    if record is not None:
        _update_record(record, dest, url, pinned, verified)
    return dest


def fetch(
    name: str,
    base_urls: Sequence[str],
    dest_dir: Pathlike,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    **options: Any,
) -> Path:
    """Download ``<base_url>/<name>`` into ``dest_dir``, trying each base URL in turn.

    ``options`` go to :func:`download` (``retries``, ``timeout``...). A partial file from
    one mirror is resumed from the next: the checksum vouches for the result.
    """
    if not base_urls:
        raise DownloadError(f"no URL to download {name} from: give at least one base URL")
    failures: list[DownloadError] = []
    for base in base_urls:
        url = f"{base.rstrip('/')}/{name}"
        try:
            return download(
                url, Path(dest_dir) / name, md5=md5, sha256=sha256, size=size, **options
            )
        except DownloadError as err:
            log.warning("%s", err)
            failures.append(err)
    error = ChecksumError if any(isinstance(e, ChecksumError) for e in failures) else DownloadError
    raise error(
        f"could not download {name} from any URL:\n  " + "\n  ".join(map(str, failures))
    )


def _merge(src: Path, dest: Path, moved: list[Path]) -> None:
    """Rename the entries of ``src`` into ``dest``; folders present on both sides merge."""
    for child in sorted(src.iterdir()):
        target = dest / child.name
        if target.is_dir() and child.is_dir() and not child.is_symlink():
            _merge(child, target, moved)
            continue
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(child, target)
        moved.append(target)


def _extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], tmp: Path) -> None:
    """Extract ``members`` into ``tmp``, each checked by the guard right before it."""
    guard = ExtractionGuard(tmp)
    if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: its filter too (modes, owners)

        def checked(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
            guard(member)
            return tarfile.data_filter(member, path)

        tar.extractall(tmp, members=members, filter=checked)
    else:
        for member in members:
            guard(member)
            member.mode = (member.mode or 0o644) & 0o755 | 0o200  # as the data filter
            tar.extract(member, tmp, set_attrs=not member.isdir())
    guard.check_links(members)


def extract_archive(archive: Pathlike, dest_dir: Pathlike) -> list[Path]:
    """Unpack a tar archive (``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``).

    Every member is checked before anything is extracted, and again against the disk
    right before it is extracted (see :mod:`espnet_data._tar_guard`): no absolute
    names, no ``..``, no device files or fifos, nothing written outside ``dest_dir``
    even through symlinks the archive creates, symlinks and hard links that resolve
    inside. One bad member refuses the whole archive with :class:`UnsafeArchiveError`
    naming it and why; nothing is left behind. This does not rely on tarfile's ``data``
    filter (also applied, where Python has it), which a chain of long symlinks bypasses
    on the Pythons affected by CVE-2025-4517.

    Members are unpacked into a hidden folder inside ``dest_dir``, then renamed into
    place: a folder already in ``dest_dir`` gains the new entries, a new one appears
    whole. Returns the paths renamed into ``dest_dir``. Zip files are not handled.
    """
    archive, dest = Path(archive), Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".extract-{archive.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        log.info("extracting %s into %s", archive, dest)
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                try:
                    check_members(members)
                except UnsafeMember as err:
                    raise UnsafeArchiveError(archive, err.member, err.reason, extracting=False) from None
                try:
                    _extract(tar, members, tmp)
                except UnsafeMember as err:
                    raise UnsafeArchiveError(archive, err.member, err.reason, extracting=True) from None
                except tarfile.FilterError as err:
                    raise UnsafeArchiveError(
                        archive, err.tarinfo.name, f"is refused by tarfile's data filter: {err}",
                        extracting=True,
                    ) from err
        except (tarfile.TarError, EOFError, zlib.error) as err:
            raise DownloadError(
                f"cannot extract {archive}: {err}; the archive is damaged or not a tar file: "
                "delete it and download it again"
            ) from err
        except OSError as err:
            raise DownloadError(
                f"cannot extract {archive} into {dest}: {err} (check that the archive exists "
                "and that the disk has room)"
            ) from err
        moved: list[Path] = []
        if tmp.is_dir():
            _merge(tmp, dest, moved)
        return moved
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
