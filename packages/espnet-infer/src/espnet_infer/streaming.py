"""Speech2TextStreaming: feed audio in chunks, read partial transcripts, many streams at once.

Usage::

    from espnet_infer import Speech2TextStreaming
    s2t = Speech2TextStreaming.from_pretrained("exp/train/model", mode="joint")
    stream = s2t.start()
    for chunk in chunks:                                # 1-D float arrays, any length
        partial = s2t.feed(stream, chunk)               # a StreamResult
        print(partial.text)
    print(s2t.feed(stream, [], final=True).text)        # the final transcript

    a, b = s2t.start(), s2t.start()                     # streams batched on one model
    ra, rb = s2t.feed([a, b], [chunk_a, chunk_b], final=[False, True])

The model needs a streaming encoder (``encoder: contextual_block_conformer``). Per
stream the features are computed frame-exactly from the samples so far
(:mod:`espnet_model.frontend_stream`), the encoder runs block by block
(:mod:`espnet_model.encoders.block_stream`), and the search is one of:

- ``joint``: blockwise synchronous joint CTC/attention beam search (ESPnet2's
  ``Speech2TextStreaming``; :mod:`espnet_infer.decode.blockwise`);
- ``ctc_prefix``: frame-synchronous CTC prefix beam search (cheaper, no decoder);
- ``ctc_greedy``: best-path CTC.

The two beam searches can fuse a language model (``lm=``, ``lm_weight=``; shallow
fusion as offline).

The features, the encoder and the joint search of all streams fed together run as one
batch (one decoder step per search step for all streams' hypotheses). The final
transcript does not depend on how the audio was cut into chunks.

Input rules (a bad chunk raises ``ValueError`` before any stream of the call changes, so
a stream never loses audio it was given): chunks are 1-D float waveforms at the model's
sample rate (a ``sample_rate`` that differs is refused: resample first); NaN or infinite
samples are refused; integer samples are refused (scale them to [-1, 1]); a zero-length
chunk is accepted and changes nothing (with ``final`` it ends the stream); feeding a
finished stream raises.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np
import torch
from espnet_model.encoders.block_stream import BlockStreamState, stream_step
from espnet_model.encoders.contextual_block_conformer import ContextualBlockConformerEncoder
from espnet_model.frontend_stream import FeatureStreamState, StreamingFeatures
from espnet_model.frozen_block import freeze_block_encoder
from espnet_model.subsampling import _STAGES

from .decode.blockwise import BlockwiseBeamSearch, BlockwiseState
from .decode.ctc_stream import CTCGreedyStream, CTCPrefixStream
from .decode.protocol import fused_lm

__all__ = ["Speech2TextStreaming", "Stream", "StreamMode", "StreamResult", "StreamingDecoder"]

StreamMode = Literal["joint", "ctc_prefix", "ctc_greedy"]
_MODES = ("joint", "ctc_prefix", "ctc_greedy")


@dataclass(frozen=True)
class StreamResult:
    """A stream's transcript after a call: partial until ``final``.

    Attributes:
        text: the detokenised transcript (None without a tokenizer).
        tokens: its token ids.
        final: the stream has ended and this is its result.
        samples: samples received so far.
        frames: encoder frames decoded so far.
        score: the hypothesis's score (joint: the weighted total; ctc_prefix: its CTC
            log-probability, plus ``lm_weight`` times its LM log-probability with an LM,
            ``eos`` included in the final result; ctc_greedy: the best path's
            log-probability).
        endpoint: with ``endpoint_ms``, the last ``endpoint_ms`` of encoder frames are all
            CTC blank (best path): the speaker seems to have stopped. The stream goes on
            until fed ``final=True``; ending it there is the caller's choice.
        scores: the score's unweighted parts, as offline ``Transcript.scores``: joint
            ``att`` and, when used, ``ctc`` and ``lm``; ctc_prefix ``ctc`` (and ``lm``);
            ctc_greedy ``ctc_path``.
    """

    text: str | None
    tokens: list[int]
    final: bool
    samples: int
    frames: int
    score: float = 0.0
    endpoint: bool = False
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(eq=False)
class Stream:
    """One audio stream's state (features, encoder, search); made by
    :meth:`Speech2TextStreaming.start`."""

    features: FeatureStreamState = field(default_factory=FeatureStreamState)
    encoder: BlockStreamState = field(default_factory=BlockStreamState)
    search: Any = None
    frames: int = 0
    blank_run: int = 0
    finished: bool = False
    result: StreamResult | None = None


class Speech2TextStreaming:
    """Streaming recognition with a contextual-block model.

    Args:
        model: an ``espnet_model.ASRModel`` whose encoder is a
            ``ContextualBlockConformerEncoder``; put in eval mode here.
        tokenizer: turns token ids into text (``decode(ids) -> str``), or None.
        sample_rate: the model's sampling rate in Hz.
        mode: ``joint`` | ``ctc_prefix`` | ``ctc_greedy`` (see the module docstring).
        beam_size: hypotheses kept (joint, ctc_prefix).
        ctc_weight: CTC weight of the joint search; None: the model's (ESPnet2 default 0.3).
        penalty: length bonus per token (joint).
        maxlenratio: joint: ``0`` = up to one token per encoder frame with end detection.
        pre_beam_ratio: joint: tokens CTC-scored per hypothesis, times ``beam_size``.
        disable_repetition_detection: joint: do not stop a block at a repeated token.
        block_size / hop_size / look_ahead: decode with these encoder blocks instead of
            the model's (each one not given keeps the model's); meant for a model trained
            with ``encoder_conf.dynamic_blocks``.
        endpoint_ms: mark a result as an endpoint when this much trailing audio (in
            encoder frames) decodes to CTC blank; ``0`` turns endpointing off.
        fuse_encoder: on a CPU in float32, run the encoder's subsampling and layers
            frozen (``espnet_model.frozen_block``: weights laid out once, folded, fewer
            operators; equal up to float rounding); False runs the modules. Freezing
            copies the weights: build a new object after changing the model's parameters.
        lm: a language model over the ASR model's tokens (``joint`` and ``ctc_prefix``
            modes), e.g. ``Speech2Text``'s ``lm_model`` or
            ``espnet_infer.load_lm_folder(...).model``; joint: its scores join the
            search's as offline, ``(1 - ctc_weight) * att + ctc_weight * ctc + lm_weight *
            lm + penalty``; ctc_prefix: ``ctc + lm_weight * lm``.
        lm_weight: weight of the LM; ``0`` decodes without it.
    """

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any = None,
        sample_rate: int = 16000,
        mode: StreamMode = "joint",
        beam_size: int = 10,
        ctc_weight: float | None = None,
        penalty: float = 0.0,
        maxlenratio: float = 0.0,
        pre_beam_ratio: float = 1.5,
        disable_repetition_detection: bool = False,
        endpoint_ms: float = 0.0,
        block_size: int | None = None,
        hop_size: int | None = None,
        look_ahead: int | None = None,
        fuse_encoder: bool = True,
        lm: Any = None,
        lm_weight: float = 0.0,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode={mode!r} is unknown; choose one of {', '.join(_MODES)}")
        lm, lm_weight = fused_lm(lm, lm_weight, int(model.vocab_size))
        if lm is not None and mode == "ctc_greedy":
            raise ValueError(
                "a language model is fused by the streaming beam searches (joint, "
                "ctc_prefix), not by mode='ctc_greedy'; use one of them, or lm: null "
                "(or lm_weight: 0)"
            )
        encoder = model.encoder
        if not isinstance(encoder, ContextualBlockConformerEncoder) or encoder.block_size <= 0:
            raise ValueError(
                f"streaming needs encoder: contextual_block_conformer with block_size > 0, "
                f"but the model's encoder is {type(encoder).__name__}; decode it offline "
                "with Speech2Text"
            )
        if (block_size, hop_size, look_ahead) != (None, None, None):
            encoder = encoder.with_blocks(
                encoder.block_size if block_size is None else block_size,
                encoder.hop_size if hop_size is None else hop_size,
                encoder.look_ahead if look_ahead is None else look_ahead,
            )
            if encoder.block_size <= 0:
                raise ValueError("block_size must be > 0 for streaming")
        self.encoder = encoder
        if mode != "joint" and model.ctc is None:
            raise ValueError(f"mode={mode!r} needs a CTC head; the model has none (use joint)")
        model.eval()
        self.model = model
        self.frozen = freeze_block_encoder(encoder) if fuse_encoder else None
        self.tokenizer = tokenizer
        self.sample_rate = int(sample_rate)
        self.mode: StreamMode = mode
        self.beam_size = beam_size
        self.lm, self.lm_weight = lm, lm_weight
        if endpoint_ms < 0 or (endpoint_ms > 0 and model.ctc is None):
            raise ValueError(
                f"endpoint_ms={endpoint_ms} must be >= 0, and endpointing needs a CTC head"
            )
        stride = 1
        for _, step in _STAGES[encoder.embed.input_layer]:
            stride *= step
        frame_ms = 1000.0 * model.frontend.hop_length * stride / self.sample_rate
        self.endpoint_frames = math.ceil(endpoint_ms / frame_ms) if endpoint_ms > 0 else 0
        self.features = StreamingFeatures(model.frontend, model.normalize)
        self.search: BlockwiseBeamSearch | None = None
        if mode == "joint":
            weight = float(model.ctc_weight) if ctc_weight is None else float(ctc_weight)
            if model.ctc is None:
                weight = 0.0
            self.search = BlockwiseBeamSearch(
                model,
                block_size=encoder.block_size,
                hop_size=encoder.hop_size,
                look_ahead=encoder.look_ahead,
                beam_size=beam_size,
                ctc_weight=weight,
                penalty=penalty,
                pre_beam_ratio=pre_beam_ratio,
                maxlenratio=maxlenratio,
                disable_repetition_detection=disable_repetition_detection,
                lm=lm,
                lm_weight=lm_weight,
            )

    @classmethod
    def from_speech2text(cls, s2t: Any, **kwargs: Any) -> Speech2TextStreaming:
        """Over a loaded :class:`~espnet_infer.Speech2Text` (its model, tokenizer, sample
        rate and ``decode`` beam size, CTC weight, penalty, ``maxlenratio`` and
        ``fuse_encoder`` unless given; in the beam-search modes also its fused LM and LM
        weight, which ``ctc_greedy`` leaves out)."""
        decode = s2t.decode
        fuses = kwargs.get("mode", "joint") != "ctc_greedy"
        lm = getattr(s2t, "lm_model", None) if fuses else None
        settings = {
            "beam_size": decode.beam_size, "ctc_weight": decode.ctc_weight,
            "penalty": decode.penalty, "maxlenratio": decode.maxlenratio,
            "fuse_encoder": decode.fuse_encoder,
            "lm": lm, "lm_weight": decode.lm_weight if lm is not None else 0.0,
        }  # fmt: skip
        settings.update(kwargs)
        return cls(s2t.model, tokenizer=s2t.tokenizer, sample_rate=s2t.sample_rate, **settings)

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike[str],
        *,
        device: str = "cpu",
        trust_remote_code: bool = False,
        lm: Any = None,
        lm_weight: float | None = None,
        **kwargs: Any,
    ) -> Speech2TextStreaming:
        """Load a model folder (as :meth:`Speech2Text.from_pretrained`).

        ``lm``: None (default) fuses a pack's own LM in the beam-search modes (as
        ``Speech2Text``; ``ctc_greedy`` leaves it out), an LM folder or LM object fuses
        that one, False none; ``lm_weight`` overrides the pack's ``decode.lm_weight``.
        """
        if lm is None and kwargs.get("mode", "joint") == "ctc_greedy":
            lm = False
        from .speech2text import Speech2Text

        weight = {} if lm_weight is None else {"lm_weight": float(lm_weight)}
        s2t = Speech2Text.from_pretrained(
            model, device=device, trust_remote_code=trust_remote_code, lm=lm, **weight
        )
        return cls.from_speech2text(s2t, **kwargs)

    def start(self) -> Stream:
        """A new, empty stream."""
        stream = Stream()
        if self.mode == "joint":
            stream.search = BlockwiseState()
        elif self.mode == "ctc_prefix":
            stream.search = CTCPrefixStream(
                self.beam_size, blank_id=int(self.model.blank_id), lm=self.lm,
                lm_weight=self.lm_weight, sos_eos_id=int(self.model.sos_eos_id),
            )  # fmt: skip
        else:
            stream.search = CTCGreedyStream(blank_id=int(self.model.blank_id))
        return stream

    # -- feeding ------------------------------------------------------------------------

    def _check(self, chunk: Any, where: str) -> torch.Tensor:
        if isinstance(chunk, (list, tuple)) and len(chunk) == 0:
            return torch.zeros(0)
        if isinstance(chunk, np.ndarray):
            if np.issubdtype(chunk.dtype, np.integer):
                raise ValueError(
                    f"{where}: integer samples ({chunk.dtype}); pass float samples in "
                    "[-1, 1], e.g. chunk / 32768 for int16"
                )
            chunk = torch.from_numpy(np.ascontiguousarray(chunk))
        if not isinstance(chunk, torch.Tensor):
            raise ValueError(
                f"{where}: expected a 1-D float array or tensor, got {type(chunk).__name__}"
            )
        if not chunk.is_floating_point():
            raise ValueError(
                f"{where}: integer samples ({chunk.dtype}); pass float samples in [-1, 1]"
            )
        if chunk.dim() != 1:
            raise ValueError(
                f"{where}: expected 1-D mono samples, got shape {tuple(chunk.shape)}; "
                "mix or pick one channel first"
            )
        bad = int((~torch.isfinite(chunk)).sum())
        if bad:
            raise ValueError(
                f"{where}: {bad} non-finite sample(s) (NaN or inf) of {chunk.numel()}; the "
                "chunk was not consumed, the stream is unchanged: fix the audio and feed it again"
            )
        return chunk.detach().float().cpu()

    @overload
    def feed(
        self, streams: Stream, chunks: Any, *, final: bool = False, sample_rate: int | None = None
    ) -> StreamResult: ...

    @overload
    def feed(
        self,
        streams: Sequence[Stream],
        chunks: Sequence[Any],
        *,
        final: bool | Sequence[bool] = False,
        sample_rate: int | None = None,
    ) -> list[StreamResult]: ...

    def feed(
        self,
        streams: Stream | Sequence[Stream],
        chunks: Any,
        *,
        final: bool | Sequence[bool] = False,
        sample_rate: int | None = None,
    ) -> StreamResult | list[StreamResult]:
        """Feed one chunk per stream; returns each stream's (partial or final) result.

        ``final`` (one flag, or one per stream) ends the stream after its chunk.
        ``sample_rate``, when given, must be the model's.
        """
        single = isinstance(streams, Stream)
        group = [streams] if single else list(streams)  # type: ignore[list-item]
        pieces = [chunks] if single else list(chunks)
        finals = [final] * len(group) if isinstance(final, bool) else list(final)
        if not len(group) == len(pieces) == len(finals):
            raise ValueError(
                f"got {len(group)} streams, {len(pieces)} chunks and {len(finals)} final flags; "
                "pass one chunk and one flag per stream"
            )
        if len({id(s) for s in group}) != len(group):
            raise ValueError("a stream appears twice in one call; feed its chunks in order")
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise ValueError(
                f"audio at {sample_rate} Hz but the model takes {self.sample_rate} Hz; "
                "resample first (espnet_data.audio.resample); the streams are unchanged"
            )
        for i, stream in enumerate(group):
            if stream.finished:
                raise ValueError(
                    f"stream {i} was finished (final=True); start a new one with start()"
                )
        checked = [self._check(c, f"chunk {i}") for i, c in enumerate(pieces)]
        with torch.inference_mode():
            results = self._run(group, checked, finals)
        return results[0] if single else results

    def _run(
        self, streams: list[Stream], chunks: list[torch.Tensor], finals: list[bool]
    ) -> list[StreamResult]:
        device = next(self.model.parameters()).device
        feats = [
            self.features.step(s.features, c.to(device), f).to(device)
            for s, c, f in zip(streams, chunks, finals, strict=True)
        ]
        encoded = stream_step(
            self.encoder, [s.encoder for s in streams], feats, finals, self.frozen
        )
        logps: list[torch.Tensor | None] = [None] * len(streams)
        if self.model.ctc is not None and any(e.size(0) for e in encoded):
            joined = self.model.ctc.log_softmax(torch.cat(encoded)[None])[0]
            logps = list(joined.split([e.size(0) for e in encoded]))
        if self.search is not None:  # the streams' blocks searched together
            self.search.extend_streams([s.search for s in streams], encoded, logps, finals)
        results = []
        for stream, enc, logp, is_final in zip(streams, encoded, logps, finals, strict=True):
            stream.frames += enc.size(0)
            if self.endpoint_frames and logp is not None and logp.size(0):
                speech = (logp.argmax(-1) != self.model.blank_id).nonzero().view(-1)
                run = logp.size(0) - 1 - int(speech[-1]) if speech.numel() else logp.size(0)
                stream.blank_run = run if speech.numel() else stream.blank_run + run
            if self.search is not None:
                hyp = self.search.best_hypothesis(stream.search)
                tokens, score, parts = hyp.tokens, hyp.score, dict(hyp.scores)
            else:
                stream.search.extend(logp if logp is not None else torch.zeros(0, 1))
                tokens, score, parts = stream.search.best_parts(is_final)
            stream.finished = is_final
            text = self.tokenizer.decode(tokens) if self.tokenizer is not None else None
            stream.result = StreamResult(
                text=text,
                tokens=list(tokens),
                final=is_final,
                samples=stream.features.samples,
                frames=stream.frames,
                score=score,
                endpoint=bool(self.endpoint_frames) and stream.blank_run >= self.endpoint_frames,
                scores=parts,
            )
            results.append(stream.result)
        return results

    # -- whole waveforms through the streaming path -------------------------------------

    def transcribe(self, audio: Any, *, chunk_ms: float = 640.0) -> StreamResult:
        """Feed a whole 1-D waveform in chunks of ``chunk_ms`` and return the final result."""
        return self.transcribe_batch([audio], chunk_ms=chunk_ms)[0]

    def transcribe_batch(
        self, audios: Sequence[Any], *, chunk_ms: float = 640.0
    ) -> list[StreamResult]:
        """Several waveforms as concurrent streams fed ``chunk_ms`` at a time (batched)."""
        if chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be > 0, got {chunk_ms}")
        waves = [self._check(a, f"audio {i}") for i, a in enumerate(audios)]
        step = max(1, int(round(chunk_ms * self.sample_rate / 1000)))
        streams = [self.start() for _ in waves]
        results: list[StreamResult | None] = [None] * len(waves)
        position = 0
        while any(r is None for r in results):
            live = [i for i, r in enumerate(results) if r is None]
            chunks = [waves[i][position : position + step] for i in live]
            finals = [position + step >= waves[i].numel() for i in live]
            out = self.feed([streams[i] for i in live], chunks, final=finals)
            for i, res, f in zip(live, out, finals, strict=True):
                if f:
                    results[i] = res
            position += step
        return [r for r in results if r is not None]


class StreamingDecoder:
    """What ``espnet-infer`` decodes with under ``decode.streaming``: a loaded
    :class:`~espnet_infer.Speech2Text`'s model fed utterance by utterance in chunks.

    It answers :meth:`nbest_padded` like ``Speech2Text`` (one hypothesis per utterance),
    so the runner's batches, resume and scoring are unchanged; the utterances of a batch
    are streamed together.
    """

    def __init__(self, s2t: Any) -> None:
        from .config import DecodeConfig

        decode: DecodeConfig = s2t.decode
        streaming = decode.streaming
        if streaming is None:
            raise ValueError("decode.streaming is not set")
        if decode.nbest != 1:
            raise ValueError(
                f"decode.nbest={decode.nbest}: streaming decoding returns one hypothesis per "
                "utterance; set nbest: 1"
            )
        self.decode = decode
        self.chunk_ms = float(streaming.chunk_ms)
        self.sample_rate = int(s2t.sample_rate)
        self.streaming = Speech2TextStreaming.from_speech2text(
            s2t,
            mode=streaming.mode,
            disable_repetition_detection=streaming.disable_repetition_detection,
            block_size=streaming.block_size,
            hop_size=streaming.hop_size,
            look_ahead=streaming.look_ahead,
        )

    def nbest_padded(self, speech: torch.Tensor, lengths: torch.Tensor) -> list[list[Any]]:
        from .speech2text import Transcript

        waves = [speech[i, :n].cpu() for i, n in enumerate(lengths.tolist())]
        results = self.streaming.transcribe_batch(waves, chunk_ms=self.chunk_ms)
        return [
            [Transcript(r.text or "", r.tokens, r.score, {**r.scores, "frames": float(r.frames)})]
            for r in results
        ]
