"""espeak-ng voice variants, their grouping into distinct voices, and speaker splits.

espeak-ng ships ~100 voice *variants* (``espeak-ng-data/voices/!v``), but many
differ only in pitch or in the synthesiser mode (``iven``/``iven2``..``iven4``,
``klatt``..``klatt6``, ``robosoft``..``robosoft8``).  Such variants sound like the
same "speaker", so a speaker-independent split must keep them together.  A
variant's *group* is its name lower-cased with spaces/punctuation removed and
trailing digits stripped, except for the numbered base voices ``m1``..``m8`` and
``f1``..``f5`` (distinct voices), plus the explicit ``_ALIASES`` table.

``split_voices`` shuffles the groups with the seed and assigns the first
``test_groups`` groups to ``test``, the next ``dev_groups`` to ``dev`` and the
rest to ``train``: the three splits are pairwise disjoint by group, so both dev
and test voices are unseen in training and dev never leaks test voices.

Usage::

    from espnet_data.synth import available_voices, split_voices, voice_group
    voices = available_voices()            # sorted variant names
    voice_group("iven3")                   # -> "iven"
    split = split_voices(seed=0, test_groups=8, dev_groups=4)
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from functools import lru_cache

from ._espeak import data_path

__all__ = [
    "EXCLUDED_VOICES",
    "UnknownVoiceError",
    "available_voices",
    "check_voice",
    "sample_voice_groups",
    "split_voices",
    "voice_group",
    "voice_groups",
]

#: Variants left out of the default pool, with the reason.  Written in one place.
EXCLUDED_VOICES: dict[str, str] = {
    "whisper": "whispered, not normal voiced speech",
    "whisperf": "whispered, not normal voiced speech",
}

#: Normalised variant name -> group, for variants whose names do not show the kinship.
_ALIASES: dict[str, str] = {
    "anikarobot": "anika",  # anika with robotic settings
    "anxiousandy": "andy",  # andy's formants at a higher pitch
}

_NUMBERED_BASE = re.compile(r"^[mf]\d+$")  # m1..m8, f1..f5: distinct voices


class UnknownVoiceError(ValueError):
    """A voice variant name that espeak-ng does not ship."""


@lru_cache(maxsize=1)
def _all_variants() -> tuple[str, ...]:
    folder = data_path() / "voices" / "!v"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"espeak-ng voice variants folder {folder} is missing; reinstall espeakng-loader."
        )
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_file()))


def available_voices(include_excluded: bool = False) -> list[str]:
    """Sorted voice variant names usable as ``SynthUtterance.speaker``.

    The variants in ``EXCLUDED_VOICES`` are left out unless ``include_excluded``.
    """
    return [v for v in _all_variants() if include_excluded or v not in EXCLUDED_VOICES]


def check_voice(name: str) -> str:
    """Return ``name`` if espeak-ng ships it, else raise ``UnknownVoiceError``."""
    if name not in _all_variants():
        close = [v for v in _all_variants() if v.lower().startswith(name.lower()[:3])]
        hint = f" Similar names: {', '.join(close)}." if close else ""
        raise UnknownVoiceError(
            f"unknown espeak-ng voice variant {name!r}.{hint} Valid names are listed by "
            "`python -c 'from espnet_data.synth import available_voices; "
            "print(available_voices())'` (names are case-sensitive)."
        )
    return name


def voice_group(name: str) -> str:
    """The audibly-distinct voice a variant belongs to, e.g. ``"klatt4" -> "klatt"``."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    if not key:
        raise UnknownVoiceError(f"voice name {name!r} has no letters or digits")
    if not _NUMBERED_BASE.match(key):
        key = key.rstrip("0123456789") or key
    return _ALIASES.get(key, key)


def voice_groups(voices: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Group -> sorted variants, for ``voices`` (default: ``available_voices()``)."""
    groups: dict[str, list[str]] = {}
    for name in sorted(available_voices() if voices is None else voices):
        groups.setdefault(voice_group(name), []).append(name)
    return groups


def sample_voice_groups(num_groups: int, seed: int = 0) -> list[str]:
    """Every variant of ``num_groups`` voice groups drawn with ``seed``, sorted.

    A smaller pool of voices makes a harder corpus (fewer training voices to generalise
    from); pass the result to :func:`split_voices` as ``voices``.
    """
    groups = voice_groups()
    if not 1 <= num_groups <= len(groups):
        raise ValueError(
            f"num_groups={num_groups}: espeak-ng ships {len(groups)} voice groups "
            f"(variants in EXCLUDED_VOICES left out); choose 1..{len(groups)}"
        )
    order = sorted(groups)
    random.Random(f"sample_voice_groups-{seed}").shuffle(order)
    return sorted(v for g in order[:num_groups] for v in groups[g])


def split_voices(
    seed: int = 0,
    test_groups: int = 8,
    dev_groups: int = 4,
    voices: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """Split voice variants by group into ``{"train", "dev", "test"}`` lists.

    Deterministic in ``seed``; the splits are pairwise disjoint by voice group
    (see the module docstring).  ``voices`` defaults to ``available_voices()``.
    """
    groups = voice_groups(voices)
    if test_groups < 0 or dev_groups < 0:
        raise ValueError(f"test_groups={test_groups} and dev_groups={dev_groups} must be >= 0")
    if test_groups + dev_groups >= len(groups):
        raise ValueError(
            f"test_groups={test_groups} + dev_groups={dev_groups} leaves no training voices: "
            f"only {len(groups)} voice groups are available; lower them."
        )
    for name in voices or ():
        check_voice(name)
    order = sorted(groups)
    random.Random(f"split_voices-{seed}").shuffle(order)
    test = order[:test_groups]
    dev = order[test_groups : test_groups + dev_groups]
    train = order[test_groups + dev_groups :]
    return {
        name: sorted(v for g in chosen for v in groups[g])
        for name, chosen in (("train", train), ("dev", dev), ("test", test))
    }
