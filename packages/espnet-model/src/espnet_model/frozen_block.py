"""The contextual block conformer's layers frozen for CPU streaming: folded weights,
fewer operators.

A streaming call subsamples its chunk's few feature frames and, when it completes a
block, runs the encoder's layers on one block of ``block_size + 2`` frames per stream
(16-40 frames), where the small operators between the matmuls cost as much as the
matmuls. :func:`freeze_block_encoder` gives the subsampling's convolutions weights laid
out once, in plain layout (the module lays them out channels-last on every call) and each
:class:`~espnet_model.encoders.contextual_block_conformer.ContextualBlockConformerLayer`
an eval-mode twin on plain tensors, for ``block_stream.stream_step(..., frozen)``:

- the feed-forward modules' ``ff_scale`` is folded into their second weight, residual
  adds run in place on the matmul's output (as :mod:`espnet_model.frozen` does);
- q, k and v come from one projection. Every row of a block attends to the same keys,
  positions ``0 .. block_size`` (the block mask hides only the block's own context
  frame, the last), and row 0 attends to nothing (its output is ``linear_out``'s bias),
  so attention runs unmasked on rows ``1 ..`` over the first ``block_size + 1`` keys;
- the conv module's BatchNorm (running statistics) is folded into the depthwise
  convolution, one multiply-add per kernel tap over all blocks at once.

Outputs equal the module's in eval mode up to float rounding (tested). It copies the
weights: freeze again after changing the layers' parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from espnet_model.attention import MultiHeadedAttention
from espnet_model.encoders.contextual_block_conformer import (
    ContextualBlockConformerEncoder,
    ContextualBlockConformerLayer,
)
from espnet_model.frozen import (
    _Convolution,
    _FeedForward,
    _LayerNorm,
    _Linear,
    _Subsampling,
)

__all__ = ["FrozenBlockEncoder", "FrozenBlockLayer", "freeze_block_encoder"]


class _BlockAttention:
    """``x + linear_out(attention(norm(x)))`` for blocks ``(N, L, D)`` under the block mask."""

    def __init__(self, norm: torch.nn.LayerNorm, attn: MultiHeadedAttention) -> None:
        self.norm = _LayerNorm(norm)
        self.heads, self.d_k = attn.h, attn.d_k
        self.qkv = _Linear(
            torch.cat([attn.linear_q.weight, attn.linear_k.weight, attn.linear_v.weight]),
            torch.cat([attn.linear_q.bias, attn.linear_k.bias, attn.linear_v.bias]),
        )
        self.linear_out = _Linear(attn.linear_out.weight, attn.linear_out.bias)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(self.norm(x)).view(n, length, 3, self.heads, self.d_k)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (N, H, L, d_k)
        keys = length - 1  # positions 0 .. block_size: all but the own context frame
        out = F.scaled_dot_product_attention(q[:, :, 1:], k[:, :, :keys], v[:, :, :keys])
        out = out.transpose(1, 2).reshape(n, length - 1, dim)
        rows = self.linear_out(out, residual=x[:, 1:])
        return torch.cat([x[:, :1] + self.linear_out.bias, rows], dim=1)


class _BlockConvolution(_Convolution):
    """The conv module on blocks ``(N, L, C)``, each block same-padded alone."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        h = F.glu(self.pointwise1(self.norm(x)), dim=-1)
        return self.pointwise2(self._depthwise(h), residual=x)


class FrozenBlockLayer:
    """One :class:`ContextualBlockConformerLayer` in eval mode on blocks ``(N, L, D)``."""

    def __init__(self, layer: ContextualBlockConformerLayer) -> None:
        macaron = layer.feed_forward_macaron
        self.macaron = (
            None if macaron is None else _FeedForward(layer.norm_ff_macaron, macaron, layer.ff_scale)
        )
        self.attention = _BlockAttention(layer.norm1, layer.self_attn)
        self.conv = (
            None
            if layer.conv_module is None
            else _BlockConvolution(layer.norm_conv, layer.conv_module)
        )
        self.feed_forward = _FeedForward(layer.norm2, layer.feed_forward, layer.ff_scale)
        self.norm_final = None if layer.conv_module is None else _LayerNorm(layer.norm_final)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.macaron is not None:
            x = self.macaron(x)
        x = self.attention(x)
        if self.conv is not None:
            x = self.conv(x)
        x = self.feed_forward(x)
        return x if self.norm_final is None else self.norm_final(x)


class FrozenBlockEncoder:
    """The parts of a :class:`ContextualBlockConformerEncoder` a streaming call runs, frozen.

    Attributes:
        convolve: the subsampling's convolutions and projection, ``(B, T, F) -> (B, T', D)``
            (``Conv2dSubsampling._convolve``), weights laid out once, in plain layout
            (faster than channels-last on a chunk's few frames).
        layers: a :class:`FrozenBlockLayer` per layer, for ``encode_blocks(batch, layers)``.
    """

    def __init__(self, encoder: ContextualBlockConformerEncoder) -> None:
        self.convolve = _Subsampling(encoder.embed, channels_last=False)  # a chunk's few frames
        self.layers: Sequence[FrozenBlockLayer] = [
            FrozenBlockLayer(layer) for layer in encoder.encoders
        ]


def freeze_block_encoder(encoder: torch.nn.Module) -> FrozenBlockEncoder | None:
    """A :class:`FrozenBlockEncoder` of a float32 CPU :class:`ContextualBlockConformerEncoder`,
    or ``None`` where none applies (another encoder, another device or dtype, an activation
    or BatchNorm without a frozen form): callers run the modules then."""
    if not isinstance(encoder, ContextualBlockConformerEncoder):
        return None
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in encoder.parameters()):
        return None
    try:
        with torch.no_grad():
            return FrozenBlockEncoder(encoder)
    except ValueError:
        return None
