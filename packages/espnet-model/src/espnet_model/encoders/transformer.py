"""Transformer encoder (ESPnet2 ``encoder: transformer``)."""

from __future__ import annotations

import torch
from torch import nn

from espnet_model.attention import MultiHeadedAttention, PositionalEncoding
from espnet_model.ctc import CTC
from espnet_model.dropout import Dropout
from espnet_model.encoders.interctc import InterCTCMixin, Intermediates
from espnet_model.feedforward import PositionwiseFeedForward, layer_norm
from espnet_model.mask import encoder_masks
from espnet_model.subsampling import Conv2dSubsampling, InputLayer


class TransformerEncoderLayer(nn.Module):
    """Self-attention + feed-forward, each with residual and (pre- or post-) LayerNorm."""

    def __init__(
        self,
        size: int,
        attention_heads: int,
        linear_units: int,
        dropout_rate: float,
        attention_dropout_rate: float,
        normalize_before: bool,
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadedAttention(attention_heads, size, attention_dropout_rate)
        self.feed_forward = PositionwiseFeedForward(size, linear_units, dropout_rate)
        self.norm1 = layer_norm(size)
        self.norm2 = layer_norm(size)
        self.dropout = Dropout(dropout_rate)
        self.normalize_before = normalize_before

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        residual = x
        if self.normalize_before:
            x = self.norm1(x)
        x = residual + self.dropout(self.self_attn(x, x, x, mask))
        if not self.normalize_before:
            x = self.norm1(x)
        residual = x
        if self.normalize_before:
            x = self.norm2(x)
        x = residual + self.dropout(self.feed_forward(x))
        if not self.normalize_before:
            x = self.norm2(x)
        return x


class TransformerEncoder(InterCTCMixin, nn.Module):
    """Conv2d subsampling, absolute positional encoding and ``num_blocks`` layers.

    Args (ESPnet2 ``encoder_conf`` names):
        input_size: feature dimension (derived from the frontend by the builder).
        output_size: model dimension ``D``.
        attention_heads: heads per self-attention (must divide ``output_size``).
        linear_units: feed-forward hidden size.
        num_blocks: number of layers.
        dropout_rate: dropout after attention / feed-forward.
        positional_dropout_rate: dropout after adding the positional encoding.
        attention_dropout_rate: dropout on attention weights.
        input_layer: ``conv2d`` (x4), ``conv2d6`` (x6) or ``conv2d8`` (x8).
        normalize_before: pre-LayerNorm (plus a final LayerNorm) instead of post-LN.
        interctc_layer_idx / interctc_use_conditioning: intermediate and self-conditioned
            CTC (:mod:`espnet_model.encoders.interctc`); taps see ``after_norm`` outputs
            when ``normalize_before``, else the raw block outputs, as in ESPnet2.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int = 256,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        input_layer: InputLayer = "conv2d",
        normalize_before: bool = True,
        interctc_layer_idx: list[int] | None = None,
        interctc_use_conditioning: bool = False,
    ) -> None:
        super().__init__()
        self._output_size = output_size
        self.embed = Conv2dSubsampling(input_size, output_size, input_layer)
        self.pos_enc = PositionalEncoding(output_size, positional_dropout_rate)
        self.encoders = nn.ModuleList(
            TransformerEncoderLayer(
                output_size,
                attention_heads,
                linear_units,
                dropout_rate,
                attention_dropout_rate,
                normalize_before,
            )
            for _ in range(num_blocks)
        )
        self.after_norm = layer_norm(output_size) if normalize_before else None
        self._init_interctc(interctc_layer_idx, interctc_use_conditioning, num_blocks)

    def output_size(self) -> int:
        return self._output_size

    def forward_with_intermediates(
        self, xs: torch.Tensor, lengths: torch.Tensor, ctc: CTC | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, Intermediates]:
        """:meth:`forward` plus the intermediate CTC taps' outputs (``interctc_layer_idx``)."""
        x, out_lengths = self.embed(xs, lengths)
        x = self.pos_enc(x)
        mask, _ = encoder_masks(out_lengths, x.size(1))  # (B, 1, T') or None
        x, taps = self._run_blocks(x, lambda layer, x: layer(x, mask), ctc, self.after_norm)
        if self.after_norm is not None:
            x = self.after_norm(x)
        return x, out_lengths, taps
