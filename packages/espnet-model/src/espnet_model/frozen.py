"""A conformer encoder frozen for CPU inference: folded weights, fewer operators.

At batch 1 a conformer block on a CPU multiplies matrices of ~160 frames, and the
dozens of small operators between its matmuls cost nearly as much as the matmuls.
:func:`freeze_encoder` turns a :class:`ConformerEncoder` into a
:class:`FrozenConformerEncoder`, which computes the same eval-mode function with
fewer operators, on plain tensors instead of modules:

- the feed-forward modules' ``ff_scale`` (0.5 in macaron blocks, an exact scaling)
  is folded into their second weight, and ``sqrt(d_model)`` into the subsampling's
  output projection; residual adds run in place on the matmul's output;
- q, k and v come from one projection; each block's relative-position keys are
  projected once and cached for every length up to the longest seen, and the
  position and content scores meet in one ``baddbmm``;
- the conv module's BatchNorm (running statistics) is folded into the depthwise
  convolution, which runs as one multiply-add per kernel tap.

Utterances are packed (``espnet_model.packed``): per-frame layers run on the valid
frames of the whole batch, the subsampling, attention and depthwise convolution on
each utterance alone, so no padded frame is computed. Outputs equal the module's in
eval mode up to float rounding; padded output frames are zeros.

The subsampling convolutions run as in the module (``relu_conv2d``); everything else
is matmuls and elementwise operators that build no oneDNN primitive per input length
(oneDNN's fused linear and depthwise kernels were as fast at a cached length but cost
~0.3-2 ms for each new one). The frozen encoder copies the weights: freeze again after
changing the module's parameters. It runs on a CPU in float32 and does not train.

A self-conditioned encoder (``interctc_use_conditioning``) is frozen with the model's
CTC: after each tapped block the frozen encoder adds
``conditioning_layer(softmax(ctc_lo(after_norm(x))))`` as the module does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from espnet_model.attention import (
    RelPositionalEncoding,
    RelPositionMultiHeadedAttention,
    rel_shift,
    relative_sinusoids,
)
from espnet_model.ctc import CTC
from espnet_model.encoders.conformer import ConformerBlock, ConformerEncoder, ConvolutionModule
from espnet_model.feedforward import PositionwiseFeedForward
from espnet_model.packed import PackedFrames
from espnet_model.subsampling import (
    Conv2dSubsampling,
    check_input_frames,
    min_input_frames,
    relu_conv2d,
    subsampled_lengths,
)

Activation = Callable[[torch.Tensor], torch.Tensor]


def _activation(module: nn.Module) -> Activation:
    """An in-place form of one of the encoders' activations (swish, relu, gelu)."""
    if isinstance(module, nn.SiLU):
        return partial(F.silu, inplace=True)
    if isinstance(module, nn.ReLU):
        return torch.relu_
    if isinstance(module, nn.GELU):
        return partial(F.gelu, approximate=module.approximate)
    raise ValueError(
        f"no frozen form of activation {type(module).__name__}; use swish, relu or gelu, "
        "or run the encoder module (freeze_encoder returns None for it)"
    )


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().float().contiguous().clone()


