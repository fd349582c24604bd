"""Check tar members so that nothing is written outside the folder they are extracted into.

tarfile's ``data`` filter checks a member with ``os.path.realpath``, which stops
expanding symlinks once a path grows past PATH_MAX: a chain of long symlinks then
makes a link that points above the target look harmless, and files are written
through it (CVE-2025-4517 and its family, CVE-2024-12718, CVE-2025-4138, CVE-2025-4330;
Python 3.11.7 is affected). So the paths are resolved here, component by component,
never with ``realpath``:

* :func:`check_members` is the validation pass, before anything is extracted. It builds
  a model of the tree the members create (folders, files, and the symlinks with their
  targets) and resolves every member's path through the links created by earlier
  members, then checks every link once more against the final tree (a later link can
  redirect an earlier one: ``a -> x/..`` then ``x -> .``).
* :class:`ExtractionGuard` does the same against the disk while tarfile extracts (it is
  called before each member), resolving through the links actually on disk, and checks
  the archive's links again once extraction is over.

Rules: a member's name is relative and has no ``..``; its type is a regular file, a
folder, a symlink or a hard link (no device files, fifos or other special files); the
path it writes to, followed through symlinks, stays inside the target; a symlink's
target is relative and resolves inside the target; a hard link names a regular file
that an earlier member put inside the target. A path whose resolution needs more than
40 links, or cannot be inspected (longer than PATH_MAX once resolved), is refused.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

Parts = tuple[str, ...]
Kind = Literal["file", "dir", "link"] | None

MAX_LINK_HOPS = 40  # as Linux's MAXSYMLINKS


class UnsafeMember(Exception):
    """A member that would write outside the target, or must not be extracted."""

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"member {member!r} {reason}")
        self.member = member
        self.reason = reason


class _Leaves(Exception):
    """A path that leaves the target (or cannot be followed); ``str`` says how."""


class _View(Protocol):
    def readlink(self, parts: Parts) -> str | None: ...

    def kind(self, parts: Parts) -> Kind: ...


def _show(parts: Sequence[str]) -> str:
    return "/".join(parts) or "."


def resolve(parts: Sequence[str], view: _View, *, follow_last: bool = True) -> Parts:
    """Where ``parts`` (relative to the target) leads, as components below the target.

    Symlinks are followed as the kernel would, through ``view``; a component that does
    not exist yet is taken as it is. Raises :class:`_Leaves` when the path goes above
    the target, through an absolute link, or through too many links.
    """
    resolved: list[str] = []
    todo = list(reversed(parts))
    followed: list[str] = []  # "link -> target" of each symlink followed, for messages
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                via = f" (through symlink {', then '.join(followed[-4:])})" if followed else ""
                raise _Leaves("leads outside the target folder" + via)
            resolved.pop()
            continue
        candidate = (*resolved, part)
        last = not follow_last and all(p in ("", ".") for p in todo)
        target = None if last else view.readlink(candidate)
        if target is None:
            resolved.append(part)
            continue
        followed.append(f"{_show(candidate)!r} -> {target!r}")
        if len(followed) > MAX_LINK_HOPS:
            raise _Leaves(f"goes through more than {MAX_LINK_HOPS} symlinks")
        if not target or target.startswith("/"):
            raise _Leaves(f"goes through symlink {_show(candidate)!r} to the absolute path {target!r}")
        todo.extend(reversed(target.split("/")))
    return tuple(resolved)


def _type_name(member: tarfile.TarInfo) -> str:
    names = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device",
             tarfile.FIFOTYPE: "fifo"}
    return names.get(member.type, f"special file (tar type {member.type!r})")


def check_member(member: tarfile.TarInfo, view: _View) -> Parts:
    """Where ``member`` lands (below the target) given the tree ``view`` shows; raise
    :class:`UnsafeMember` when it must not be extracted."""
    name = member.name
    try:
        if not name or name.startswith("/"):
            raise _Leaves(f"has an absolute or empty path {name!r}")
        parts = name.split("/")
        if ".." in parts:
            raise _Leaves("has '..' in its path")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise _Leaves(
                f"is a {_type_name(member)}: device files, fifos and other special files "
                "are not extracted"
            )
        if member.issym():
            where = resolve(parts, view, follow_last=False)
            if not where or view.kind(where) == "dir":
                raise _Leaves(f"is a symlink that would replace the folder {_show(where)!r}")
            check_link_target(where, member.linkname, view)
            return where
        if member.islnk():
            target = member.linkname
            if not target or target.startswith("/"):
                raise _Leaves(f"is a hard link to the absolute path {target!r}")
            try:
                source = resolve(target.split("/"), view)
            except _Leaves as err:
                raise _Leaves(f"is a hard link to {target!r}, which {err}") from None
            if view.kind(source) != "file":
                raise _Leaves(
                    f"is a hard link to {target!r}, which is not a regular file that an "
                    "earlier member extracted"
                )
        return resolve(parts, view)
    except _Leaves as err:
        raise UnsafeMember(name, str(err)) from None


def check_link_target(where: Parts, target: str, view: _View) -> None:
    """Raise :class:`_Leaves` unless the symlink at ``where`` -> ``target`` stays inside."""
    if not target or target.startswith("/"):
        raise _Leaves(f"is a symlink to the absolute path {target!r}")
    try:
        resolve([*where[:-1], *target.split("/")], view)
    except _Leaves as err:
        raise _Leaves(f"is a symlink to {target!r}, which {err}") from None


class _Model:
    """The tree that the members checked so far create in an empty folder."""

    def __init__(self) -> None:
        self.links: dict[Parts, tuple[str, str]] = {}  # where -> (target, member name)
        self.files: set[Parts] = set()
        self.dirs: set[Parts] = set()

    def readlink(self, parts: Parts) -> str | None:
        link = self.links.get(parts)
        return None if link is None else link[0]

    def kind(self, parts: Parts) -> Kind:
        if parts in self.links:
            return "link"
        if parts in self.files:
            return "file"
        return "dir" if parts in self.dirs or not parts else None

    def add(self, member: tarfile.TarInfo, where: Parts) -> None:
        for i in range(len(where) - 1, 0, -1):  # the parent folders (made as needed)
            if where[:i] in self.dirs:
                break
            self.dirs.add(where[:i])
        if member.issym():
            self.files.discard(where)
            self.links[where] = (member.linkname, member.name)
        elif member.isdir():
            self.dirs.add(where)
        else:
            self.files.add(where)


def check_members(members: Iterable[tarfile.TarInfo]) -> None:
    """The validation pass: raise :class:`UnsafeMember` for the first member that would
    write outside an empty target folder, or a link that ends up pointing outside it."""
    model = _Model()
    for member in members:
        model.add(member, check_member(member, model))
    for where, (target, name) in model.links.items():
        try:
            check_link_target(where, target, model)
        except _Leaves as err:
            raise UnsafeMember(name, f"{err} once the whole archive is extracted") from None


class _Disk:
    """The tree on disk under ``root``, seen without following links."""

    def __init__(self, root: str) -> None:
        self.root = root

    def _path(self, parts: Parts) -> str:
        return os.path.join(self.root, *parts)

    def readlink(self, parts: Parts) -> str | None:
        try:
            return os.readlink(self._path(parts))
        except OSError as err:
            if err.errno in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
                return None  # not a link, or not there (yet)
            raise _Leaves(f"cannot be checked: {_show(parts)!r}: {err.strerror}") from err

    def kind(self, parts: Parts) -> Kind:
        try:
            mode = os.lstat(self._path(parts)).st_mode
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise _Leaves(f"cannot be checked: {_show(parts)!r}: {err.strerror}") from err
        if stat.S_ISLNK(mode):
            return "link"
        if stat.S_ISREG(mode):
            return "file"
        return "dir" if stat.S_ISDIR(mode) else None


class ExtractionGuard:
    """Checks each member against the disk under ``root`` right before tarfile extracts
    it (call it with the member), and the archive's links after (:meth:`check_links`)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.disk = _Disk(os.fspath(root))

    def __call__(self, member: tarfile.TarInfo) -> None:
        check_member(member, self.disk)

    def check_links(self, members: Iterable[tarfile.TarInfo]) -> None:
        """Every symlink the archive created still resolves inside ``root``."""
        for member in members:
            if not member.issym():
                continue
            try:
                where = resolve(member.name.split("/"), self.disk, follow_last=False)
                if self.disk.kind(where) == "link":
                    check_link_target(where, self.disk.readlink(where) or "", self.disk)
            except _Leaves as err:
                raise UnsafeMember(member.name, f"{err} once the archive is extracted") from None
