"""Source of the Gradio ``app.py`` written into demo Spaces (kept as text: gradio is not a
dependency of espnet-publish). Placeholders ``__TITLE__``, ``__SAMPLE_RATE__`` and
``__TRUST_REMOTE_CODE__`` are replaced with Python literals, ``__GRADIO_VERSION__`` with the
Gradio version text, by :func:`render_app`."""

from __future__ import annotations

__all__ = ["render_app"]

_TEMPLATE = '''\
"""Gradio demo: record or upload speech and get the transcript from an ESPnet model.

The packed model folder ships next to this file in ``model/``; it is loaded once, on the
first request, with ``espnet_infer.Speech2Text`` and decoded with the settings of
``model/inference.yaml`` (those the model card's scores were measured with), with the
language model it names (``model/lm/``) when it carries one. Its files
are checked against ``model/meta.yaml`` when it loads; ``TRUST_REMOTE_CODE`` (set by
``pack_demo``) lets a model block that names its own code (``class_path``) be built.
``transcribe`` needs no Gradio: ``python -c "import app; print(app.transcribe('a.wav'))"``.

Usage (locally; on a Space, Gradio comes from README.md's ``sdk_version``)::

    pip install -r requirements.txt "gradio==__GRADIO_VERSION__"
    python app.py
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from espnet_data.audio import read_audio, resample
from espnet_infer import DecodeConfig, Speech2Text

TITLE = __TITLE__
SAMPLE_RATE = __SAMPLE_RATE__
TRUST_REMOTE_CODE = __TRUST_REMOTE_CODE__
MODEL_DIR = Path(__file__).resolve().parent / "model"


@functools.cache
def speech2text() -> Speech2Text:
    """The model, loaded on first use with the packed decoding settings."""
    inference = MODEL_DIR / "inference.yaml"
    decode = {}
    if inference.is_file():
        decode = (yaml.safe_load(inference.read_text(encoding="utf-8")) or {}).get("decode") or {}
    decode.pop("lm", None)  # a language model packed in model/lm/: from_pretrained fuses it
    return Speech2Text.from_pretrained(MODEL_DIR, decode=DecodeConfig(**decode),
                                       trust_remote_code=TRUST_REMOTE_CODE)


def transcribe(audio_path: str | None) -> str:
    """Transcript of an audio file (any sample rate; channels are mixed down)."""
    if not audio_path:
        return "Record or upload some audio first."
    s2t = speech2text()
    wav, rate = read_audio(audio_path, channel=None)
    return s2t.transcribe([resample(wav, rate, s2t.sample_rate)])[0]


def build_demo():  # noqa: ANN201 (gradio is imported here only)
    import gradio as gr

    return gr.Interface(
        fn=transcribe,
        inputs=gr.Audio(sources=["microphone", "upload"], type="filepath", label="Speech"),
        outputs=gr.Textbox(label="Transcript"),
        title=TITLE,
        description=f"ESPnet speech recognition ({SAMPLE_RATE} Hz). Model files: model/.",
    )


if __name__ == "__main__":
    build_demo().launch()
'''


def render_app(*, title: str, sample_rate: int, trust_remote_code: bool = False,
               gradio_version: str) -> str:
    """Return the text of ``app.py`` with the title, sample rate, trust and Gradio filled in."""
    return (
        _TEMPLATE.replace("__GRADIO_VERSION__", gradio_version)
        .replace("__TITLE__", repr(title))
        .replace("__SAMPLE_RATE__", repr(int(sample_rate)))
        .replace("__TRUST_REMOTE_CODE__", repr(bool(trust_remote_code)))
    )