class _Linear:
    """``x @ weight.T + bias`` (then ``+ residual``), on copies of a layer's parameters."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, scale: float = 1.0) -> None:
        self.weight = _copy(weight * scale)
        self.bias = None if bias is None else _copy(bias * scale)

    def __call__(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        return y if residual is None else y.add_(residual)


class _LayerNorm:
    def __init__(self, norm: nn.LayerNorm) -> None:
        self.shape = tuple(norm.normalized_shape)
        self.weight, self.bias, self.eps = _copy(norm.weight), _copy(norm.bias), norm.eps

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)


class _FeedForward:
    """``x + scale * w_2(activation(w_1(norm(x))))``, ``scale`` folded into ``w_2``."""

    def __init__(self, norm: nn.LayerNorm, ff: PositionwiseFeedForward, scale: float) -> None:
        self.norm = _LayerNorm(norm)
        self.w_1 = _Linear(ff.w_1.weight, ff.w_1.bias)
        self.activation = _activation(ff.activation)
        self.w_2 = _Linear(ff.w_2.weight, ff.w_2.bias, scale)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.activation(self.w_1(self.norm(x))), residual=x)


class _SelfAttention:
    """``x + linear_out(rel-pos attention(norm(x)))``, each utterance of packed frames alone."""

    def __init__(self, norm: nn.LayerNorm, attn: RelPositionMultiHeadedAttention) -> None:
        self.norm = _LayerNorm(norm)
        self.heads, self.d_k = attn.h, attn.d_k
        # the query projection gives (q + pos_bias_u) / sqrt(d_k) directly; adding
        # (pos_bias_v - pos_bias_u) / sqrt(d_k) to it gives the position query
        scale = 1.0 / math.sqrt(attn.d_k)
        self.qkv = _Linear(
            torch.cat([attn.linear_q.weight * scale, attn.linear_k.weight, attn.linear_v.weight]),
            torch.cat([
                (attn.linear_q.bias + attn.pos_bias_u.flatten()) * scale,
                attn.linear_k.bias,
                attn.linear_v.bias,
            ]),
        )
        self.v_minus_u = _copy((attn.pos_bias_v - attn.pos_bias_u) * scale).unsqueeze(1)  # (H, 1, d_k)
        self.linear_out = _Linear(attn.linear_out.weight, attn.linear_out.bias)
        self.linear_pos = _copy(attn.linear_pos.weight)
        # (H, 2L - 1, d_k): the projected positions L-1 ... -(L-1)
        self.keys = torch.empty(attn.h, 0, attn.d_k)

    def __call__(self, x: torch.Tensor, lengths: list[int], table: torch.Tensor) -> torch.Tensor:
        """``table``: sinusoids of positions ``L-1 ... -(L-1)``, ``L >= max(lengths)``."""
        if self.keys.size(1) != table.size(0):
            keys = F.linear(table, self.linear_pos).view(-1, self.heads, self.d_k)
            self.keys = keys.transpose(0, 1).contiguous()
        half = (table.size(0) + 1) // 2  # L
        qkv = self.qkv(self.norm(x))
        outs = [self._attend(part, self.keys[:, half - n : half + n - 1])
                for part, n in zip(qkv.split(lengths), lengths, strict=True)]
        return self.linear_out(torch.cat(outs) if len(outs) > 1 else outs[0], residual=x)

    def _attend(self, qkv: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """One utterance's ``(n, 3D)`` projections and ``(H, 2n-1, d_k)`` keys -> ``(n, D)``."""
        n = qkv.size(0)
        q, k, v = qkv.view(n, 3, self.heads, self.d_k).permute(1, 2, 0, 3)  # each (H, n, d_k)
        positions = rel_shift(torch.bmm(q + self.v_minus_u, keys.transpose(1, 2)).unsqueeze(0))
        # position + content scores in one baddbmm, then softmax and bmm: at batch 1 (4
        # heads of 36, ~160 frames) ~25% faster than SDPA with a float mask
        scores = torch.baddbmm(positions[0], q, k.transpose(1, 2))
        out = torch.bmm(torch.softmax(scores, dim=-1), v)  # (H, n, d_k)
        return out.transpose(0, 1).reshape(n, self.heads * self.d_k)


