"""E-Branchformer encoder (ESPnet2 ``encoder: e_branchformer``).

Each block runs relative-position self-attention (global branch) and a
convolutional gating MLP (cgMLP, local branch) in parallel, merges them with a
depthwise convolution plus a linear projection, and is wrapped in macaron
feed-forward modules. Padded frames are zeroed before every time convolution.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from espnet_model.attention import (
    LegacyRelPositionalEncoding,
    RelPositionalEncoding,
    RelPositionMultiHeadedAttention,
    is_legacy_rel_pos,
)
from espnet_model.conv1d import DepthwiseConv1d
from espnet_model.ctc import CTC
from espnet_model.dropout import Dropout
from espnet_model.encoders.interctc import InterCTCMixin, Intermediates
from espnet_model.feedforward import Activation, PositionwiseFeedForward, layer_norm
from espnet_model.mask import encoder_masks, zero_padded
from espnet_model.subsampling import Conv2dSubsampling, InputLayer


def _odd(key: str, kernel: int) -> None:
    if kernel % 2 != 1:
        raise ValueError(f"encoder_conf.{key}={kernel} must be odd (e.g. {kernel + 1})")


class ConvolutionalSpatialGatingUnit(nn.Module):
    """Split channels; gate = depthwise conv(LayerNorm(second half)); ``first * gate``."""

    def __init__(self, linear_units: int, kernel_size: int, dropout_rate: float) -> None:
        super().__init__()
        half = linear_units // 2
        self.norm = layer_norm(half)
        self.conv = DepthwiseConv1d(half, kernel_size)
        self.dropout = Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        x_r, x_g = x.chunk(2, dim=-1)
        x_g = zero_padded(self.norm(x_g), pad_mask)
        x_g = self.conv(x_g)
        return self.dropout(x_r * x_g)


class ConvolutionalGatingMLP(nn.Module):
    """``Linear(D, U) + GELU`` -> spatial gating unit (``csgu``) -> ``Linear(U/2, D)``."""

    def __init__(self, size: int, linear_units: int, kernel_size: int, dropout_rate: float) -> None:
        super().__init__()
        if linear_units % 2 != 0:
            raise ValueError(f"encoder_conf.cgmlp_linear_units={linear_units} must be even")
        _odd("cgmlp_conv_kernel", kernel_size)
        self.channel_proj1 = nn.Sequential(nn.Linear(size, linear_units), nn.GELU())
        self.csgu = ConvolutionalSpatialGatingUnit(linear_units, kernel_size, dropout_rate)
        self.channel_proj2 = nn.Linear(linear_units // 2, size)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        return self.channel_proj2(self.csgu(self.channel_proj1(x), pad_mask))


class EBranchformerBlock(nn.Module):
    """[Macaron FFN/2] -> (attention || cgMLP) -> depthwise merge -> [FFN(/2)] -> LayerNorm."""

    def __init__(
        self,
        size: int,
        attention_heads: int,
        linear_units: int,
        cgmlp_linear_units: int,
        cgmlp_conv_kernel: int,
        merge_conv_kernel: int,
        dropout_rate: float,
        attention_dropout_rate: float,
        activation_type: Activation,
        use_ffn: bool = True,
        macaron_ffn: bool = True,
        legacy_rel_pos: bool = False,
    ) -> None:
        super().__init__()
        _odd("merge_conv_kernel", merge_conv_kernel)
        self.attn = RelPositionMultiHeadedAttention(
            attention_heads, size, attention_dropout_rate, legacy=legacy_rel_pos
        )
        self.cgmlp = ConvolutionalGatingMLP(
            size, cgmlp_linear_units, cgmlp_conv_kernel, dropout_rate
        )
        self.feed_forward: nn.Module | None = None
        self.feed_forward_macaron: nn.Module | None = None
        self.norm_ff: nn.Module | None = None
        self.norm_ff_macaron: nn.Module | None = None
        self.ff_scale = 1.0
        if use_ffn:
            self.feed_forward = PositionwiseFeedForward(
                size, linear_units, dropout_rate, activation_type
            )
            self.norm_ff = layer_norm(size)
            if macaron_ffn:
                self.feed_forward_macaron = PositionwiseFeedForward(
                    size, linear_units, dropout_rate, activation_type
                )
                self.norm_ff_macaron = layer_norm(size)
                self.ff_scale = 0.5
        self.norm_mha = layer_norm(size)
        self.norm_mlp = layer_norm(size)
        self.norm_final = layer_norm(size)
        self.depthwise_conv_fusion = DepthwiseConv1d(2 * size, merge_conv_kernel)
        self.merge_proj = nn.Linear(2 * size, size)
        self.dropout = Dropout(dropout_rate)

    def forward(
        self,
        x: torch.Tensor,
        pos_emb: torch.Tensor,
        mask: torch.Tensor | None,
        pad_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        if self.feed_forward_macaron is not None and self.norm_ff_macaron is not None:
            x = x + self.ff_scale * self.dropout(self.feed_forward_macaron(self.norm_ff_macaron(x)))
        h = self.norm_mha(x)
        x1 = self.dropout(self.attn(h, h, h, pos_emb, mask))
        x2 = self.dropout(self.cgmlp(self.norm_mlp(x), pad_mask))
        merged = torch.cat([x1, x2], dim=-1)
        fused = self.depthwise_conv_fusion(zero_padded(merged, pad_mask))
        x = x + self.dropout(self.merge_proj(merged + fused))
        if self.feed_forward is not None and self.norm_ff is not None:
            x = x + self.ff_scale * self.dropout(self.feed_forward(self.norm_ff(x)))
        return self.norm_final(x)


class EBranchformerEncoder(InterCTCMixin, nn.Module):
    """Conv2d subsampling, relative positional encoding and ``num_blocks`` E-Branchformer blocks.

    Args (ESPnet2 ``encoder_conf`` names):
        input_size: feature dimension (derived from the frontend by the builder).
        output_size: model dimension ``D``.
        attention_heads: heads per self-attention (must divide ``output_size``).
        linear_units: macaron feed-forward hidden size.
        cgmlp_linear_units: cgMLP hidden size (even; half is gated).
        cgmlp_conv_kernel: cgMLP depthwise kernel (odd).
        merge_conv_kernel: depthwise kernel of the branch merge (odd).
        num_blocks: number of blocks.
        dropout_rate / positional_dropout_rate / attention_dropout_rate: as conformer.
        input_layer: ``conv2d`` (x4), ``conv2d6`` (x6) or ``conv2d8`` (x8).
        activation_type: feed-forward activation (ESPnet2's ``ffn_activation_type``).
        use_ffn: include the feed-forward module after the merge.
        macaron_ffn: also one before the branches (both then scaled by 1/2).
        attention_layer_type / pos_enc_layer_type / rel_pos_type: as the conformer's
            (``rel_pos_type: legacy`` for ESPnet's legacy relative positions).
        max_pos_emb_len: as the conformer's.
        interctc_layer_idx / interctc_use_conditioning: intermediate and self-conditioned
            CTC (:mod:`espnet_model.encoders.interctc`); taps see the raw block outputs
            (no ``after_norm``), as in ESPnet2.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int = 256,
        attention_heads: int = 4,
        linear_units: int = 1024,
        cgmlp_linear_units: int = 1024,
        cgmlp_conv_kernel: int = 31,
        merge_conv_kernel: int = 3,
        num_blocks: int = 12,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        input_layer: InputLayer = "conv2d",
        activation_type: Activation = "swish",
        attention_layer_type: Literal["rel_selfattn", "legacy_rel_selfattn"] = "rel_selfattn",
        pos_enc_layer_type: Literal["rel_pos", "legacy_rel_pos"] = "rel_pos",
        rel_pos_type: Literal["latest", "legacy"] = "latest",
        max_pos_emb_len: int = 5000,
        use_ffn: bool = True,
        macaron_ffn: bool = True,
        interctc_layer_idx: list[int] | None = None,
        interctc_use_conditioning: bool = False,
    ) -> None:
        super().__init__()
        legacy = is_legacy_rel_pos(
            rel_pos_type, pos_enc_layer_type, attention_layer_type, "attention_layer_type"
        )
        self._output_size = output_size
        self.embed = Conv2dSubsampling(input_size, output_size, input_layer)
        self.pos_enc: nn.Module = (
            LegacyRelPositionalEncoding(output_size, positional_dropout_rate, max_pos_emb_len)
            if legacy
            else RelPositionalEncoding(output_size, positional_dropout_rate)
        )
        self.encoders = nn.ModuleList(
            EBranchformerBlock(
                output_size,
                attention_heads,
                linear_units,
                cgmlp_linear_units,
                cgmlp_conv_kernel,
                merge_conv_kernel,
                dropout_rate,
                attention_dropout_rate,
                activation_type,
                use_ffn,
                macaron_ffn,
                legacy,
            )
            for _ in range(num_blocks)
        )
        self.after_norm = layer_norm(output_size)
        self._init_interctc(interctc_layer_idx, interctc_use_conditioning, num_blocks)

    def output_size(self) -> int:
        return self._output_size

    def forward_with_intermediates(
        self, xs: torch.Tensor, lengths: torch.Tensor, ctc: CTC | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, Intermediates]:
        """:meth:`forward` plus the intermediate CTC taps' outputs (``interctc_layer_idx``)."""
        x, out_lengths = self.embed(xs, lengths)
        x, pos_emb = self.pos_enc(x)
        mask, pad_mask = encoder_masks(out_lengths, x.size(1))
        x, taps = self._run_blocks(x, lambda block, x: block(x, pos_emb, mask, pad_mask), ctc)
        return self.after_norm(x), out_lengths, taps
