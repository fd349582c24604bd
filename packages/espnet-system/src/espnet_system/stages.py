"""Stage names: resolving what the user typed into the order stages must run in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class StageError(ValueError):
    """A stage name or stage configuration problem; the message says what to change."""


def resolve_stages(
    requested: Iterable[str], canonical: Sequence[str], *, skip_in_all: Iterable[str] = ()
) -> list[str]:
    """The requested stages in canonical order.

    ``all`` means every stage except those in ``skip_in_all`` (the uploads); unknown
    names are an error that lists the valid ones.
    """
    wanted: set[str] = set()
    for name in requested:
        if name == "all":
            wanted.update(s for s in canonical if s not in set(skip_in_all))
        elif name in canonical:
            wanted.add(name)
        else:
            raise StageError(
                f"unknown stage {name!r}; this system's stages are: {', '.join(canonical)} (or 'all')"
            )
    if not wanted:
        raise StageError(f"no stage given; choose from: {', '.join(canonical)} (or 'all')")
    return [s for s in canonical if s in wanted]
