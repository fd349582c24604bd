"""Source of the Gradio ``app.py`` written into demo Spaces (kept as text: gradio is not a
dependency of espnet-publish). Placeholders ``__TITLE__`` and ``__SAMPLE_RATE__`` are
replaced with Python literals by :func:`render_app`."""

from __future__ import annotations

__all__ = ["render_app"]

_TEMPLATE = '''\
"""Gradio demo: record or upload speech and get the transcript from an ESPnet model.

The packed model folder ships next to this file in ``model/`` and is loaded once with
``espnet_infer.load_model_folder``.

Usage (locally)::

    pip install -r requirements.txt
    python app.py
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import soundfile as sf
from espnet_infer import load_model_folder

TITLE = __TITLE__
SAMPLE_RATE = __SAMPLE_RATE__
MODEL_DIR = Path(__file__).resolve().parent / "model"
MODEL = load_model_folder(MODEL_DIR)


def _resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Linear-interpolation resampling; enough for a demo, no extra dependency."""
    if orig_sr == target_sr or wav.size == 0:
        return wav
    n_out = int(round(wav.shape[0] * target_sr / orig_sr))
    t_in = np.arange(wav.shape[0], dtype=np.float64) / orig_sr
    t_out = np.arange(n_out, dtype=np.float64) / target_sr
    return np.interp(t_out, t_in, wav).astype(np.float32)


def _decode(wav: np.ndarray) -> str:
    """Run the loaded model on a mono float32 waveform at SAMPLE_RATE."""
    if hasattr(MODEL, "transcribe"):
        result = MODEL.transcribe(wav)
    else:
        result = MODEL(wav)
    if isinstance(result, (list, tuple)):
        result = result[0] if result else ""
    text = getattr(result, "text", result)
    return str(text)


def transcribe(audio_path: str | None) -> str:
    if not audio_path:
        return "Record or upload some audio first."
    wav, sr = sf.read(audio_path, dtype="float32", always_2d=True)
    wav = wav.mean(axis=1)  # mix down to mono
    wav = _resample(wav, int(sr), SAMPLE_RATE)
    return _decode(wav)


demo = gr.Interface(
    fn=transcribe,
    inputs=gr.Audio(sources=["microphone", "upload"], type="filepath", label="Speech"),
    outputs=gr.Textbox(label="Transcript"),
    title=TITLE,
    description=f"ESPnet speech recognition ({SAMPLE_RATE} Hz). Model files: model/.",
)

if __name__ == "__main__":
    demo.launch()
'''


def render_app(*, title: str, sample_rate: int) -> str:
    """Return the text of ``app.py`` with the title and sample rate filled in."""
    return _TEMPLATE.replace("__TITLE__", repr(title)).replace("__SAMPLE_RATE__", repr(int(sample_rate)))