class _Convolution:
    """``x + pointwise2(act(bn(depthwise(glu(pointwise1(norm(x)))))))``, BatchNorm folded."""

    def __init__(self, norm: nn.LayerNorm, conv: ConvolutionModule) -> None:
        self.norm = _LayerNorm(norm)
        self.pointwise1 = _Linear(conv.pointwise_conv1.weight.squeeze(-1), conv.pointwise_conv1.bias)
        self.pointwise2 = _Linear(conv.pointwise_conv2.weight.squeeze(-1), conv.pointwise_conv2.bias)
        depthwise, bn = conv.depthwise_conv, conv.norm
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError(
                "the conv module's BatchNorm keeps no running statistics to fold "
                "(track_running_stats=False); run the encoder module instead"
            )
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = torch.zeros_like(scale) if depthwise.bias is None else depthwise.bias
        self.taps = _copy(depthwise.weight[:, 0, :].t() * scale)  # (K, C)
        self.bias = _copy((bias - bn.running_mean) * scale + bn.bias)
        self.activation = _activation(conv.activation)

    def __call__(self, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        h = F.glu(self.pointwise1(self.norm(x)), dim=-1)
        outs = [self._depthwise(part) for part in h.split(lengths)]
        return self.pointwise2(torch.cat(outs) if len(outs) > 1 else outs[0], residual=x)

    def _depthwise(self, h: torch.Tensor) -> torch.Tensor:
        """One utterance ``(n, C)`` (or a batch ``(B, n, C)`` of equal ones), same-padded:
        a multiply-add per kernel tap.

        On ~160 frames this is faster than oneDNN's depthwise convolution, and it
        builds no oneDNN primitive per new length (~2 ms each, measured here).
        """
        n, width = h.size(-2), self.taps.size(0)
        padded = F.pad(h, (0, 0, width // 2, width // 2))
        out = torch.addcmul(self.bias, padded[..., :n, :], self.taps[0])
        for tap in range(1, width):
            out.addcmul_(padded[..., tap : tap + n, :], self.taps[tap])
        return self.activation(out)


class _Conditioning:
    """Self-conditioned CTC after a block: ``x + cond(softmax(ctc_lo(after_norm(x))))``."""

    def __init__(self, norm: _LayerNorm, ctc: CTC, conditioning: nn.Module) -> None:
        assert isinstance(conditioning, nn.Linear)
        self.norm = norm
        self.ctc_lo = _Linear(ctc.ctc_lo.weight, ctc.ctc_lo.bias)
        self.conditioning = _Linear(conditioning.weight, conditioning.bias)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        posteriors = torch.softmax(self.ctc_lo(self.norm(x)), dim=-1)
        return self.conditioning(posteriors, residual=x)


class _Subsampling:
    """A ``Conv2dSubsampling``'s convolutions with their weights laid out once, and its
    projection, ``scale`` folded in: ``(B, T, F)`` features -> ``(B, T', D)``.

    ``channels_last``: oneDNN's channels-last convolutions with the ReLU fused, the
    projection reading their output as it lies (its input columns reordered from the
    module's ``(C, F')`` flattening): the faster layout for whole utterances. Plain
    layout: faster on the few frames of a streaming chunk (the x6 pair on ~35 feature
    frames, 2 threads: 0.73 against 0.94 ms), the output copied once to ``(T', C * F')``.
    """

    def __init__(
        self, embed: Conv2dSubsampling, scale: float = 1.0, *, channels_last: bool = True
    ) -> None:
        self.channels_last = channels_last
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.convs = [
            (_copy(conv.weight).contiguous(memory_format=layout), _copy(conv.bias), conv.stride)
            for conv in embed.conv if isinstance(conv, nn.Conv2d)
        ]  # fmt: skip
        weight = embed.out.weight
        if channels_last:  # (T', F', C) per frame instead of the module's (C, F')
            channels = embed.conv[0].out_channels
            weight = weight.view(embed.out.out_features, channels, -1).transpose(1, 2)
        self.out = _Linear(weight.reshape(embed.out.out_features, -1), embed.out.bias, scale)

    def __call__(self, feats: torch.Tensor) -> torch.Tensor:
        if not self.channels_last:
            h = feats.unsqueeze(1)  # (B, 1, T, F)
            # not relu_conv2d: on these few frames oneDNN's fused plain-layout kernel was
            # slower than conv2d then ReLU (0.78 against 0.65 ms on ~35 frames, 2 threads)
            for weight, bias, stride in self.convs:
                h = torch.relu_(F.conv2d(h, weight, bias, stride))
            batch, channels, t, f = h.shape
            return self.out(h.transpose(1, 2).reshape(batch, t, channels * f))
        h = feats.contiguous().unsqueeze(-1).permute(0, 3, 1, 2)  # (B, 1, T, F) channels-last
        for weight, bias, stride in self.convs:
            h = relu_conv2d(h, weight, bias, stride)
        batch, channels, t, f = h.shape
        return self.out(h.permute(0, 2, 3, 1).reshape(batch, t, f * channels))  # a view


class _Block:
    """One conformer block on packed frames ``(N, D)``."""

    def __init__(self, block: ConformerBlock) -> None:
        macaron = block.feed_forward_macaron
        self.macaron = (
            None if macaron is None or block.norm_ff_macaron is None
            else _FeedForward(block.norm_ff_macaron, macaron, block.ff_scale)
        )
        self.attention = _SelfAttention(block.norm_mha, block.self_attn)
        self.conv = (
            None if block.conv_module is None or block.norm_conv is None
            else _Convolution(block.norm_conv, block.conv_module)
        )
        self.feed_forward = _FeedForward(block.norm_ff, block.feed_forward, block.ff_scale)
        self.norm_final = None if block.norm_final is None else _LayerNorm(block.norm_final)

    def __call__(self, x: torch.Tensor, lengths: list[int], table: torch.Tensor) -> torch.Tensor:
        if self.macaron is not None:
            x = self.macaron(x)
        x = self.attention(x, lengths, table)
        if self.conv is not None:
            x = self.conv(x, lengths)
        x = self.feed_forward(x)
        return x if self.norm_final is None else self.norm_final(x)


class FrozenConformerEncoder:
    """A :class:`ConformerEncoder`'s eval-mode function with fewer operators, for CPUs.

    Build it with :func:`freeze_encoder`. Called like the encoder:
    ``(xs (B, T, F), lengths (B,)) -> (out (B, T', D), out_lengths)``, always in
    ``torch.inference_mode`` (its outputs are inference tensors).
    """

    def __init__(self, encoder: ConformerEncoder, ctc: CTC | None = None) -> None:
        if not isinstance(encoder.pos_enc, RelPositionalEncoding):
            raise ValueError(
                "only rel_pos_type: latest conformers can be frozen, not legacy ones; "
                "run the encoder module (freeze_encoder returns None for it)"
            )
        embed = encoder.embed
        self.input_layer = embed.input_layer
        self.min_frames = min_input_frames(embed.input_layer)
        self.subsampling = _Subsampling(embed, encoder.pos_enc.xscale)
        self.d_model = encoder.output_size()
        self.blocks = [_Block(block) for block in encoder.encoders]
        self.after_norm = _LayerNorm(encoder.after_norm)
        self.conditioning: dict[int, _Conditioning] = {}  # 0-based block -> its conditioning
        if encoder.interctc_use_conditioning:
            if ctc is None or encoder.conditioning_layer is None:
                raise ValueError(
                    "a self-conditioned conformer (interctc_use_conditioning) is frozen with "
                    "the model's CTC: freeze_encoder(model.encoder, model.ctc)"
                )
            step = _Conditioning(self.after_norm, ctc, encoder.conditioning_layer)
            self.conditioning = {i - 1: step for i in encoder.interctc_layer_idx}
        self.table = torch.empty(0, self.d_model)  # sinusoids of positions L-1 ... -(L-1)

    def output_size(self) -> int:
        return self.d_model

    @torch.inference_mode()
    def __call__(self, xs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_input_frames(xs.size(1), self.input_layer)
        out_lengths = subsampled_lengths(lengths, self.input_layer).clamp(min=1)
        frames = int(subsampled_lengths(torch.tensor(xs.size(1)), self.input_layer))
        valid = out_lengths.clamp(max=frames).tolist()
        xs = xs.float()
        parts = [self._subsample(xs[i, : max(n, self.min_frames)])
                 for i, n in enumerate(lengths.tolist())]
        x = torch.cat(parts) if len(parts) > 1 else parts[0]
        table = self._positions(max(valid))
        for i, block in enumerate(self.blocks):
            x = block(x, valid, table)
            if i in self.conditioning:
                x = self.conditioning[i](x)
        x = self.after_norm(x)
        if len(valid) == 1 and valid[0] == frames:
            return x.unsqueeze(0), out_lengths
        return PackedFrames(valid, frames, x.device).unpack(x), out_lengths

    def _subsample(self, feats: torch.Tensor) -> torch.Tensor:
        """One utterance's ``(T, F)`` features -> ``(T', D)``, scaled by ``sqrt(D)``."""
        return self.subsampling(feats[None])[0]

    def _positions(self, length: int) -> torch.Tensor:
        """The sinusoid table for relative positions up to ``length - 1``, grown by doubling."""
        half = (self.table.size(0) + 1) // 2
        if length > half:
            half = max(length, 2 * half)
            self.table = relative_sinusoids(half, self.d_model)
        return self.table


def freeze_encoder(encoder: nn.Module, ctc: CTC | None = None) -> FrozenConformerEncoder | None:
    """A :class:`FrozenConformerEncoder` of ``encoder``, or ``None`` where none applies.

    It applies to a float32 :class:`ConformerEncoder` on the CPU with relative positions
    (``rel_pos_type: latest``) and swish/relu/gelu activations; a self-conditioned one
    (``interctc_use_conditioning``) also needs ``ctc``, the model's CTC. Callers run the
    module itself otherwise.
    """
    if not isinstance(encoder, ConformerEncoder) or encoder.legacy:
        return None
    if encoder.interctc_use_conditioning and (ctc is None or encoder.conditioning_layer is None):
        return None
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in encoder.parameters()):
        return None
    try:
        with torch.no_grad():  # the folding arithmetic needs no autograd graph
            return FrozenConformerEncoder(encoder, ctc)
    except ValueError:  # no frozen form: another activation, or BatchNorm without statistics
        return None
