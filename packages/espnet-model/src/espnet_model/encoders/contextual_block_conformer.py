"""Streaming conformer encoder (ESPnet2 ``encoder: contextual_block_conformer``).

Contextual block processing (Tsunoo et al., 2019): after Conv2d subsampling, the frames
are cut into overlapping blocks of ``block_size`` frames that start every ``hop_size``
frames. Each block is encoded on its own, with two extra positions: position 0 carries
the *context* of the previous block and position ``block_size + 1`` this block's own
context (the mean, or max, of its frames, with a positional encoding of the block index
when ``ctx_pos_enc``). Between layers, the context output of block ``i - 1`` becomes
position 0 of block ``i``, so information flows forward block by block. A block emits
``hop_size`` frames: those that lie ``look_ahead`` frames before its end (the first block
also emits the frames before that, the last one everything up to the utterance's end).
An utterance of at most ``block_size`` frames is encoded as one plain segment.

Module and parameter names are ESPnet2's, so its checkpoints load. Positional encoding
is absolute (ESPnet's ``StreamPositionalEncoding``); the feed-forward modules use ReLU
(ESPnet2 does not pass ``activation_type`` to them) and the convolution module uses
``activation_type``.

:meth:`ContextualBlockConformerEncoder.forward` encodes whole utterances;
:func:`espnet_model.encoders.block_stream.stream_step` encodes a batch of streams chunk
by chunk, and the frames it emits are those of ``forward`` on the whole utterance.

One deliberate difference from ESPnet2's ``forward_train``: ESPnet2 cuts a padded batch
into blocks as one, so the padding of a shorter utterance enters its last blocks. Here
each utterance is cut at its own length, so it gets the output it gets alone (equal to
ESPnet2's for a batch of one or of equal lengths, and to ESPnet2's streaming
``forward_infer``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Self

import torch
from torch import nn

from espnet_model._checks import check_choice, check_positive
from espnet_model.attention import MultiHeadedAttention, PositionalEncoding
from espnet_model.dropout import Dropout
from espnet_model.encoders.conformer import ConvolutionModule
from espnet_model.feedforward import Activation, PositionwiseFeedForward, layer_norm
from espnet_model.mask import encoder_masks
from espnet_model.subsampling import Conv2dSubsampling, InputLayer


class ContextualBlockConformerLayer(nn.Module):
    """ESPnet's ``ContextualBlockEncoderLayer`` (pre-LN, no ``concat_after``).

    (Macaron FFN/2) -> MHSA -> conv module -> FFN(/2) -> LayerNorm (with the conv module).
    """

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
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadedAttention(attention_heads, size, attention_dropout_rate)
        self.feed_forward = PositionwiseFeedForward(size, linear_units, dropout_rate, "relu")
        self.feed_forward_macaron: PositionwiseFeedForward | None = None
        if macaron_style:
            self.feed_forward_macaron = PositionwiseFeedForward(
                size, linear_units, dropout_rate, "relu"
            )
        self.conv_module: ConvolutionModule | None = None
        if use_cnn_module:
            self.conv_module = ConvolutionModule(size, cnn_module_kernel, activation_type)
        self.norm1 = layer_norm(size)
        self.norm2 = layer_norm(size)
        if macaron_style:
            self.norm_ff_macaron = layer_norm(size)
        if use_cnn_module:
            self.norm_conv = layer_norm(size)
            self.norm_final = layer_norm(size)
        self.ff_scale = 0.5 if macaron_style else 1.0
        self.dropout = Dropout(dropout_rate)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        pad_mask: torch.Tensor | None = None,
        *,
        blind_first: bool = False,
    ) -> torch.Tensor:
        """``x`` ``(N, L, D)``; ``mask`` bool keep-mask ``(N or 1, L, L)`` or None.

        ``blind_first``: position 0 attends to nothing (ESPnet's all-masked row, whose
        attention output is ``linear_out``'s bias); its row of ``mask`` is ignored.
        ``pad_mask`` ``(N, L, 1)``, True on padding, zeroes padding before the depthwise
        convolution (plain segments of a padded batch only).
        """
        if self.feed_forward_macaron is not None:
            x = x + self.ff_scale * self.dropout(self.feed_forward_macaron(self.norm_ff_macaron(x)))
        h = self.norm1(x)
        att = self.self_attn(h, h, h, mask)
        if blind_first:
            bias = self.self_attn.linear_out.bias
            first = bias.expand(att.size(0), 1, -1) if bias is not None else att[:, :1] * 0
            att = torch.cat([first.to(att.dtype), att[:, 1:]], dim=1)
        x = x + self.dropout(att)
        if self.conv_module is not None:
            x = x + self.dropout(self.conv_module(self.norm_conv(x), pad_mask))
        x = x + self.ff_scale * self.dropout(self.feed_forward(self.norm2(x)))
        if self.conv_module is not None:
            x = self.norm_final(x)
        return x


@dataclass
class BlockBatch:
    """Blocks of several utterances or streams, encoded together.

    Attributes:
        frames: ``(N, block_size, D)`` positionally encoded frames of each block, zero
            after its ``lengths``.
        lengths: ``(N,)`` frames in each block (``block_size`` except at an end).
        ctx_in: ``(N, D)`` layer-0 input of position 0 (the previous block's context).
        ctx_own: ``(N, D)`` the block's own context (position ``block_size + 1``).
        source: ``(N,)`` where position 0 of block ``n`` comes from after each layer:
            ``m < N`` is block ``m``'s context output of that layer, ``N + j`` is row
            ``j`` of ``carried`` (a stream's last block of an earlier call).
        carried: ``(J, num_layers, D)`` context outputs per layer carried from earlier
            calls, or None.
    """

    frames: torch.Tensor
    lengths: list[int]
    ctx_in: torch.Tensor
    ctx_own: torch.Tensor
    source: torch.Tensor
    carried: torch.Tensor | None = None


class ContextualBlockConformerEncoder(nn.Module):
    """Conv2d subsampling and contextual-block conformer layers (ESPnet2 names).

    Args (ESPnet2 ``encoder_conf`` names):
        input_size: feature dimension (derived from the frontend by the builder).
        output_size: model dimension ``D``.
        attention_heads: heads per self-attention.
        linear_units: feed-forward hidden size.
        num_blocks: number of layers.
        dropout_rate / positional_dropout_rate / attention_dropout_rate: as in ESPnet2.
        input_layer: ``conv2d`` (x4), ``conv2d6`` (x6) or ``conv2d8`` (x8).
        normalize_before: must be ``True``.
        macaron_style: two half-step feed-forward modules around attention.
        activation_type: activation of the convolution module.
        use_cnn_module / cnn_module_kernel: the convolution module and its kernel size.
        block_size: frames per block (after subsampling); ``0`` encodes every utterance
            as one segment (not streamable).
        hop_size: frames between block starts (and frames a block emits).
        look_ahead: future frames a block sees beyond the ones it emits.
        init_average: a block's context is the mean of its frames (else the max).
        ctx_pos_enc: add the positional encoding of the block index to the context.
        selfattention_layer_type: accepted for ESPnet2 configs; ESPnet2's encoder always
            uses absolute-position attention whatever it says.
        dynamic_blocks: not in ESPnet2: ``[[block_size, hop_size, look_ahead], ...]``; in
            training each batch is encoded with one of them, drawn at random, so that the
            model can be decoded with any of them (:meth:`with_blocks`, chosen at
            inference). The parameters do not depend on the block shape.
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
        macaron_style: bool = False,
        activation_type: Activation = "swish",
        use_cnn_module: bool = True,
        cnn_module_kernel: int = 31,
        block_size: int = 40,
        hop_size: int = 16,
        look_ahead: int = 16,
        init_average: bool = True,
        ctx_pos_enc: bool = True,
        selfattention_layer_type: str = "rel_selfattn",
        dynamic_blocks: list[list[int]] | None = None,
    ) -> None:
        super().__init__()
        check_choice("encoder_conf.normalize_before", normalize_before, (True,))
        check_positive("encoder_conf.num_blocks", num_blocks)
        _check_blocks(block_size, hop_size, look_ahead)
        self.dynamic_blocks = [tuple(int(v) for v in shape) for shape in dynamic_blocks or []]
        for shape in self.dynamic_blocks:
            if len(shape) != 3 or shape[0] <= 0:
                raise ValueError(
                    f"encoder_conf.dynamic_blocks: {list(shape)} must be [block_size, "
                    "hop_size, look_ahead] with block_size > 0"
                )
            _check_blocks(*shape)
        self._output_size = output_size
        self.embed = Conv2dSubsampling(input_size, output_size, input_layer)
        self.pos_enc = PositionalEncoding(output_size, positional_dropout_rate)
        self.encoders = nn.ModuleList(
            ContextualBlockConformerLayer(
                output_size,
                attention_heads,
                linear_units,
                dropout_rate,
                attention_dropout_rate,
                macaron_style,
                use_cnn_module,
                cnn_module_kernel,
                activation_type,
            )
            for _ in range(num_blocks)
        )
        self.after_norm = layer_norm(output_size)
        self.block_size = block_size
        self.hop_size = hop_size
        self.look_ahead = look_ahead
        self.init_average = init_average
        self.ctx_pos_enc = ctx_pos_enc
        self.register_buffer("block_mask", _block_mask(block_size), persistent=False)

    def with_blocks(self, block_size: int, hop_size: int, look_ahead: int) -> Self:
        """This encoder (same parameters, shared) cutting ``block_size``-frame blocks every
        ``hop_size`` frames with ``look_ahead``; ``self`` is unchanged. Meant for a model
        trained with ``dynamic_blocks``; another block shape than the trained one works,
        with an accuracy only a test set can tell."""
        _check_blocks(block_size, hop_size, look_ahead)
        other = copy.copy(self)
        other._buffers = dict(self._buffers)
        other.block_size, other.hop_size, other.look_ahead = block_size, hop_size, look_ahead
        other.block_mask = _block_mask(block_size).to(self.block_mask.device)
        other.dynamic_blocks = []
        return other

    def output_size(self) -> int:
        return self._output_size

    @property
    def emit_offset(self) -> int:
        """Frames of a block before the ones it emits (``block - hop - look_ahead``)."""
        return self.block_size - self.hop_size - self.look_ahead

    # -- pieces shared by forward and stream_step -------------------------------------

    def context(self, frames: torch.Tensor, block_index: int) -> torch.Tensor:
        """A block's context vector ``(D,)`` from its embedded (unencoded) frames."""
        ctx = frames.mean(0) if self.init_average else frames.max(0).values
        if self.ctx_pos_enc:
            ctx = self.pos_enc(ctx.view(1, 1, -1), block_index).view(-1)
        return ctx

    def plain_segments(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Encode whole short utterances (no blocks): ``[(T_u, D)]`` embedded -> encoded."""
        lengths = torch.tensor([x.size(0) for x in xs], device=xs[0].device)
        x = nn.utils.rnn.pad_sequence(xs, batch_first=True)
        x = self.pos_enc(x)
        mask, pad_mask = encoder_masks(lengths, x.size(1))
        for layer in self.encoders:
            x = layer(x, mask, pad_mask)
        x = self.after_norm(x)
        return [x[i, :n] for i, n in enumerate(lengths.tolist())]

    def encode_blocks(
        self,
        batch: BlockBatch,
        layers: Sequence[Callable[[torch.Tensor], torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the layers over blocks; returns ``(N, block_size, D)`` frame outputs (before
        ``after_norm``) and ``(N, num_layers, D)`` each block's context outputs.

        ``layers``: stand-ins for the layers, each ``(N, block_size + 2, D)`` -> the same
        under the block mask (``espnet_model.frozen_block.freeze_block_encoder(...).layers``)."""
        x = torch.cat(
            [batch.ctx_in[:, None], batch.frames, batch.ctx_own[:, None]], dim=1
        )  # (N, block + 2, D)
        if layers is None:
            mask = self.block_mask.unsqueeze(0)
            layers = [partial(layer, mask=mask, blind_first=True) for layer in self.encoders]
        if len(layers) != len(self.encoders):
            raise ValueError(f"got {len(layers)} layers for an encoder of {len(self.encoders)}")
        ctx_out = []
        for index, layer in enumerate(layers):
            x = layer(x)
            last = x[:, -1]
            ctx_out.append(last)
            if index + 1 < len(self.encoders):
                pool = last if batch.carried is None else torch.cat([last, batch.carried[:, index]])
                x = torch.cat([pool.index_select(0, batch.source)[:, None], x[:, 1:]], dim=1)
        return x[:, 1:-1], torch.stack(ctx_out, dim=1)

    def num_blocks_for(self, frames: int) -> int:
        """Blocks of an utterance of ``frames`` (> ``block_size``) frames."""
        return math.ceil((frames - self.block_size) / self.hop_size) + 1

    # -- whole utterances --------------------------------------------------------------

    def forward(self, xs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``xs`` ``(B, T, input_size)`` -> ``(B, T', output_size)`` and ``T'`` lengths."""
        if self.training and self.dynamic_blocks:
            pick = int(torch.randint(len(self.dynamic_blocks), ()))
            return self.with_blocks(*self.dynamic_blocks[pick]).forward(xs, lengths)
        x, out_lengths = self.embed(xs, lengths)
        frames = [x[i, :n] for i, n in enumerate(out_lengths.tolist())]
        out = x.new_zeros(x.shape)
        short = [
            i for i, f in enumerate(frames) if self.block_size == 0 or f.size(0) <= self.block_size
        ]
        if short:
            for i, y in zip(short, self.plain_segments([frames[i] for i in short]), strict=True):
                out[i, : y.size(0)] = y
        long = [i for i in range(len(frames)) if i not in set(short)]
        if long:
            batch, emits = self._whole_blocks([frames[i] for i in long])
            y, _ = self.encode_blocks(batch)
            pieces: list[list[torch.Tensor]] = [[] for _ in long]
            for row, (utt, begin, end) in enumerate(emits):
                pieces[utt].append(y[row, begin:end])
            for utt, i in enumerate(long):
                enc = self.after_norm(torch.cat(pieces[utt]))
                out[i, : enc.size(0)] = enc
        return out, out_lengths

    def _whole_blocks(
        self, utterances: list[torch.Tensor]
    ) -> tuple[BlockBatch, list[tuple[int, int, int]]]:
        """All blocks of whole utterances and, per block, ``(utterance, begin, end)`` of
        the positions it emits."""
        size, hop, offset = self.block_size, self.hop_size, self.emit_offset
        chunks, lengths, ctx_own, emits = [], [], [], []
        source: list[int] = []
        for utt, frames in enumerate(utterances):
            total = frames.size(0)
            count = self.num_blocks_for(total)
            encoded = self.pos_enc(frames.unsqueeze(0)).squeeze(0)
            for i in range(count):
                start = i * hop
                length = min(size, total - start)
                chunks.append(encoded[start : start + length])
                lengths.append(length)
                ctx_own.append(self.context(frames[start : start + length], i))
                row = len(source)
                source.append(row - 1 if i > 0 else row)
                begin = 0 if i == 0 else offset
                end = length if i == count - 1 else offset + hop
                emits.append((utt, begin, end))
        own = torch.stack(ctx_own)
        rows = torch.tensor(source, device=own.device)
        batch = BlockBatch(
            frames=_pad_blocks(chunks, size),
            lengths=lengths,
            ctx_in=own.index_select(0, rows),
            ctx_own=own,
            source=rows,
        )
        return batch, emits


def _check_blocks(block_size: int, hop_size: int, look_ahead: int) -> None:
    check_positive("encoder_conf.block_size", block_size, allow_zero=True)
    if block_size > 0:
        check_positive("encoder_conf.hop_size", hop_size)
        check_positive("encoder_conf.look_ahead", look_ahead, allow_zero=True)
        if hop_size + look_ahead > block_size:
            raise ValueError(
                f"encoder_conf: hop_size={hop_size} + look_ahead={look_ahead} exceeds "
                f"block_size={block_size}; a block must hold the frames it emits and "
                f"its look-ahead (e.g. block_size={hop_size + look_ahead})"
            )


def _block_mask(block_size: int) -> torch.Tensor:
    """Rows 1..block_size+1 see positions 0..block_size (not the block's own context);
    row 0 is blind (``blind_first``), any row without NaN will do."""
    size = block_size + 2
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[1:, : block_size + 1] = True
    mask[0] = True
    return mask


def _pad_blocks(chunks: list[torch.Tensor], size: int) -> torch.Tensor:
    """``(N, size, D)`` blocks, zero after each chunk's frames."""
    out = chunks[0].new_zeros(len(chunks), size, chunks[0].size(-1))
    for i, chunk in enumerate(chunks):
        out[i, : chunk.size(0)] = chunk
    return out
