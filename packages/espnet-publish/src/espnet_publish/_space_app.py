"""Source of the Gradio ``app.py`` written into demo Spaces (kept as text: gradio is not a
dependency of espnet-publish). Placeholders ``__TITLE__`` and ``__SAMPLE_RATE__`` are
replaced with Python literals by :func:`render_app`."""

from __future__ import annotations

__all__ = ["render_app"]

_TEMPLATE = '''\
"""Gradio demo: record or upload speech and get the transcript from an ESPnet model.

The packed model folder ships next to this file in ``model/`` and is loaded once with
``espnet_infer.Speech2Text``.

Usage (locally)::

    pip install -r requirements.txt
    python app.py
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from espnet_data.audio import read_audio, resample
from espnet_infer import DecodeConfig, Speech2Text

TITLE = __TITLE__
SAMPLE_RATE = __SAMPLE_RATE__
MODEL_DIR = Path(__file__).resolve().parent / "model"
S2T = Speech2Text(MODEL_DIR, decode=DecodeConfig(method="beam_search", beam_size=5))


def transcribe(audio_path: str | None) -> str:
    if not audio_path:
        return "Record or upload some audio first."
    wav, rate = read_audio(audio_path, channel=None)  # mixed down to mono
    return S2T.transcribe([resample(wav, rate, SAMPLE_RATE)])[0]


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
