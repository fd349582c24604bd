"""Tiny random models that follow the decoding contract, for tests and examples.

``TinyASRModel`` frames the waveform into chunks of ``subsampling`` samples, projects
them to ``dim`` features, and adds a CTC head and (optionally) a small cached
attention decoder. It is untrained, so its outputs are arbitrary but deterministic
for a given ``seed``; ``sharpness`` scales the logits to make posteriors peaky.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TinyASRModel", "TinyCTC", "TinyDecoder"]


class TinyCTC(nn.Module):
    """Linear CTC head."""

    def __init__(self, *, dim: int, vocab_size: int, sharpness: float) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, vocab_size)
        self.sharpness = sharpness

    def log_softmax(self, enc: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.sharpness * self.proj(enc), dim=-1)


class TinyDecoder(nn.Module):
    """Cached decoder: each layer mixes its input, the mean of the prefix's inputs and
    a masked dot-product attention over the encoder memory.

    The output at position ``i`` depends on positions ``<= i`` only, so the cached
    :meth:`forward_one_step` equals the uncached :meth:`forward` at the last position.
    """

    def __init__(
        self, *, dim: int, vocab_size: int, num_layers: int, sharpness: float, eos_bias: float
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.mix = nn.ModuleList(nn.Linear(3 * dim, dim) for _ in range(num_layers))
        self.out = nn.Linear(dim, vocab_size)
        self.sharpness = sharpness
        with torch.no_grad():
            self.out.bias[vocab_size - 1] += eos_bias

    def _layer(
        self,
        index: int,
        inp: torch.Tensor,
        prefix_mean: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        att = inp @ memory.transpose(1, 2) / memory.shape[-1] ** 0.5  # (N, L, T)
        if memory_mask is not None:
            att = att.masked_fill(~memory_mask, float("-inf"))
        context = torch.softmax(att, dim=-1) @ memory
        return torch.tanh(self.mix[index](torch.cat([inp, prefix_mean, context], dim=-1)))

    def forward(
        self, ys: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Uncached: ``(N, L, V)`` log-probabilities at every position and all layer outputs."""
        inp = self.embed(ys)
        counts = torch.arange(1, ys.shape[1] + 1, device=ys.device)[None, :, None]
        states: list[torch.Tensor] = []
        for index in range(len(self.mix)):
            inp = self._layer(index, inp, inp.cumsum(1) / counts, memory, memory_mask)
            states.append(inp)
        return torch.log_softmax(self.sharpness * self.out(inp), dim=-1), states

    def forward_one_step(
        self,
        ys: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None,
        cache: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if cache is None:
            logp, states = self.forward(ys, memory, memory_mask)
            return logp[:, -1], states
        inp_all = self.embed(ys)
        new_cache: list[torch.Tensor] = []
        for index, previous in enumerate(cache):
            last = self._layer(
                index, inp_all[:, -1:], inp_all.mean(1, keepdim=True), memory, memory_mask
            )
            inp_all = torch.cat([previous, last], dim=1)
            new_cache.append(inp_all)
        return torch.log_softmax(self.sharpness * self.out(inp_all[:, -1]), dim=-1), new_cache


class TinyASRModel(nn.Module):
    """Random encoder + CTC (+ decoder) model with the ``espnet_model`` decoding API.

    Args:
        vocab_size: tokens including blank (0) and sos/eos (``vocab_size - 1``).
        dim: feature size of the encoder output.
        subsampling: samples per encoder frame.
        num_layers: decoder layers.
        with_decoder: False gives a CTC-only model (``decoder is None``).
        sharpness: logit scale; larger means peakier posteriors.
        eos_bias: added to the decoder's eos logit so hypotheses end early.
        ctc_weight: the training CTC weight reported by the model.
        seed: initialisation seed.
    """

    def __init__(
        self,
        *,
        vocab_size: int = 12,
        dim: int = 16,
        subsampling: int = 4,
        num_layers: int = 2,
        with_decoder: bool = True,
        sharpness: float = 3.0,
        eos_bias: float = 0.0,
        ctc_weight: float = 0.3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            self.frontend = nn.Linear(subsampling, dim)
            self.ctc = TinyCTC(dim=dim, vocab_size=vocab_size, sharpness=sharpness)
            self.decoder = (
                TinyDecoder(
                    dim=dim,
                    vocab_size=vocab_size,
                    num_layers=num_layers,
                    sharpness=sharpness,
                    eos_bias=eos_bias,
                )
                if with_decoder
                else None
            )
        finally:
            torch.random.set_rng_state(generator_state)
        self.subsampling = subsampling
        self.vocab_size = vocab_size
        self.blank_id = 0
        self.sos_eos_id = vocab_size - 1
        self.ctc_weight = ctc_weight

    def encode(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, samples = speech.shape
        frames = samples // self.subsampling
        chunks = speech[:, : frames * self.subsampling].reshape(batch, frames, self.subsampling)
        enc = torch.tanh(self.frontend(chunks))
        enc_lengths = torch.div(speech_lengths, self.subsampling, rounding_mode="floor")
        mask = torch.arange(frames, device=enc.device)[None, :] < enc_lengths[:, None]
        return enc * mask[:, :, None], enc_lengths
