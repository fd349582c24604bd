"""Source of the Gradio ``app.py`` of a TTS demo Space (kept as text: gradio is not a
dependency of espnet-publish). Placeholders ``__TITLE__`` and ``__SAMPLE_RATE__`` are
replaced with Python literals, ``__GRADIO_VERSION__`` with the Gradio version text, by
:func:`render_tts_app`."""

from __future__ import annotations

__all__ = ["render_tts_app"]

_TEMPLATE = '''\
"""Gradio demo: type text, hear it spoken by an ESPnet text-to-speech model.

The packed model folder ships next to this file in ``model/``; it is loaded once, on the
first request, with ``espnet_infer.Text2Speech`` (Griffin-Lim vocoder), its files
checked against ``model/meta.yaml``. ``speak`` needs no Gradio:
``python -c "import app; print(app.speak('Hello there.')[1].shape)"``.

Usage (locally; on a Space, Gradio comes from README.md's ``sdk_version``)::

    pip install -r requirements.txt "gradio==__GRADIO_VERSION__"
    python app.py
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from espnet_infer import Text2Speech

TITLE = __TITLE__
SAMPLE_RATE = __SAMPLE_RATE__
MODEL_DIR = Path(__file__).resolve().parent / "model"
MAX_CHARS = 1000  # a demo request; Text2Speech itself cuts long text at punctuation


@functools.cache
def text2speech() -> Text2Speech:
    """The model, loaded on first use."""
    return Text2Speech.from_pretrained(MODEL_DIR)


def speak(text: str) -> tuple[int, np.ndarray]:
    """``(sample rate, int16 waveform)`` of ``text``; bad text raises ValueError naming it."""
    if not text or not text.strip():
        raise ValueError("Type some text first.")
    if len(text) > MAX_CHARS:
        raise ValueError(f"{len(text)} characters: this demo speaks at most {MAX_CHARS}.")
    tts = text2speech()
    wav = tts(text)["wav"].numpy()
    return tts.fs, (np.clip(wav, -1.0, 1.0) * 32767).astype(np.int16)


def build_demo():  # noqa: ANN201 (gradio is imported here only)
    import gradio as gr

    def run(text: str) -> tuple[int, np.ndarray]:
        try:
            return speak(text)
        except ValueError as err:  # empty text, characters the front-end cannot speak
            raise gr.Error(str(err)) from None

    return gr.Interface(
        fn=run,
        inputs=gr.Textbox(label="Text", lines=3, placeholder="Type an English sentence."),
        outputs=gr.Audio(label="Speech", type="numpy"),
        title=TITLE,
        description=f"ESPnet text-to-speech ({SAMPLE_RATE} Hz). Model files: model/.",
    )


if __name__ == "__main__":
    build_demo().launch()
'''


def render_tts_app(*, title: str, sample_rate: int, gradio_version: str) -> str:
    """Return the text of a TTS ``app.py`` with the title, sample rate and Gradio filled in."""
    return (
        _TEMPLATE.replace("__GRADIO_VERSION__", gradio_version)
        .replace("__TITLE__", repr(title))
        .replace("__SAMPLE_RATE__", repr(int(sample_rate)))
    )
