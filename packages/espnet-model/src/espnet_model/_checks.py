"""Argument checks shared by the configurable modules (private)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


def check_choice(key: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ``ValueError`` naming ``key``, ``value`` and the valid ``choices``."""
    options = tuple(choices)
    if value not in options:
        raise ValueError(
            f"{key}={value!r} is not supported; choose one of {', '.join(map(repr, options))}"
        )


def check_positive(key: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` when ``value`` is negative (or zero unless ``allow_zero``)."""
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{key}={value!r} must be {bound}")


def check_divisible(key: str, value: int, divisor_key: str, divisor: int) -> None:
    """Raise ``ValueError`` unless ``value`` is a multiple of ``divisor``."""
    if divisor <= 0 or value % divisor != 0:
        raise ValueError(
            f"{key}={value} must be divisible by {divisor_key}={divisor}; "
            f"pick e.g. {key}={max(divisor, 1) * max(value // max(divisor, 1), 1)}"
        )


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the candidate closest to ``name``, or ``""``."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
