"""The TTS ``measure`` stage's scores: intelligibility by an ASR pack, MCD, synthesis RTF.

Intelligibility: the ASR pack named in ``metrics.yaml`` (the mini ASR recipe's by
default) transcribes every synthesised test sentence (resampled to its rate); the
transcripts are scored (CER and WER, ``espnet_infer.scoring``) against the split's
reference transcripts. Beside it, with ``score_real``, the same pack transcribes the
real test audio of the same sentences: the CER the ASR model reaches on natural
speech, the floor the synthetic speech is compared with. A synthesised sentence that
failed (no audio) is scored as an empty hypothesis (all deletions).

The scores file (``out_file``) holds ``asr_cer`` / ``asr_wer`` (percent, the first
test set's), ``real_cer`` / ``real_wer``, ``mcd_db``, ``rtf``, and per set the
details; :func:`format_tts_scores` prints the table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from espnet_data import read_audio
from espnet_data.atomic import read_jsonl
from espnet_data.audio import resample

from .configs import TTSMetricsConfig
from .mcd import mcd

log = logging.getLogger(__name__)

__all__ = ["format_tts_scores", "load_asr", "score_set"]


def load_asr(cfg: TTSMetricsConfig) -> Any:
    """The ASR pack of ``cfg.asr_pack`` as a ``Speech2Text`` (a missing pack names the
    command that makes it)."""
    from espnet_infer import Speech2Text

    pack = Path(cfg.asr_pack)
    if not (pack / "config.yaml").is_file():
        raise FileNotFoundError(
            f"metrics.yaml: asr_pack {cfg.asr_pack} ({pack.resolve()}) holds no packed ASR model: "
            "measure scores the synthesised speech with it. Make it first with "
            "`just asr mini all` (it writes egs/mini/asr/exp/packed), or point asr_pack at another pack"
        )
    d = cfg.asr_decode
    options: dict[str, Any] = {}
    inference = pack / "inference.yaml"
    if inference.is_file():  # the decoding the pack's scores were measured with
        import yaml

        decode = (yaml.safe_load(inference.read_text(encoding="utf-8")) or {}).get("decode") or {}
        options.update({k: v for k, v in decode.items() if k not in ("lm", "nbest", "streaming")})
    options.update({k: v for k, v in (("method", d.method), ("beam_size", d.beam_size)) if v is not None})
    if not d.use_packed_lm:
        options["lm"] = False
        options.pop("lm_weight", None)
    return Speech2Text.from_pretrained(pack, device=cfg.device, **options)


def _batches(items: list[tuple[str, np.ndarray]], size: int) -> Iterator[list[tuple[str, np.ndarray]]]:
    items = sorted(items, key=lambda kv: len(kv[1]))
    for i in range(0, len(items), size):
        yield items[i : i + size]


def transcribe(asr: Any, audios: list[tuple[str, np.ndarray]], batch_size: int) -> dict[str, str]:
    """``key -> transcript`` of waveforms at the ASR model's rate, in length-sorted batches."""
    out: dict[str, str] = {}
    for batch in _batches(audios, max(1, batch_size)):
        texts = asr.transcribe_batch([wav for _, wav in batch])
        out.update({key: text for (key, _), text in zip(batch, texts, strict=True)})
    return out


def _real_audio(split_dir: str, keys: set[str]) -> dict[str, tuple[np.ndarray, int]]:
    from espnet_data.tts.samples import read_tts_samples

    return {s.key: (s.audio, s.sample_rate) for s in read_tts_samples(split_dir, keys=keys)}


