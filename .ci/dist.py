"""Build the six packages' wheels and sdists at one version and check their metadata.

Usage::

    uv run --locked python .ci/dist.py check          # the pyproject files only (no build)
    uv run --locked python .ci/dist.py build          # uv build --all-packages -> dist/, then
                                                      # the same checks on what was built
    uv run --locked python .ci/dist.py build --out-dir /tmp/dist --offline

What is checked, and why (a user installs these from PyPI, not from this workspace):

- every package has the same version, and its ``__version__`` says so too;
- a requirement on another workspace package is a compatible range that holds this
  version and stops before the next breaking one (``espnet-data>=0.1.0,<0.2``; for 1.x
  and later ``<X+1``): a release of one package never pulls an incompatible sibling;
- no requirement is an exact pin (``==1.2.3`` / ``===``): exact pins belong in
  ``uv.lock``, not in library metadata where they would block every other project that
  installs ours;
- a readme (non-empty), a license expression, a description and ``requires-python``;
- after a build: one wheel and one sdist per package at that version, and the same rules
  on the metadata the build wrote (``METADATA`` / ``PKG-INFO``), which is what PyPI and pip
  read.
"""

from __future__ import annotations

import argparse
import email.parser
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("espnet-data", "espnet-model", "espnet-train", "espnet-infer", "espnet-publish",
            "espnet-system")


@dataclass(frozen=True)
class Meta:
    """The metadata fields the checks read, from a pyproject or a built distribution."""

    where: str  # file shown in problems
    name: str
    version: str
    summary: str
    license: str
    readme: str  # the long description text
    requires_python: str
    requires: tuple[str, ...]


def next_breaking(version: str) -> Version:
    """The first version that may break ``version``'s API: 0.Y -> 0.(Y+1), X.Y -> (X+1).0."""
    v = Version(version)
    major, minor = (v.release + (0, 0))[:2]
    return Version(f"0.{minor + 1}") if major == 0 else Version(f"{major + 1}")


def compatible_range(version: str) -> str:
    """The specifier other packages use for a release of ``version``, e.g. ``>=0.1.0,<0.2``."""
    return f">={Version(version).base_version},<{next_breaking(version)}"


def requirement_problems(requirement: str, *, version: str, where: str) -> list[str]:
    """Why one ``Requires-Dist`` line is not fit for library metadata (empty when it is)."""
    try:
        req = Requirement(requirement)
    except InvalidRequirement as e:
        return [f"{where}: requirement {requirement!r} cannot be parsed: {e}"]
    problems = []
    for spec in req.specifier:
        if spec.operator == "===" or (spec.operator == "==" and not spec.version.endswith("*")):
            problems.append(
                f"{where}: {requirement!r} is an exact pin; library metadata states a "
                f"compatible range (e.g. '{req.name}>={spec.version}') and uv.lock keeps the "
                "exact version"
            )
    if canonicalize_name(req.name) in {canonicalize_name(p) for p in PACKAGES}:
        wanted = compatible_range(version)
        if not req.specifier:
            problems.append(f"{where}: {requirement!r} has no version range; write "
                            f"'{req.name}{wanted}'")
        elif not req.specifier.contains(version, prereleases=True) or req.specifier.contains(
            str(next_breaking(version)), prereleases=True
        ):
            problems.append(
                f"{where}: {requirement!r} must hold {version} and stop before "
                f"{next_breaking(version)}; write '{req.name}{wanted}'"
            )
    return problems


def meta_problems(meta: Meta, *, version: str) -> list[str]:
    """Problems of one package's metadata against the release ``version``."""
    problems = []
    if meta.version != version:
        problems.append(f"{meta.where}: version {meta.version}, but the release is {version}")
    for field, value in (("description (Summary)", meta.summary), ("license", meta.license),
                         ("readme", meta.readme), ("requires-python", meta.requires_python)):
        if not value.strip():
            problems.append(f"{meta.where}: no {field}")
    for requirement in meta.requires:
        problems += requirement_problems(requirement, version=version, where=meta.where)
    return problems


_VERSION_LINE = re.compile(r'^__version__\s*=\s*["\']([^"\']+)["\']', re.MULTILINE)


def pyproject_meta(package_dir: Path) -> tuple[Meta, str | None]:
    """A package's metadata from its ``pyproject.toml``, and its ``__version__`` (None if absent)."""
    path = package_dir / "pyproject.toml"
    project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
    readme = project.get("readme", "")
    readme_file = package_dir / readme if isinstance(readme, str) and readme else None
    requires = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requires += extra
    license_ = project.get("license", "")
    module = project["name"].replace("-", "_")
    init = package_dir / "src" / module / "__init__.py"
    found = _VERSION_LINE.search(init.read_text(encoding="utf-8")) if init.is_file() else None
    meta = Meta(
        where=str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        name=project["name"],
        version=project.get("version", ""),
        summary=project.get("description", ""),
        license=license_ if isinstance(license_, str) else str(license_.get("text", "")),
        readme=readme_file.read_text(encoding="utf-8")
        if readme_file and readme_file.is_file() else "",
        requires_python=project.get("requires-python", ""),
        requires=tuple(requires),
    )
    return meta, found.group(1) if found else None


