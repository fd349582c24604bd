"""Source of the Gradio ``app.py`` written into ASR demo Spaces (kept as text: gradio is
not a dependency of espnet-publish).

Every app transcribes a recorded or uploaded file (``transcribe``). An app for a model
that streams (``live=True``) also transcribes the microphone while the person speaks:
plain functions ``live_chunk`` / ``live_stop`` that Gradio's streaming microphone calls,
kept free of Gradio so that they can be tested without it. Placeholders ``__TITLE__``,
``__SAMPLE_RATE__`` and ``__TRUST_REMOTE_CODE__`` are replaced with Python literals,
``__GRADIO_VERSION__`` with the Gradio version text, by :func:`render_app`.
"""

from __future__ import annotations

__all__ = ["render_app"]

_DOCSTRING = '''\
"""Gradio demo: record or upload speech and get the transcript from an ESPnet model.

The packed model folder ships next to this file in ``model/``; it is loaded once, on the
first request, with ``espnet_infer.Speech2Text`` and decoded with the settings of
``model/inference.yaml`` (those the model card's scores were measured with), with the
language model it names (``model/lm/``) when it carries one. Its files
are checked against ``model/meta.yaml`` when it loads; ``TRUST_REMOTE_CODE`` (set by
``pack_demo``) lets a model block that names its own code (``class_path``) be built.
``transcribe`` needs no Gradio: ``python -c "import app; print(app.transcribe('a.wav'))"``.
'''

_LIVE_DOCSTRING = """
Live tab (the model's encoder streams): Gradio's streaming microphone sends a chunk every
``STREAM_EVERY_S`` seconds while the person speaks; ``live_chunk`` feeds it to the
recording's stream (``espnet_infer.Speech2TextStreaming``, with ``decode.streaming``'s
mode and blocks) and shows the partial transcript; ``live_stop`` ends the stream when
recording stops and shows the final one. They need no Gradio either.
"""

_USAGE = '''
Usage (locally; on a Space, Gradio comes from README.md's ``sdk_version``)::

    pip install -r requirements.txt "gradio==__GRADIO_VERSION__"
    python app.py
"""

from __future__ import annotations

'''

_IMPORTS = """\
import functools
from pathlib import Path

import yaml
from espnet_data.audio import read_audio, resample
from espnet_infer import DecodeConfig, Speech2Text
"""

_LIVE_IMPORTS = """\
import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from espnet_data.audio import StreamingResampler, check_finite, read_audio, resample, to_mono
from espnet_infer import DecodeConfig, Speech2Text, Speech2TextStreaming
from espnet_infer.streaming import Stream
"""

_CORE = '''
TITLE = __TITLE__
SAMPLE_RATE = __SAMPLE_RATE__
TRUST_REMOTE_CODE = __TRUST_REMOTE_CODE__
MODEL_DIR = Path(__file__).resolve().parent / "model"


def decode_settings() -> dict:
    """The ``decode`` block of ``model/inference.yaml`` (``{}`` without one)."""
    inference = MODEL_DIR / "inference.yaml"
    if not inference.is_file():
        return {}
    return dict((yaml.safe_load(inference.read_text(encoding="utf-8")) or {}).get("decode") or {})


@functools.cache
def speech2text() -> Speech2Text:
    """The model, loaded on first use with the packed decoding settings."""
    decode = decode_settings()
    decode.pop("lm", None)  # a language model packed in model/lm/: from_pretrained fuses it
    decode.pop("streaming", None)  # a whole file is decoded offline
    return Speech2Text.from_pretrained(MODEL_DIR, decode=DecodeConfig(**decode),
                                       trust_remote_code=TRUST_REMOTE_CODE)


def transcribe(audio_path: str | None) -> str:
    """Transcript of an audio file (any sample rate; channels are mixed down)."""
    if not audio_path:
        return "Record or upload some audio first."
    s2t = speech2text()
    wav, rate = read_audio(audio_path, channel=None)
    return s2t.transcribe([resample(wav, rate, s2t.sample_rate)])[0]
'''

