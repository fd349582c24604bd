"""Chunk-by-chunk encoding with :class:`ContextualBlockConformerEncoder`, many streams at once.

Each stream keeps a :class:`BlockStreamState`: the feature frames the subsampling has not
consumed yet, the subsampled frames from the start of the next block, the previous
block's context (its input context and its per-layer context outputs), and the
look-ahead outputs of the last block (emitted only if the utterance ends right there).
:func:`stream_step` takes a new chunk of feature frames per stream, encodes every block
that is complete, and returns the newly final output frames; with ``final`` it encodes
the rest. Concatenated, a stream's outputs equal
``encoder.forward`` on the whole utterance, whatever the chunk sizes (up to float
rounding of the convolutions over different lengths).

A block is encoded as soon as its ``block_size`` frames are there (and, for the first
block, one more frame: an utterance of exactly ``block_size`` frames is one plain
segment), so the encoder output lags the input by ``look_ahead`` frames plus up to
``hop_size`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from espnet_model.encoders.contextual_block_conformer import (
    BlockBatch,
    ContextualBlockConformerEncoder,
    _pad_blocks,
)
from espnet_model.subsampling import _STAGES

if TYPE_CHECKING:
    from espnet_model.frozen_block import FrozenBlockEncoder

__all__ = ["BlockStreamState", "stream_step"]


@dataclass
class BlockStreamState:
    """Encoder state of one stream (see the module docstring).

    Attributes:
        feats: feature frames not yet subsampled ``(n, F)``.
        frames: subsampled frames from absolute frame ``blocks * hop_size`` on ``(m, D)``.
        total: subsampled frames produced so far.
        blocks: blocks encoded so far.
        emitted: output frames returned so far.
        prev_ctx: the last encoded block's own context ``(D,)`` (layer-0 input of the next).
        layer_ctx: the last encoded block's context output per layer ``(L, D)``.
        tail: the last block's outputs after the frames it emitted ``(look_ahead, D)``.
        finished: ``final`` was given; the state accepts no more input.
    """

    feats: torch.Tensor | None = None
    frames: torch.Tensor | None = None
    total: int = 0
    blocks: int = 0
    emitted: int = 0
    prev_ctx: torch.Tensor | None = None
    layer_ctx: torch.Tensor | None = None
    tail: torch.Tensor | None = None
    finished: bool = False


def _subsample(
    encoder: ContextualBlockConformerEncoder,
    states: list[BlockStreamState],
    chunks: list[torch.Tensor],
    frozen: FrozenBlockEncoder | None = None,
) -> list[torch.Tensor | None]:
    """Append ``chunks`` to each stream's feature buffer and subsample what is complete."""
    stages = _STAGES[encoder.embed.input_layer]
    stride, field_ = 1, 1
    for kernel, step in reversed(stages):
        field_ = (field_ - 1) * step + kernel
    for _, step in stages:
        stride *= step
    ready: list[tuple[int, torch.Tensor, int]] = []
    for index, (state, chunk) in enumerate(zip(states, chunks, strict=True)):
        feats = chunk if state.feats is None else torch.cat([state.feats, chunk])
        count = (feats.size(0) - field_) // stride + 1 if feats.size(0) >= field_ else 0
        state.feats = feats[count * stride :]
        if count:
            ready.append((index, feats[: (count - 1) * stride + field_], count))
    out: list[torch.Tensor | None] = [None] * len(states)
    if ready:
        width = max(f.size(0) for _, f, _ in ready)
        padded = ready[0][1].new_zeros(len(ready), width, ready[0][1].size(1))
        for row, (_, feats, _) in enumerate(ready):
            padded[row, : feats.size(0)] = feats
        convolve = encoder.embed._convolve if frozen is None else frozen.convolve
        embedded = convolve(padded)
        for row, (index, _, count) in enumerate(ready):
            out[index] = embedded[row, :count]
    return out