def score_set(name: str, split_dir: str, cfg: TTSMetricsConfig, asr: Any) -> dict[str, Any]:
    """Every score of one test set (module docstring)."""
    from espnet_data.tts.samples import read_transcripts
    from espnet_infer.scoring import score_texts

    set_dir = Path(cfg.inference_dir) / name
    index = set_dir / "index.jsonl"
    if not index.is_file():
        raise FileNotFoundError(f"{index} is missing: run the infer stage first (it synthesises {split_dir})")
    rows = read_jsonl(index)
    refs_all = read_transcripts(split_dir)
    refs = {r["key"]: refs_all[r["key"]] for r in rows if r["key"] in refs_all}
    unknown = [r["key"] for r in rows if r["key"] not in refs_all]
    if unknown:
        raise ValueError(f"{index}: {len(unknown)} keys (e.g. {unknown[0]}) are not in {split_dir}'s "
                         "index: infer synthesised another split; run infer again")
    made = [r for r in rows if "error" not in r]
    synth: dict[str, np.ndarray] = {}
    synth_rate = None
    for r in made:
        wav, rate = read_audio(set_dir / r["wav"])
        synth_rate = rate
        synth[r["key"]] = wav
    rate = asr.sample_rate
    norm = {"uppercase": cfg.uppercase, "strip_punctuation": cfg.strip_punctuation}
    t0 = time.perf_counter()
    hyps = transcribe(asr, [(k, resample(w, synth_rate or rate, rate)) for k, w in synth.items()],
                      cfg.asr_decode.max_batch_size)
    synth_result = score_texts(refs, hyps, allow_incomplete=True, **norm)
    log.info("%s: ASR of %d synthesised sentences in %.1f s: CER %.2f%%", name, len(hyps),
             time.perf_counter() - t0, 100 * synth_result.cer)
    out: dict[str, Any] = {
        "num_utterances": len(rows), "failed": len(rows) - len(made),
        "asr_cer": round(100 * synth_result.cer, 2), "asr_wer": round(100 * synth_result.wer, 2),
        "asr_details": synth_result.to_dict(),
        "audio_seconds": round(sum(r.get("seconds", 0.0) for r in made), 3),
        "synth_seconds": round(sum(r.get("synth_seconds", 0.0) for r in made), 3),
    }
    out["rtf"] = round(out["synth_seconds"] / out["audio_seconds"], 4) if out["audio_seconds"] else None
    real: dict[str, tuple[np.ndarray, int]] = {}
    if cfg.score_real or cfg.mcd:
        real = _real_audio(split_dir, set(refs))
    if cfg.score_real:
        real_hyps = transcribe(asr, [(k, resample(w, sr, rate)) for k, (w, sr) in real.items()],
                               cfg.asr_decode.max_batch_size)
        real_result = score_texts(refs, real_hyps, allow_incomplete=True, **norm)
        out.update(real_cer=round(100 * real_result.cer, 2), real_wer=round(100 * real_result.wer, 2),
                   real_details=real_result.to_dict())
    if cfg.mcd and synth:
        values = [mcd(synth[k], resample(real[k][0], real[k][1], synth_rate or real[k][1]),
                      synth_rate or real[k][1], cfg.mcd_coefficients)
                  for k in sorted(synth) if k in real]
        out["mcd_db"] = round(float(np.mean(values)), 3) if values else None
        out["mcd_utterances"] = len(values)
    return out


def summarize(per_set: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The scores file: the first set's headline figures at the top, every set below."""
    first = next(iter(per_set.values()))
    top = {k: first.get(k) for k in ("asr_cer", "asr_wer", "real_cer", "real_wer", "mcd_db", "rtf")
           if first.get(k) is not None}
    return {**top, "sets": dict(per_set)}


def format_tts_scores(scores: Mapping[str, Any]) -> str:
    """The table ``measure`` prints: per set, CER/WER of synthesised vs real audio, MCD, RTF."""
    sets = scores.get("sets", {})
    head = (f"{'set':<10} {'ASR CER % (synth)':>18} {'CER % (real)':>13} {'WER % (synth)':>14} "
            f"{'WER % (real)':>13} {'MCD dB':>7} {'RTF':>7} {'utts':>5}")
    lines = [head]

    def cell(value: Any, width: int, fmt: str = ".2f") -> str:
        return f"{value:>{width}{fmt}}" if isinstance(value, int | float) else f"{'-':>{width}}"

    for name, s in sets.items():
        lines.append(
            f"{name:<10} {cell(s.get('asr_cer'), 18)} {cell(s.get('real_cer'), 13)} "
            f"{cell(s.get('asr_wer'), 14)} {cell(s.get('real_wer'), 13)} {cell(s.get('mcd_db'), 7)} "
            f"{cell(s.get('rtf'), 7, '.3f')} {s.get('num_utterances', 0):>5}"
            + (f"  ({s['failed']} failed)" if s.get("failed") else "")
        )
    return "\n".join(lines)