def check_pyprojects(root: Path | None = None) -> tuple[str, list[str]]:
    """(the release version, problems) of the six ``packages/*/pyproject.toml`` under ``root``
    (default: this repository)."""
    root = ROOT if root is None else root
    metas = {}
    problems = []
    for name in PACKAGES:
        package_dir = root / "packages" / name
        if not (package_dir / "pyproject.toml").is_file():
            problems.append(f"{package_dir / 'pyproject.toml'}: missing")
            continue
        meta, dunder = pyproject_meta(package_dir)
        metas[name] = meta
        if dunder is not None and dunder != meta.version:
            problems.append(f"{meta.where}: version {meta.version}, but {name.replace('-', '_')}"
                            f".__version__ is {dunder}; keep them equal")
    versions = sorted({m.version for m in metas.values()})
    version = metas["espnet-data"].version if "espnet-data" in metas else versions[0]
    if len(versions) > 1:
        problems.append("the packages have different versions "
                        + ", ".join(f"{n} {m.version}" for n, m in metas.items())
                        + "; release them at one version")
    for meta in metas.values():
        problems += meta_problems(meta, version=version)
    return version, problems


def _parse_metadata(text: str, where: str) -> Meta:
    msg = email.parser.Parser().parsestr(text)
    return Meta(
        where=where,
        name=msg.get("Name", ""),
        version=msg.get("Version", ""),
        summary=msg.get("Summary", ""),
        license=msg.get("License-Expression") or msg.get("License") or "",
        readme=msg.get_payload() or msg.get("Description", ""),
        requires_python=msg.get("Requires-Python", ""),
        requires=tuple(msg.get_all("Requires-Dist") or ()),
    )


def built_meta(path: Path) -> Meta:
    """Metadata of a built wheel (``*.dist-info/METADATA``) or sdist (``PKG-INFO``)."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as whl:
            name = next(n for n in whl.namelist()
                        if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
            return _parse_metadata(whl.read(name).decode("utf-8"), path.name)
    with tarfile.open(path) as sdist:
        member = next(m for m in sdist.getmembers() if m.name.count("/") == 1
                      and m.name.endswith("/PKG-INFO"))
        return _parse_metadata(sdist.extractfile(member).read().decode("utf-8"), path.name)


def check_built(out_dir: Path, version: str) -> list[str]:
    """Problems of the wheels and sdists in ``out_dir``: one of each per package, at ``version``."""
    problems = []
    for name in PACKAGES:
        stem = f"{name.replace('-', '_')}-{version}"
        for kind, pattern in (("wheel", f"{stem}-*.whl"), ("sdist", f"{stem}.tar.gz")):
            found = sorted(out_dir.glob(pattern))
            if len(found) != 1:
                problems.append(f"{out_dir}: expected one {kind} {pattern}, found "
                                f"{[p.name for p in found]}")
                continue
            meta = built_meta(found[0])
            if canonicalize_name(meta.name) != canonicalize_name(name):
                problems.append(f"{found[0].name}: Name is {meta.name}, expected {name}")
            problems += meta_problems(meta, version=version)
    return problems


def uncommitted_files(root: Path | None = None) -> list[str]:
    """Files under ``packages/`` that differ from git's HEAD or are untracked (not ignored):
    an sdist built now would ship them. Empty outside a git checkout."""
    try:
        proc = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--",
                               "packages"], cwd=root or ROOT, capture_output=True, text=True)
    except OSError:  # no git, or no such folder
        return []
    return [line[3:] for line in proc.stdout.splitlines()] if proc.returncode == 0 else []


def build(out_dir: Path, *, offline: bool = False) -> None:
    """``uv build --all-packages`` into a clean ``out_dir`` (wheels and sdists)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    cmd = ["uv", "build", "--all-packages", "--out-dir", str(out_dir), "--quiet"]
    if offline:
        cmd.append("--offline")
    subprocess.run(cmd, cwd=ROOT, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the six packages at one version and check their metadata.",
        epilog=__doc__.split("What is checked")[0].split("Usage::")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["check", "build"],
                        help="check: the pyproject files only; build: uv build, then check "
                             "the pyprojects and the built wheels and sdists")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "dist",
                        help="where build writes (emptied first; default: dist/)")
    parser.add_argument("--offline", action="store_true",
                        help="build without the network (the build backend from uv's cache)")
    args = parser.parse_args(argv)
    version, problems = check_pyprojects()
    if args.command == "build" and not problems:
        dirty = uncommitted_files()
        if dirty:
            print(f"dist: warning: {len(dirty)} uncommitted file(s) under packages/ go into "
                  f"this build (release from a clean checkout): {', '.join(dirty[:5])}"
                  + (" ..." if len(dirty) > 5 else ""), file=sys.stderr)
        build(args.out_dir, offline=args.offline)
        problems = check_built(args.out_dir, version)
    if problems:
        print("\n".join(["dist: metadata problems:", *(f"  - {p}" for p in problems)]),
              file=sys.stderr)
        return 1
    where = f" in {args.out_dir}" if args.command == "build" else ""
    print(f"dist: {len(PACKAGES)} packages at {version}, metadata ok{where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
