"""FastSpeech2's building blocks, with ESPnet2's parameter names.

The feed-forward Transformer (FFT) stacks reuse the project's transformer layer
(:class:`~espnet_model.encoders.transformer.TransformerEncoderLayer`: attention, norms,
dropout) with ESPnet2's position-wise choices (``linear`` | ``conv1d`` |
``conv1d-linear``); the rest is what FastSpeech2 adds: the scaled positional encoding,
variance (duration / pitch / energy) predictors, the length regulator and the postnet.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from espnet_model._checks import check_choice
from espnet_model.attention import PositionalEncoding
from espnet_model.conv1d import PointwiseConv1d
from espnet_model.dropout import Dropout
from espnet_model.encoders.transformer import TransformerEncoderLayer
from espnet_model.feedforward import PositionwiseFeedForward, layer_norm
from espnet_model.mask import zero_padded

PositionwiseType = Literal["linear", "conv1d", "conv1d-linear"]


class ScaledPositionalEncoding(PositionalEncoding):
    """``dropout(x + alpha * pe)`` with a trainable scalar ``alpha`` (ESPnet's, Sec. 3.2 of
    arXiv:1809.08895); ``alpha`` starts at ``init_alpha``."""

    def __init__(self, d_model: int, dropout_rate: float, init_alpha: float = 1.0) -> None:
        super().__init__(d_model, dropout_rate)
        self.alpha = nn.Parameter(torch.tensor(float(init_alpha)))

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        pe = self._table(offset + x.size(1), x)[offset:]
        return self.dropout(x + self.alpha * pe)


class _Conv(nn.Conv1d):
    """Same-padded ``Conv1d`` over channels-last ``(B, T, C)`` (``nn.Conv1d``'s parameters)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv1d:
    if kernel_size % 2 != 1:
        raise ValueError(f"tts_conf.positionwise_conv_kernel_size={kernel_size} must be odd (e.g. {kernel_size + 1})")
    return PointwiseConv1d(in_channels, out_channels) if kernel_size == 1 else _Conv(in_channels, out_channels, kernel_size)


class MultiLayeredConv1d(nn.Module):
    """ESPnet's conv position-wise block: ``w_2(dropout(relu(w_1(x))))``, both convolutions
    (``conv1d``) or ``w_2`` a linear layer (``conv1d-linear``). With ``pad_mask`` ``(B, T, 1)``
    padded frames are zeroed before each layer (ESPnet2's ``apply_ff_mask``)."""

    def __init__(self, idim: int, hidden: int, kernel_size: int, dropout_rate: float, linear_out: bool) -> None:
        super().__init__()
        self.w_1 = _conv(idim, hidden, kernel_size)
        self.w_2: nn.Module = nn.Linear(hidden, idim) if linear_out else _conv(hidden, idim, kernel_size)
        self.dropout = Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.relu(self.w_1(zero_padded(x, pad_mask)))
        return self.w_2(zero_padded(self.dropout(x), pad_mask))


def positionwise(
    kind: PositionwiseType, idim: int, hidden: int, kernel_size: int, dropout_rate: float
) -> nn.Module:
    """The position-wise feed-forward block ``kind`` (``tts_conf.positionwise_layer_type``)."""
    check_choice("tts_conf.positionwise_layer_type", kind, ("linear", "conv1d", "conv1d-linear"))
    if kind == "linear":
        return PositionwiseFeedForward(idim, hidden, dropout_rate)
    return MultiLayeredConv1d(idim, hidden, kernel_size, dropout_rate, linear_out=kind == "conv1d-linear")


class FFTBlock(TransformerEncoderLayer):
    """The project's transformer layer with a FastSpeech position-wise block that may see
    the padding mask (``apply_ff_mask``)."""

    def __init__(
        self,
        size: int,
        heads: int,
        units: int,
        dropout_rate: float,
        attention_dropout_rate: float,
        normalize_before: bool,
        positionwise_layer_type: PositionwiseType,
        positionwise_conv_kernel_size: int,
        apply_ff_mask: bool,
    ) -> None:
        super().__init__(size, heads, units, dropout_rate, attention_dropout_rate, normalize_before)
        self.feed_forward = positionwise(
            positionwise_layer_type, size, units, positionwise_conv_kernel_size, dropout_rate
        )
        self.apply_ff_mask = apply_ff_mask and positionwise_layer_type != "linear"

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, mask: torch.Tensor | None, pad_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if not self.apply_ff_mask:
            return super().forward(x, mask)
        residual = x
        h = self.norm1(x) if self.normalize_before else x
        x = residual + self.dropout(self.self_attn(h, h, h, mask))
        x = x if self.normalize_before else self.norm1(x)
        h = self.norm2(x) if self.normalize_before else x
        x = x + self.dropout(self.feed_forward(h, pad_mask))
        return x if self.normalize_before else self.norm2(x)


class FFTStack(nn.Module):
    """ESPnet's legacy ``Encoder`` as FastSpeech uses it: ``embed`` (token embedding, if
    ``vocab_size``, then the positional encoding), ``encoders`` and ``after_norm``."""

    def __init__(
        self,
        vocab_size: int | None,
        adim: int,
        aheads: int,
        units: int,
        layers: int,
        dropout_rate: float,
        positional_dropout_rate: float,
        attention_dropout_rate: float,
        normalize_before: bool,
        positionwise_layer_type: PositionwiseType,
        positionwise_conv_kernel_size: int,
        use_scaled_pos_enc: bool,
        apply_ff_mask: bool,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        pos_enc = (
            ScaledPositionalEncoding(adim, positional_dropout_rate)
            if use_scaled_pos_enc
            else PositionalEncoding(adim, positional_dropout_rate)
        )
        embed: list[nn.Module] = [] if vocab_size is None else [nn.Embedding(vocab_size, adim, padding_idx=padding_idx)]
        self.embed = nn.Sequential(*embed, pos_enc)
        self.encoders = nn.ModuleList(
            FFTBlock(
                adim, aheads, units, dropout_rate, attention_dropout_rate, normalize_before,
                positionwise_layer_type, positionwise_conv_kernel_size, apply_ff_mask,
            )  # fmt: skip
            for _ in range(layers)
        )
        self.after_norm = layer_norm(adim) if normalize_before else None

    def forward(self, xs: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """``xs`` ids ``(B, T)`` or ``(B, T, adim)``; ``keep`` ``(B, T)`` valid frames or None."""
        x = self.embed(xs)
        mask = None if keep is None else keep.unsqueeze(1)
        pad_mask = None if keep is None else ~keep.unsqueeze(-1)
        for block in self.encoders:
            x = block(x, mask, pad_mask)
        return x if self.after_norm is None else self.after_norm(x)


class _ChannelLayerNorm(nn.LayerNorm):
    """ESPnet's ``LayerNorm(n, dim=1)`` on ``(B, C, T)``; here the input is ``(B, T, C)``
    already, so it is a plain LayerNorm with ESPnet's epsilon."""

    def __init__(self, size: int) -> None:
        super().__init__(size, eps=layer_norm(1).eps)


class VariancePredictor(nn.Module):
    """Conv -> ReLU -> LayerNorm -> dropout, ``n_layers`` times, then ``linear`` to one value per
    token (ESPnet2's ``VariancePredictor`` / ``DurationPredictor``; names ``conv.{i}.0``,
    ``conv.{i}.2``, ``linear``). Padded tokens are zeroed between layers."""

    def __init__(self, idim: int, n_layers: int, n_chans: int, kernel_size: int, dropout_rate: float) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"variance predictor kernel_size={kernel_size} must be odd (e.g. {kernel_size + 1})")
        self.conv = nn.ModuleList(
            nn.Sequential(
                _Conv(idim if i == 0 else n_chans, n_chans, kernel_size),
                nn.ReLU(),
                _ChannelLayerNorm(n_chans),
                Dropout(dropout_rate),
            )
            for i in range(n_layers)
        )
        self.linear = nn.Linear(n_chans, 1)

    def forward(self, xs: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """``xs`` ``(B, T, idim)``, ``pad_mask`` ``(B, T)`` True on padding -> ``(B, T)``."""
        pad = None if pad_mask is None else pad_mask.unsqueeze(-1)
        xs = zero_padded(xs, pad)
        for layer in self.conv:
            xs = zero_padded(layer(xs), pad)
        return self.linear(xs).squeeze(-1)


class DurationPredictor(VariancePredictor):
    """Predicts ``log(duration + offset)``; :meth:`inference` gives whole frames."""

    offset = 1.0

    def inference(self, xs: torch.Tensor, pad_mask: torch.Tensor | None, alpha: float = 1.0) -> torch.Tensor:
        """Frames per token ``(B, T)`` (long), 0 on padding: ``d = max(round(exp(log_d) - offset), 0)``,
        then ``round(d * alpha)`` (ESPnet2's order of rounding; ``alpha`` > 1 is slower speech)."""
        log_d = self.forward(xs, pad_mask)
        durations = torch.round(log_d.exp() - self.offset).clamp(min=0)
        if alpha != 1.0:
            durations = torch.round(durations * alpha)
        durations = durations.long()
        return durations if pad_mask is None else durations.masked_fill(pad_mask, 0)


def length_regulate(xs: torch.Tensor, durations: torch.Tensor) -> torch.Tensor:
    """Repeat token ``t`` of utterance ``b`` ``durations[b, t]`` times; zero-padded ``(B, T_feats, D)``."""
    rows = [torch.repeat_interleave(x, d, dim=0) for x, d in zip(xs, durations, strict=True)]
    return nn.utils.rnn.pad_sequence(rows, batch_first=True)


class Postnet(nn.Module):
    """Tacotron 2's postnet (ESPnet names ``postnet.{i}.0`` conv, ``.1`` BatchNorm): a residual
    the model adds to the decoder's mel. Padded frames are zeroed before each layer."""

    def __init__(self, odim: int, n_layers: int, n_chans: int, n_filts: int, dropout_rate: float, use_batch_norm: bool) -> None:
        super().__init__()
        layers = []
        for i in range(n_layers):
            ichans = odim if i == 0 else n_chans
            ochans = odim if i == n_layers - 1 else n_chans
            parts: list[nn.Module] = [_Conv(ichans, ochans, n_filts, bias=False)]
            if use_batch_norm:
                parts.append(nn.BatchNorm1d(ochans))
            if i < n_layers - 1:
                parts.append(nn.Tanh())
            parts.append(Dropout(dropout_rate))
            layers.append(nn.Sequential(*parts))
        self.postnet = nn.ModuleList(layers)

    def forward(self, xs: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """``xs`` ``(B, T, odim)``, ``pad_mask`` ``(B, T, 1)`` or None -> ``(B, T, odim)``."""
        for layer in self.postnet:
            xs = zero_padded(xs, pad_mask)
            for part in layer:
                if isinstance(part, nn.BatchNorm1d):  # over (B*T, C) rows: same statistics as (B, C, T)
                    xs = part(xs.reshape(-1, xs.size(-1))).view_as(xs)
                else:
                    xs = part(xs)
        return xs