_LIVE = '''

STREAM_EVERY_S = 0.5
"""Seconds of microphone audio in each chunk Gradio sends while recording."""
LIVE_RECORDINGS = 4
"""Recordings transcribed live at once; more wait in Gradio's queue."""


@functools.cache
def speech2text_streaming() -> Speech2TextStreaming:
    """The live decoder over :func:`speech2text`'s model: ``decode``'s beam size, CTC weight,
    penalty and ``maxlenratio``, ``decode.streaming``'s mode and blocks (``joint`` without
    one). ``chunk_ms`` does not apply: the microphone's chunks are what they are."""
    streaming = dict(decode_settings().get("streaming") or {})
    streaming.pop("chunk_ms", None)
    return Speech2TextStreaming.from_speech2text(speech2text(), **streaming)


class LiveSession:
    """One recording being transcribed: its stream, its resampler (made at the first
    chunk, at that chunk's rate) and its latest transcript.

    Kept in the page's ``gr.State``. ``lock`` orders :func:`live_chunk` and
    :func:`live_stop`, which Gradio may run at the same time for one page.
    """

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.resampler: StreamingResampler | None = None
        self.text = ""
        self.lock = threading.Lock()

    @property
    def finished(self) -> bool:
        """The stream was ended by :func:`live_stop`."""
        return self.stream.finished


def chunk_samples(chunk: tuple[int, Any]) -> tuple[int, np.ndarray]:
    """``(sample_rate, float32 mono samples in [-1, 1])`` of a Gradio microphone chunk.

    Gradio sends ``(sample_rate, samples)``: int16 samples are divided by 32768 (another
    signed integer type by its range), float samples are kept; ``(n, channels)`` arrays
    are mixed down (the mean of the channels). Raises ``ValueError`` (naming the chunk)
    for a rate that is not positive, unsigned or non-numeric samples, and NaN or
    infinite samples.
    """
    rate, data = chunk
    rate = int(rate)
    if rate <= 0:
        raise ValueError(f"microphone chunk at {rate} Hz: the sample rate must be positive")
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.signedinteger):
        data = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    elif not np.issubdtype(data.dtype, np.floating):
        raise ValueError(
            f"microphone chunk of {data.dtype} samples: expected int16 or float samples"
        )
    mono = to_mono(data, name="microphone chunk")
    check_finite(mono, "microphone chunk")
    return rate, mono


def live_chunk(
    session: LiveSession | None, chunk: tuple[int, Any] | None
) -> tuple[LiveSession, str]:
    """Feed one microphone chunk; return the session and its partial transcript.

    A recording's first chunk (no session yet, or the previous recording's session that
    :func:`live_stop` finished) starts a new stream. The chunk is converted
    (:func:`chunk_samples`), resampled to the model's rate across chunk edges (the
    samples resampling the whole recording gives) and fed. ``None`` or an empty chunk
    changes nothing. A bad chunk raises ``ValueError`` before the session changes; a
    chunk at another rate than the recording's first is refused the same way. A chunk
    that reaches a session which :func:`live_stop` finished while it waited is dropped
    (the recording had stopped).
    """
    s2t = speech2text_streaming()
    if session is None or session.finished:
        session = LiveSession(stream=s2t.start())
    if chunk is None:
        return session, session.text
    rate, samples = chunk_samples(chunk)
    with session.lock:
        if session.finished:
            return session, session.text
        if session.resampler is None:
            session.resampler = StreamingResampler(rate, s2t.sample_rate)
        elif rate != session.resampler.orig_rate:
            raise ValueError(
                f"microphone chunk at {rate} Hz in a recording at "
                f"{session.resampler.orig_rate} Hz; stop and record again"
            )
        result = s2t.feed(session.stream, session.resampler.push(samples))
        session.text = result.text or ""
    return session, session.text


def live_stop(session: LiveSession | None) -> tuple[LiveSession | None, str]:
    """End the recording's stream (the resampler's last samples, ``final=True``); return
    the session and the final transcript. No session, or a finished one, is returned as
    it is."""
    if session is None:
        return None, ""
    with session.lock:
        if not session.finished:
            rest = (session.resampler.push(np.zeros(0, np.float32), final=True)
                    if session.resampler is not None else np.zeros(0, np.float32))
            result = speech2text_streaming().feed(session.stream, rest, final=True)
            session.text = result.text or ""
    return session, session.text
'''

_OFFLINE_DEMO = """

def build_demo():  # noqa: ANN201 (gradio is imported here only)
    import gradio as gr

    return gr.Interface(
        fn=transcribe,
        inputs=gr.Audio(sources=["microphone", "upload"], type="filepath", label="Speech"),
        outputs=gr.Textbox(label="Transcript"),
        title=TITLE,
        description=f"ESPnet speech recognition ({SAMPLE_RATE} Hz). Model files: model/.",
    )
"""

_LIVE_DEMO = """

def build_demo():  # noqa: ANN201 (gradio is imported here only)
    import gradio as gr

    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\\n\\nESPnet speech recognition ({SAMPLE_RATE} Hz). "
                    "Model files: model/.")
        with gr.Tab("Live"):
            gr.Markdown("Record and speak: the transcript grows while you talk and is "
                        "final when you stop.")
            microphone = gr.Audio(sources=["microphone"], streaming=True, type="numpy",
                                  label="Microphone")
            live_text = gr.Textbox(label="Transcript")
            session = gr.State(None)
            microphone.stream(live_chunk, inputs=[session, microphone],
                              outputs=[session, live_text], stream_every=STREAM_EVERY_S,
                              concurrency_limit=LIVE_RECORDINGS, show_progress="hidden")
            microphone.stop_recording(live_stop, inputs=[session], outputs=[session, live_text],
                                      concurrency_limit=LIVE_RECORDINGS,
                                      show_progress="hidden")
        with gr.Tab("Record or upload"):
            speech = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Speech")
            text = gr.Textbox(label="Transcript")
            gr.Button("Transcribe", variant="primary").click(transcribe, inputs=speech,
                                                             outputs=text)
    return demo
"""

_MAIN = """

if __name__ == "__main__":
    build_demo().launch()
"""


def render_app(
    *,
    title: str,
    sample_rate: int,
    trust_remote_code: bool = False,
    gradio_version: str,
    live: bool = False,
) -> str:
    """Return the text of ``app.py`` with the title, sample rate, trust and Gradio filled in.

    ``live=True`` (a model whose encoder streams) adds the live microphone tab and its
    functions; the record-or-upload transcription is the same either way.
    """
    parts = [
        _DOCSTRING,
        _LIVE_DOCSTRING if live else "",
        _USAGE,
        _LIVE_IMPORTS if live else _IMPORTS,
        _CORE,
        _LIVE if live else "",
        _LIVE_DEMO if live else _OFFLINE_DEMO,
        _MAIN,
    ]
    return (
        "".join(parts)
        .replace("__GRADIO_VERSION__", gradio_version)
        .replace("__TITLE__", repr(title))
        .replace("__SAMPLE_RATE__", repr(int(sample_rate)))
        .replace("__TRUST_REMOTE_CODE__", repr(bool(trust_remote_code)))
    )
