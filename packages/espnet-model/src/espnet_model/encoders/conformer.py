"""Conformer encoder (ESPnet2 ``encoder: conformer``) with relative-position MHSA."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from espnet_model._checks import check_choice, check_positive
from espnet_model.attention import (
    LegacyRelPositionalEncoding,
    RelPositionalEncoding,
    RelPositionMultiHeadedAttention,
    is_legacy_rel_pos,
)
from espnet_model.conv1d import DepthwiseConv1d, PointwiseConv1d
from espnet_model.ctc import CTC
from espnet_model.dropout import Dropout
from espnet_model.encoders.interctc import InterCTCMixin, Intermediates
from espnet_model.feedforward import (
    Activation,
    PositionwiseFeedForward,
    layer_norm,
    make_activation,
)
from espnet_model.mask import encoder_masks, zero_padded
from espnet_model.packed import PackedFrames
from espnet_model.subsampling import Conv2dSubsampling, InputLayer


class ConvolutionModule(nn.Module):
    """Pointwise -> GLU -> depthwise conv -> BatchNorm -> activation -> pointwise.

    Padded frames are zeroed before the depthwise convolution so they cannot leak
    into valid frames (as ESPnet2 does since ``mask_pad``).
    """

    def __init__(self, channels: int, kernel_size: int, activation: Activation = "swish") -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(
                f"encoder_conf.cnn_module_kernel={kernel_size} must be odd (e.g. {kernel_size + 1})"
            )
        self.pointwise_conv1 = PointwiseConv1d(channels, 2 * channels)
        self.depthwise_conv = DepthwiseConv1d(channels, kernel_size)
        self.norm = nn.BatchNorm1d(channels)
        self.activation = make_activation(activation)
        self.pointwise_conv2 = PointwiseConv1d(channels, channels)

    def forward(
        self, x: torch.Tensor, pad_mask: torch.Tensor | None, packed: PackedFrames | None = None
    ) -> torch.Tensor:
        """``x`` ``(B, T, C)``; ``pad_mask`` ``(B, T, 1)`` bool, ``True`` on padding.

        With ``packed``, ``x`` is ``(N, C)`` packed frames (and so is the output); the
        depthwise convolution and BatchNorm still see the padded batch, zeros on its
        padding, so BatchNorm's statistics are those of the padded computation.
        """
        x = nn.functional.glu(self.pointwise_conv1(x), dim=-1)
        x = zero_padded(x, pad_mask) if packed is None else packed.unpack(x)
        x = self.depthwise_conv(x)  # (B, T, C)
        # BatchNorm1d on (B*T, C) rows: the same statistics as on (B, C, T), and torch's
        # fast path for contiguous input (~2x faster on a CPU than channels-last strides)
        x = self.activation(self.norm(x.reshape(-1, x.size(-1))).view_as(x))
        return self.pointwise_conv2(x if packed is None else packed.pack(x))


class ConformerBlock(nn.Module):
    """(Macaron FFN/2) -> rel-pos MHSA -> conv module -> FFN(/2) -> LayerNorm."""

    def __init__(
        self,
        size: int,
        attention_heads: int,
        linear_units: int,
        dropout_rate: float,
        attention_dropout_rate: float,
        macaron_style: bool,
        use_cnn_module: bool,
        cnn_module_kernel: int,
        activation_type: Activation,
        legacy_rel_pos: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = RelPositionMultiHeadedAttention(
            attention_heads, size, attention_dropout_rate, legacy=legacy_rel_pos
        )
        self.feed_forward = PositionwiseFeedForward(
            size, linear_units, dropout_rate, activation_type
        )
        self.norm_ff = layer_norm(size)
        self.norm_mha = layer_norm(size)
        self.feed_forward_macaron: nn.Module | None = None
        self.norm_ff_macaron: nn.Module | None = None
        if macaron_style:
            self.feed_forward_macaron = PositionwiseFeedForward(
                size, linear_units, dropout_rate, activation_type
            )
            self.norm_ff_macaron = layer_norm(size)
        self.ff_scale = 0.5 if macaron_style else 1.0
        self.conv_module: ConvolutionModule | None = None
        self.norm_conv: nn.Module | None = None
        self.norm_final: nn.Module | None = None
        if use_cnn_module:
            self.conv_module = ConvolutionModule(size, cnn_module_kernel, activation_type)
            self.norm_conv = layer_norm(size)
            self.norm_final = layer_norm(size)
        self.dropout = Dropout(dropout_rate)

    def forward(
        self,
        x: torch.Tensor,
        pos_emb: torch.Tensor,
        mask: torch.Tensor | None,
        pad_mask: torch.Tensor | None,
        packed: PackedFrames | None = None,
    ) -> torch.Tensor:
        """``x`` ``(B, T, D)``, or ``(N, D)`` packed frames with ``packed`` (masks unused)."""
        if self.feed_forward_macaron is not None and self.norm_ff_macaron is not None:
            x = x + self.ff_scale * self.dropout(self.feed_forward_macaron(self.norm_ff_macaron(x)))
        h = self.norm_mha(x)
        if packed is None:
            x = x + self.dropout(self.self_attn(h, h, h, pos_emb, mask))
        else:
            x = x + self.dropout(self.self_attn.forward_packed(h, pos_emb, packed.lengths))
        if self.conv_module is not None and self.norm_conv is not None:
            x = x + self.dropout(self.conv_module(self.norm_conv(x), pad_mask, packed))
        x = x + self.ff_scale * self.dropout(self.feed_forward(self.norm_ff(x)))
        if self.norm_final is not None:
            x = self.norm_final(x)
        return x


class ConformerEncoder(InterCTCMixin, nn.Module):
    """Conv2d subsampling, relative positional encoding and ``num_blocks`` conformer blocks.

    Args (ESPnet2 ``encoder_conf`` names; the ``*_type`` keys accept only the
    value implemented here, so ESPnet2 configs that spell them out still load):
        input_size: feature dimension (derived from the frontend by the builder).
        output_size: model dimension ``D``.
        attention_heads: heads per self-attention (must divide ``output_size``).
        linear_units: feed-forward hidden size.
        num_blocks: number of conformer blocks.
        dropout_rate: dropout on every residual branch.
        positional_dropout_rate: dropout on the scaled input and position embeddings.
        attention_dropout_rate: dropout on attention weights.
        input_layer: ``conv2d`` (x4), ``conv2d6`` (x6) or ``conv2d8`` (x8).
        normalize_before: must be ``True`` (conformer blocks are pre-LN).
        macaron_style: two half-step feed-forward modules around attention.
        use_cnn_module: include the convolution module.
        cnn_module_kernel: depthwise kernel size (odd).
        activation_type: ``swish`` | ``relu`` | ``gelu``.
        pos_enc_layer_type / selfattention_layer_type / rel_pos_type: ESPnet2's
            relative-position keys; ``rel_pos_type: legacy`` selects ESPnet's
            ``legacy_rel_pos`` / ``legacy_rel_selfattn`` (older ESPnet2 models).
        max_pos_emb_len: table length of the legacy position encoding (changes its values).
        interctc_layer_idx / interctc_use_conditioning: intermediate and self-conditioned
            CTC (:mod:`espnet_model.encoders.interctc`); taps see ``after_norm`` outputs.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int = 256,
        attention_heads: int = 4,
        linear_units: int = 1024,
        num_blocks: int = 12,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        input_layer: InputLayer = "conv2d",
        normalize_before: bool = True,
        macaron_style: bool = True,
        use_cnn_module: bool = True,
        cnn_module_kernel: int = 31,
        activation_type: Activation = "swish",
        pos_enc_layer_type: Literal["rel_pos", "legacy_rel_pos"] = "rel_pos",
        selfattention_layer_type: Literal["rel_selfattn", "legacy_rel_selfattn"] = "rel_selfattn",
        rel_pos_type: Literal["latest", "legacy"] = "latest",
        max_pos_emb_len: int = 5000,
        interctc_layer_idx: list[int] | None = None,
        interctc_use_conditioning: bool = False,
    ) -> None:
        super().__init__()
        check_choice("encoder_conf.normalize_before", normalize_before, (True,))
        legacy = is_legacy_rel_pos(
            rel_pos_type, pos_enc_layer_type, selfattention_layer_type, "selfattention_layer_type"
        )
        check_positive("encoder_conf.num_blocks", num_blocks, allow_zero=True)
        self._output_size = output_size
        self.legacy = legacy
        self.embed = Conv2dSubsampling(input_size, output_size, input_layer)
        self.pos_enc: nn.Module = (
            LegacyRelPositionalEncoding(output_size, positional_dropout_rate, max_pos_emb_len)
            if legacy
            else RelPositionalEncoding(output_size, positional_dropout_rate)
        )
        self.encoders = nn.ModuleList(
            ConformerBlock(
                output_size,
                attention_heads,
                linear_units,
                dropout_rate,
                attention_dropout_rate,
                macaron_style,
                use_cnn_module,
                cnn_module_kernel,
                activation_type,
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
        packed = None if self.legacy else PackedFrames.if_ragged(out_lengths, x.size(1))
        if packed is not None:  # a ragged CPU batch: skip its padding (espnet_model.packed)
            h, taps = self._run_blocks(
                packed.pack(x),
                lambda block, h: block(h, pos_emb, None, None, packed),
                ctc,
                self.after_norm,
                packed,
            )
            return packed.unpack(self.after_norm(h)), out_lengths, taps
        mask, pad_mask = encoder_masks(out_lengths, x.size(1))
        x, taps = self._run_blocks(
            x, lambda block, x: block(x, pos_emb, mask, pad_mask), ctc, self.after_norm
        )
        return self.after_norm(x), out_lengths, taps
