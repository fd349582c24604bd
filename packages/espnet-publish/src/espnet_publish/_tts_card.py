"""The model card of a packed text-to-speech model (``config.yaml: task: tts``).

Front matter: ``pipeline_tag: text-to-speech``, tags ``[espnet, text-to-speech]``,
``library_name: espnet-infer`` and, when the TTS ``measure`` stage's ``scores.json`` is
packed, a ``model-index`` with the intelligibility (CER/WER of the synthesised test
sentences transcribed by an ASR model) and the mel-cepstral distortion. The body says
what the model is, lists its settings and scores, and shows how to load it with
``espnet_infer.Text2Speech``.

``scores.json`` shape (espnet-system's TTS ``measure``; values in percent, MCD in dB)::

    {"asr_cer": 6.1, "real_cer": 2.3, "mcd_db": 7.4, "rtf": 0.05,
     "sets": {"test": {"asr_cer": 6.1, "asr_wer": 12.0, "real_cer": 2.3, ...}}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ._release import compatible_requirement
from .errors import PublishError

__all__ = ["build_tts_card", "load_tts_scores"]

_LOADER = "espnet-infer"
_COLUMNS = (("asr_cer", "CER % (synthesised)"), ("real_cer", "CER % (real audio)"),
            ("asr_wer", "WER % (synthesised)"), ("real_wer", "WER % (real audio)"),
            ("mcd_db", "MCD dB"), ("rtf", "RTF"))


def load_tts_scores(path: Path) -> dict[str, dict[str, float]]:
    """``test set -> {asr_cer, real_cer, asr_wer, real_wer, mcd_db, rtf}`` of a TTS
    ``scores.json`` (numbers only)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise PublishError(f"scores file {path} cannot be read as JSON: {e}") from e
    sets = data.get("sets") if isinstance(data, dict) else None
    if not isinstance(sets, dict):
        raise PublishError(f"{path}: a TTS scores file has 'sets': {{name: {{asr_cer: ...}}}} "
                           "(written by the TTS system's measure stage)")
    return {str(name): {k: float(v) for k, v in values.items()
                        if k in dict(_COLUMNS) and isinstance(v, int | float) and not isinstance(v, bool)}
            for name, values in sets.items() if isinstance(values, dict)}


def _rows(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    model = config.get("model") if isinstance(config.get("model"), Mapping) else {}
    conf = model.get("tts_conf") if isinstance(model.get("tts_conf"), Mapping) else {}
    feats = model.get("feats_extract_conf") if isinstance(model.get("feats_extract_conf"), Mapping) else {}
    training = config.get("training") if isinstance(config.get("training"), Mapping) else {}
    rows = [
        ("Acoustic model", str(model.get("tts")) if model.get("tts") else None),
        ("Attention dim / layers", f"{conf.get('adim', '?')} / {conf.get('elayers', '?')} enc, "
                                   f"{conf.get('dlayers', '?')} dec" if conf else None),
        ("Mel", f"{feats.get('n_mels', 80)} bands, hop {feats.get('hop_length', 256)}, "
                f"FFT {feats.get('n_fft', 1024)}" if feats else None),
        ("Pitch / energy", f"{model.get('pitch_extract') or 'off'} / {model.get('energy_extract') or 'off'}"),
        ("Front-end", "espeak-ng phonemes"),
        ("Vocabulary size", str(config["vocab_size"]) if "vocab_size" in config else None),
        ("Sample rate", f"{config['sample_rate']} Hz" if "sample_rate" in config else None),
        ("Parameters", f"{training['parameters'] / 1e6:.1f} M" if isinstance(training.get("parameters"), int) else None),
    ]
    return [(k, v) for k, v in rows if v]


def _card_data(model_name: str, license: str, language: str, scores: Mapping[str, Mapping[str, float]],
               datasets: Sequence[str]) -> ModelCardData:
    results = [
        EvalResult(task_type="text-to-speech", task_name="Speech Synthesis", dataset_type=test_set,
                   dataset_name=test_set, metric_type=metric, metric_value=values[metric], metric_name=name)
        for test_set, values in scores.items()
        for metric, name in (("asr_cer", "CER of ASR transcripts"), ("mcd_db", "MCD (dB)"))
        if metric in values
    ]
    return ModelCardData(language=[language], license=license, library_name=_LOADER,
                         tags=["espnet", "text-to-speech"], datasets=list(datasets) or None,
                         pipeline_tag="text-to-speech", model_name=model_name if results else None,
                         eval_results=results or None)


def build_tts_card(*, config: Mapping[str, Any], model_name: str, license: str, language: str,
                   scores: Mapping[str, Mapping[str, float]], repo_id: str | None = None,
                   images: Sequence[str] = (), datasets: Sequence[str] = (), **_: Any) -> ModelCard:
    """The ``huggingface_hub.ModelCard`` of a packed TTS model (``str(card)`` is ``README.md``)."""
    source = repo_id or f"<owner>/{model_name}"
    rows = _rows(config)
    parts = [
        f"# {model_name}\n",
        f"An ESPnet text-to-speech model ({language}): a non-autoregressive acoustic model "
        "(FastSpeech2) from espeak-ng phonemes to log-mel spectrograms, trained on durations from "
        "CTC forced alignment, packed with `espnet-publish` into a folder `espnet-infer` loads.\n",
        "## Model\n",
        "| | |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows) + "\n",
    ]
    if scores:
        cols = [(k, n) for k, n in _COLUMNS if any(k in s for s in scores.values())]
        table = "| set | " + " | ".join(n for _, n in cols) + " |\n|---|" + "---|" * len(cols) + "\n"
        table += "\n".join(f"| {name} | " + " | ".join(f"{s[k]:.2f}" if k in s else "-" for k, _ in cols) + " |"
                           for name, s in scores.items())
        parts += ["## Results\n", table + "\n",
                  "CER/WER: the synthesised test sentences transcribed by an ASR model, beside the "
                  "same model's error rates on the real recordings of those sentences; MCD: "
                  "mel-cepstral distortion against the real recordings (DTW-aligned); RTF: "
                  "synthesis seconds per second of audio.\n"]
    if images:
        parts.append("### Training curves\n")
        parts.append("\n".join(f"![{Path(rel).stem}]({rel})" for rel in images) + "\n")
    parts += [
        "## How to use\n",
        f'```bash\npip install "{compatible_requirement(_LOADER)}"\n```\n\n'
        "```python\nimport soundfile as sf\nfrom espnet_infer import Text2Speech\n\n"
        f'tts = Text2Speech.from_pretrained("hf://{source}")  # Griffin-Lim vocoder\n'
        'out = tts("The birch canoe slid on the smooth planks.")\n'
        'sf.write("out.wav", out["wav"].numpy(), tts.fs)\n```\n\n'
        "`vocoder=` takes a vocoder folder (HiFi-GAN, `task: vocoder`) of the same sample rate "
        "and mel settings. Every file loaded is checked against the sha256 digests in `meta.yaml`.\n",
        "## Files\n",
        "`config.yaml` (`task: tts`, the model block with its mel settings, tokenizer and training "
        "summary), `model.safetensors`, `tokenizer/` (the phoneme token list and front-end), "
        "`stats.npz` (mel statistics), `inference.yaml`, `scores.json`, and `meta.yaml` with the size "
        "and sha256 of every file.\n",
    ]
    return ModelCard(f"---\n{_card_data(model_name, license, language, scores, datasets).to_yaml()}\n---\n"
                     + "\n".join(parts))