def stream_step(
    encoder: ContextualBlockConformerEncoder,
    states: list[BlockStreamState],
    chunks: list[torch.Tensor],
    final: list[bool],
    frozen: FrozenBlockEncoder | None = None,
) -> list[torch.Tensor]:
    """Feed one chunk of normalised features ``(n_i, F)`` (``n_i`` may be 0) per stream.

    Returns per stream the output frames ``(k_i, D)`` that became final. Runs in eval
    mode semantics (dropout is whatever ``encoder.training`` says; use ``eval()``).
    ``frozen``: the encoder's subsampling and layers frozen
    (``espnet_model.frozen_block.freeze_block_encoder``), run instead of the modules.
    """
    if encoder.block_size <= 0:
        raise ValueError(
            "encoder_conf.block_size=0 encodes whole utterances only; streaming needs "
            "block_size > 0"
        )
    for state in states:
        if state.finished:
            raise ValueError("this stream was finished; start a new BlockStreamState")
    size, hop, offset = encoder.block_size, encoder.hop_size, encoder.emit_offset
    new = _subsample(encoder, states, chunks, frozen)
    for state, frames in zip(states, new, strict=True):
        if frames is not None:
            state.frames = frames if state.frames is None else torch.cat([state.frames, frames])
            state.total += frames.size(0)

    chunks_in, lengths, own, ctx_in_rows, source, carried = [], [], [], [], [], []
    plain: list[int] = []
    plans: list[list[tuple[int, int, int]]] = [[] for _ in states]  # (row, begin, end)
    tails: list[torch.Tensor | None] = [None] * len(states)
    for index, (state, is_final) in enumerate(zip(states, final, strict=True)):
        total = state.total
        if is_final and state.blocks == 0 and 0 < total <= size:
            plain.append(index)
            continue
        if is_final:
            last = encoder.num_blocks_for(total) if total > size else 0
        else:
            last = (total - size) // hop + 1 if total > size else 0
        if state.blocks >= last:
            if is_final and state.tail is not None:
                tails[index] = state.tail[: total - state.emitted]
            continue
        assert state.frames is not None
        base = state.blocks * hop
        for i in range(state.blocks, last):
            start = i * hop
            length = min(size, total - start)
            frames = state.frames[start - base : start - base + length]
            chunks_in.append(encoder.pos_enc(frames.unsqueeze(0), start).squeeze(0))
            lengths.append(length)
            own.append(encoder.context(frames, i))
            row = len(source)
            if i > state.blocks:
                source.append(row - 1)
                ctx_in_rows.append(("own", row - 1))
            elif state.layer_ctx is not None:
                source.append(-1 - len(carried))  # resolved below
                carried.append(state.layer_ctx)
                ctx_in_rows.append(("prev", index))
            else:
                source.append(row)
                ctx_in_rows.append(("own", row))
            begin = 0 if i == 0 else offset
            end = length if is_final and i == last - 1 else offset + hop
            plans[index].append((row, begin, end))

    outputs: list[list[torch.Tensor]] = [[] for _ in states]
    if own:
        own_t = torch.stack(own)
        ctx_in = torch.stack(
            [own_t[r] if kind == "own" else states[r].prev_ctx for kind, r in ctx_in_rows]  # type: ignore[misc]
        )
        n = len(own)
        rows = torch.tensor([s if s >= 0 else n + (-1 - s) for s in source], device=own_t.device)
        batch = BlockBatch(
            frames=_pad_blocks(chunks_in, size),
            lengths=lengths,
            ctx_in=ctx_in,
            ctx_own=own_t,
            source=rows,
            carried=torch.stack(carried) if carried else None,
        )
        y, ctx_out = encoder.encode_blocks(batch, None if frozen is None else frozen.layers)
        for index, plan in enumerate(plans):
            if not plan:
                continue
            state = states[index]
            for row, begin, end in plan:
                outputs[index].append(y[row, begin:end])
            last_row = plan[-1][0]
            state.tail = y[last_row, offset + hop :]
            state.prev_ctx = own_t[last_row]
            state.layer_ctx = ctx_out[last_row]
            state.blocks += len(plan)
            assert state.frames is not None
            state.frames = state.frames[len(plan) * hop :]
    if plain:
        segments = encoder.plain_segments([states[i].frames for i in plain])  # type: ignore[misc]
    results: list[torch.Tensor] = []
    for index, state in enumerate(states):
        if index in plain:
            out = segments[plain.index(index)]
        else:
            pieces = outputs[index]
            if tails[index] is not None:
                pieces = [*pieces, tails[index]]  # type: ignore[list-item]
            if pieces:
                out = encoder.after_norm(torch.cat(pieces))
            else:
                dim = encoder.output_size()
                ref = chunks[index]
                out = ref.new_zeros(0, dim)
        state.emitted += out.size(0)
        results.append(out)
        if final[index]:
            state.finished = True
            state.feats = state.frames = state.tail = None
    return results
