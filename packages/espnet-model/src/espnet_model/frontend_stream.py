"""Frame-exact chunked features: waveform chunks in, the whole utterance's frames out.

:class:`StreamingFeatures` wraps a model's frontend (:class:`~espnet_model.frontend.Fbank`
or :class:`~espnet_model.frontend.StftFrontend`) and its global MVN. Each stream keeps the
samples that frames still to come will read: a frame is computed as soon as its whole
window has arrived, and the last ones (which may need padding) when the stream ends.
Concatenated, a stream's features equal the frontend on the whole waveform, whatever the
chunk sizes. ``StftFrontend(center=True)`` reflects the utterance at both ends: the left
reflection is built once ``n_fft // 2 + 1`` samples have arrived, the right one at the
end. Utterance MVN needs the whole utterance and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from espnet_model.frontend import Fbank, StftFrontend
from espnet_model.normalize import GlobalMVN, UtteranceMVN

__all__ = ["FeatureStreamState", "StreamingFeatures"]


@dataclass
class FeatureStreamState:
    """One stream's frontend state.

    Attributes:
        buffer: samples (reflection included) from the next frame's first sample on.
        head: the first samples, kept until the left reflection can be built (centred
            STFT only).
        tail: the last ``n_fft // 2 + 1`` samples (the right reflection's source).
        samples: samples received.
        frames: feature frames returned.
        finished: the stream ended; it takes no more audio.
    """

    buffer: torch.Tensor | None = None
    head: torch.Tensor | None = None
    tail: torch.Tensor | None = None
    samples: int = 0
    frames: int = 0
    finished: bool = False


class StreamingFeatures:
    """Chunked features of ``frontend`` (then ``normalize``) for many streams.

    Args:
        frontend: the model's frontend.
        normalize: the model's normalisation (global MVN or None).
    """

    def __init__(self, frontend: nn.Module, normalize: nn.Module | None = None) -> None:
        if isinstance(normalize, UtteranceMVN):
            raise ValueError(
                "normalize: utterance_mvn needs the whole utterance's statistics, so it "
                "cannot stream; train the streaming model with normalize: global_mvn"
            )
        if normalize is not None and not isinstance(normalize, GlobalMVN):
            raise ValueError(f"cannot stream with normalize={type(normalize).__name__}")
        if isinstance(frontend, Fbank):
            self.span, self.center = frontend.win_length, False
        elif isinstance(frontend, StftFrontend):
            self.span, self.center = frontend.n_fft, frontend.center
        else:
            raise ValueError(
                f"cannot stream the frontend {type(frontend).__name__}; "
                "streaming supports frontend: default (fbank) and stft"
            )
        self.frontend = frontend
        self.normalize = normalize
        self.hop = int(frontend.hop_length)
        self.pad = self.span // 2 if self.center else 0

    def _frames(self, samples: torch.Tensor) -> torch.Tensor:
        """All complete frames ``(n, F)`` of an (already padded) sample stretch."""
        frontend = self.frontend
        if isinstance(frontend, Fbank):
            feats, _ = frontend(samples[None], torch.tensor([samples.numel()]))
            return feats[0]
        assert isinstance(frontend, StftFrontend)
        spec = torch.stft(
            samples[None].float(),
            n_fft=frontend.n_fft,
            hop_length=frontend.hop_length,
            win_length=frontend.win_length,
            window=frontend.window,
            center=False,
            return_complex=True,
        ).transpose(1, 2)
        return frontend.logmel(spec.real.square() + spec.imag.square())[0]

    def _whole(self, samples: torch.Tensor) -> torch.Tensor:
        feats, lengths = self.frontend(samples[None], torch.tensor([samples.numel()]))
        return feats[0, : int(lengths[0])]

    def _normalised(self, feats: torch.Tensor) -> torch.Tensor:
        if self.normalize is None or feats.size(0) == 0:
            return feats
        out, _ = self.normalize(feats[None], torch.tensor([feats.size(0)], device=feats.device))
        return out[0]

    def step(self, state: FeatureStreamState, chunk: torch.Tensor, final: bool) -> torch.Tensor:
        """Append ``chunk`` (1-D float samples, checked by the caller) and return the new
        frames ``(n, F)``; ``final`` also returns the last frames and ends the stream."""
        if state.finished:
            raise ValueError("this stream was finished; start a new one")
        chunk = chunk.float()
        state.samples += chunk.numel()
        out: list[torch.Tensor] = []
        if self.center:
            keep = self.pad + 1
            joined = chunk if state.tail is None else torch.cat([state.tail, chunk])
            state.tail = joined[-keep:]
            if state.buffer is None:  # the left reflection is not built yet
                head = chunk if state.head is None else torch.cat([state.head, chunk])
                if head.numel() <= self.pad:
                    state.head = head
                    if final:
                        state.finished = True
                        return self._normalised(self._whole(head)) if head.numel() else self._none()
                    return self._none()
                state.head = None
                chunk = torch.cat([head[1 : self.pad + 1].flip(0), head])
        if state.buffer is not None:
            chunk = torch.cat([state.buffer, chunk])
        if final and self.center:
            assert state.tail is not None
            chunk = torch.cat([chunk, state.tail[:-1].flip(0)])
        if final and state.frames == 0 and chunk.numel() < self.span:  # one padded frame
            state.finished = True
            return self._normalised(self._whole(chunk)) if state.samples else self._none()
        count = (chunk.numel() - self.span) // self.hop + 1 if chunk.numel() >= self.span else 0
        if count:
            out.append(self._frames(chunk[: (count - 1) * self.hop + self.span]))
        state.buffer = chunk[count * self.hop :]
        state.frames += count
        if final:
            state.finished = True
            state.buffer = state.tail = None
        return self._normalised(out[0]) if out else self._none()

    def _none(self) -> torch.Tensor:
        return torch.zeros(0, int(self.frontend.output_size))
