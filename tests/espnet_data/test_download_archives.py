"""espnet_data.download.extract_archive against hostile tar archives (issue 21).

Every archive here tries to put something outside the folder it is extracted into. The
extraction must refuse the whole archive (naming the member and why), leave nothing
behind, and work the same whatever tarfile's ``data`` filter does on this Python
(3.11.7's can be bypassed with a chain of long symlinks, CVE-2025-4517).
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from espnet_data import download as download_module
from espnet_data.download import DownloadError, UnsafeArchiveError, extract_archive


def _tar(path: Path, members: list[tuple[str, str, object]]) -> Path:
    """Write ``members`` as a tar: ``(kind, name, arg)`` with kind ``file`` (arg: bytes),
    ``dir``, ``sym`` / ``hard`` (arg: link target), ``chr`` / ``fifo``."""
    with tarfile.open(path, "w") as tar:
        for kind, name, arg in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            data = None
            if kind == "file":
                data = bytes(arg)  # type: ignore[arg-type]
                info.size = len(data)
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, str(arg)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, str(arg)
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """``(archive_dir, dest)``: ``dest`` sits two folders below ``tmp_path``; a file
    ``tmp_path/flag`` outside it must survive untouched."""
    (tmp_path / "flag").write_text("original")
    archives = tmp_path / "archives"
    archives.mkdir()
    dest = tmp_path / "data" / "out"
    dest.mkdir(parents=True)
    yield archives, dest
    assert (tmp_path / "flag").read_text() == "original", "a file outside the target was changed"


def _outside(tmp_path: Path, dest: Path) -> set[Path]:
    """Everything under ``tmp_path`` that is not the archives, the target or the flag."""
    found = set()
    for path in tmp_path.rglob("*"):
        if path == tmp_path / "flag" or tmp_path / "archives" in (path, *path.parents):
            continue
        if dest in (path, *path.parents) or path in dest.parents:
            continue
        found.add(path)
    return found


def _assert_refused(archive: Path, dest: Path, *words: str) -> UnsafeArchiveError:
    with pytest.raises(UnsafeArchiveError) as info:
        extract_archive(archive, dest)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert str(archive) in message and "delete it" in message
    assert list(dest.iterdir()) == [], "something was extracted from a refused archive"
    assert not _outside(dest.parent.parent, dest)
    return info.value


def test_dotdot_member_is_refused(sandbox: tuple[Path, Path]) -> None:
    archives, dest = sandbox
    archive = _tar(archives / "dotdot.tar", [
        ("file", "ok/a.txt", b"a"), ("file", "ok/../../../escaped.txt", b"x"),
    ])
    err = _assert_refused(archive, dest, "ok/../../../escaped.txt", "'..'")
    assert err.member == "ok/../../../escaped.txt"


def test_absolute_member_is_refused(sandbox: tuple[Path, Path], tmp_path: Path) -> None:
    archives, dest = sandbox
    target = tmp_path / "absolute.txt"
    archive = _tar(archives / "abs.tar", [("file", str(target), b"x")])
    _assert_refused(archive, dest, "absolute")
    assert not target.exists()


def test_symlink_out_then_file_through_it_is_refused(
    sandbox: tuple[Path, Path], tmp_path: Path
) -> None:
    archives, dest = sandbox
    archive = _tar(archives / "symout.tar", [
        ("sym", "C/up", str(tmp_path)), ("file", "C/up/flag", b"overwritten"),
        ("file", "C/up/new.txt", b"new"),
    ])
    _assert_refused(archive, dest, "C/up", "absolute")
    relative = _tar(archives / "symrel.tar", [
        ("sym", "C/up", "../../.."), ("file", "C/up/flag", b"overwritten"),
    ])
    _assert_refused(relative, dest, "C/up", "outside")
    assert not (tmp_path / "new.txt").exists()


def test_link_that_an_earlier_link_sends_outside_is_refused(sandbox: tuple[Path, Path]) -> None:
    """``a -> x/..`` is harmless until a later ``x -> .`` makes it point above the target."""
    archives, dest = sandbox
    archive = _tar(archives / "late.tar", [
        ("sym", "a", "x/.."), ("sym", "x", "."), ("file", "a/flag", b"overwritten"),
    ])
    _assert_refused(archive, dest, "outside")


def _long_symlink_chain(archives: Path, dest: Path) -> Path:
    """CPython's ``test_realpath_limit_attack`` (CVE-2025-4517), aimed at the hidden
    folder extract_archive unpacks into: the final link is never expanded by
    ``os.path.realpath`` (the path passes PATH_MAX), so the ``data`` filter lets
    ``escape`` point two folders above that hidden folder, then writes through it."""
    archive = archives / "chain.tar"
    hidden = dest / f".extract-{archive.name}.{os.getpid()}.tmp"
    steps = "abcdefghijklmnop"
    path_max = os.pathconf(dest, "PC_PATH_MAX")
    component = "d" * ((path_max - len(str(hidden)) - 1) // (len(steps) + 1))
    members: list[tuple[str, str, object]] = []
    path = ""
    for step in steps:
        members.append(("dir", os.path.join(path, component), None))
        members.append(("sym", os.path.join(path, step), component))
        path = os.path.join(path, component)
    linkpath = os.path.join(*steps, "l" * 254)
    members.append(("sym", linkpath, os.path.join(*[".."] * len(steps))))
    members.append(("sym", "escape", os.path.join(linkpath, "..", "..", "..")))
    members.append(("hard", "flaglink", os.path.join("escape", "flag")))
    members.append(("file", "flaglink", b"overwritten"))
    members.append(("file", "escape/newfile", b"new"))
    return _tar(archive, members)


def test_long_symlink_chain_past_path_max_is_refused(
    sandbox: tuple[Path, Path], tmp_path: Path
) -> None:
    archives, dest = sandbox
    archive = _long_symlink_chain(archives, dest)
    _assert_refused(archive, dest, "escape")
    assert not (tmp_path / "newfile").exists()


_GUARD_CASES: dict[str, list[tuple[str, str, object]]] = {
    "symlink-up": [("sym", "C/up", "../../.."), ("file", "C/up/newfile", b"new")],
    "redirected-link": [("sym", "a", "x/.."), ("sym", "x", "."), ("file", "a/newfile", b"new")],
    "hardlink-up": [("hard", "C/flag", "../../../flag"), ("file", "C/flag", b"overwritten")],
    "device": [("chr", "C/dev", None)],
}


@pytest.mark.parametrize("case", [*_GUARD_CASES, "long-symlink-chain"])
def test_guard_at_extraction_time_refuses_alone(
    sandbox: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """With the validation pass switched off, the check made against the disk right
    before each member is extracted still refuses the archive."""
    archives, dest = sandbox
    if case == "long-symlink-chain":
        archive = _long_symlink_chain(archives, dest)
    else:
        archive = _tar(archives / f"{case}.tar", _GUARD_CASES[case])
    monkeypatch.setattr(download_module, "check_members", lambda members: None)
    with pytest.raises(UnsafeArchiveError, match="while extracting"):
        extract_archive(archive, dest)
    assert not (tmp_path / "newfile").exists()
    assert list(dest.iterdir()) == []


def test_hardlink_outside_is_refused(sandbox: tuple[Path, Path], tmp_path: Path) -> None:
    archives, dest = sandbox
    absolute = _tar(archives / "hardabs.tar", [
        ("hard", "C/flag", str(tmp_path / "flag")), ("file", "C/flag", b"overwritten"),
    ])
    _assert_refused(absolute, dest, "C/flag", "hard link")
    relative = _tar(archives / "hardrel.tar", [
        ("hard", "C/flag", "../../flag"), ("file", "C/flag", b"overwritten"),
    ])
    _assert_refused(relative, dest, "C/flag", "hard link")
    through_link = _tar(archives / "hardsym.tar", [
        ("sym", "C/up", "../../.."), ("hard", "C/flag", "C/up/flag"),
    ])
    _assert_refused(through_link, dest, "outside")


@pytest.mark.parametrize("kind", ["chr", "fifo"])
def test_device_files_and_fifos_are_refused(sandbox: tuple[Path, Path], kind: str) -> None:
    archives, dest = sandbox
    archive = _tar(archives / f"{kind}.tar", [("file", "C/a.txt", b"a"), (kind, "C/dev", None)])
    _assert_refused(archive, dest, "C/dev", "device files")


def test_links_that_stay_inside_are_extracted(sandbox: tuple[Path, Path]) -> None:
    archives, dest = sandbox
    archive = _tar(archives / "fine.tar", [
        ("file", "C/data/a.txt", b"a"),
        ("sym", "C/latest", "data"),
        ("sym", "C/data/again", "../data/a.txt"),
        ("hard", "C/copy.txt", "C/data/a.txt"),
        ("file", "C/latest/b.txt", b"b"),
    ])
    assert extract_archive(archive, dest) == [dest / "C"]
    assert (dest / "C/latest").is_symlink() and (dest / "C/data/b.txt").read_bytes() == b"b"
    assert (dest / "C/data/again").read_bytes() == b"a"
    assert (dest / "C/copy.txt").read_bytes() == b"a"


def test_unsafe_archive_error_is_a_download_error() -> None:
    assert issubclass(UnsafeArchiveError, DownloadError)


def test_without_tarfiles_data_filter_the_checks_still_hold(
    sandbox: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11.0-3.11.3 have no extraction filters: members are extracted one by
    one, each after the guard."""
    archives, dest = sandbox
    monkeypatch.delattr(tarfile, "data_filter")
    monkeypatch.setattr(download_module, "check_members", lambda members: None)
    for case, members in _GUARD_CASES.items():
        with pytest.raises(UnsafeArchiveError, match="while extracting"):
            extract_archive(_tar(archives / f"{case}.tar", members), dest)
    with pytest.raises(UnsafeArchiveError, match="while extracting"):
        extract_archive(_long_symlink_chain(archives, dest), dest)
    assert not (tmp_path / "newfile").exists() and list(dest.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.delattr(tarfile, "data_filter")
    fine = _tar(archives / "fine.tar", [
        ("file", "C/data/a.txt", b"a"), ("sym", "C/latest", "data"), ("file", "C/latest/b.txt", b"b"),
    ])
    assert extract_archive(fine, dest) == [dest / "C"]
    assert (dest / "C/data/b.txt").read_bytes() == b"b"
