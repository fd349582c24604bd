"""Which release of the loading packages a pack written here needs: ``espnet-infer>=0.1.0,<0.2``.

The six packages are released together at one version (``just dist`` checks it), so the
espnet-infer that reads a pack is the one released with the espnet-publish that wrote
it, or a later one of the same series: the same major version, or for 0.x the same
minor. The model card's ``pip install`` line and the demo Space's ``requirements.txt``
state that range, never an exact pin (a user's other packages must still resolve).
"""

from __future__ import annotations

import re
from importlib import metadata

__all__ = ["compatible_requirement", "release_version"]

_RELEASE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


def release_version() -> str:
    """The installed espnet-publish's version (its ``__version__`` when run from sources)."""
    try:
        return metadata.version("espnet-publish")
    except metadata.PackageNotFoundError:
        from . import __version__  # lazy: this module is imported by the package itself

        return __version__


def compatible_requirement(distribution: str, version: str | None = None) -> str:
    """``distribution`` with the range of releases compatible with ``version``.

    ``("espnet-infer", "0.1.0")`` -> ``espnet-infer>=0.1.0,<0.2``;
    ``("espnet-infer", "1.4.2")`` -> ``espnet-infer>=1.4.2,<2``. ``version`` defaults
    to :func:`release_version`; a pre- or dev-release counts as its base release.
    """
    version = release_version() if version is None else version
    found = _RELEASE.match(version)
    if not found:
        raise ValueError(f"version {version!r} of {distribution} is not of the form X.Y[.Z]")
    major, minor, patch = int(found[1]), int(found[2]), int(found[3] or 0)
    upper = f"0.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"{distribution}>={major}.{minor}.{patch},<{upper}"
