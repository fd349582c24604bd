"""Vocoder/acoustic-model compatibility: refuse a pair that would speak at the wrong rate
or read a mel it was not made for."""

from __future__ import annotations

from typing import Any, Protocol

# the settings both must share (fs is checked as sample_rate)
MEL_KEYS = ("n_fft", "hop_length", "win_length", "window", "n_mels", "fmin", "fmax", "htk")


class _Speaks(Protocol):
    sample_rate: int
    feats_extract_conf: dict[str, Any]


def check_vocoder(acoustic: _Speaks, vocoder: _Speaks) -> None:
    """Raise ``ValueError`` naming both values when ``vocoder``'s sampling rate or mel settings
    differ from ``acoustic``'s (e.g. a 22.05 kHz vocoder on a 16 kHz FastSpeech2)."""
    for name, obj in (("acoustic model", acoustic), ("vocoder", vocoder)):
        if not isinstance(getattr(obj, "sample_rate", None), int) or not isinstance(getattr(obj, "feats_extract_conf", None), dict):
            raise TypeError(f"the {name} ({type(obj).__name__}) has no sample_rate / feats_extract_conf")
    if acoustic.sample_rate != vocoder.sample_rate:
        raise ValueError(
            f"sample-rate mismatch: the acoustic model makes {acoustic.sample_rate} Hz features but the vocoder "
            f"({type(vocoder).__name__}) was built for {vocoder.sample_rate} Hz; use a vocoder trained on the same fs"
        )
    diff = [
        f"{k}: acoustic {acoustic.feats_extract_conf.get(k)!r} vs vocoder {vocoder.feats_extract_conf.get(k)!r}"
        for k in MEL_KEYS
        if acoustic.feats_extract_conf.get(k) != vocoder.feats_extract_conf.get(k)
    ]
    if diff:
        raise ValueError(f"mel-setting mismatch between the acoustic model and the vocoder ({type(vocoder).__name__}): " + "; ".join(diff))
