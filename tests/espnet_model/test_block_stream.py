"""Chunked encoding (``block_stream.stream_step``) equals the whole-utterance forward."""

from __future__ import annotations

import random

import pytest
import torch
from espnet_model.encoders.block_stream import BlockStreamState, stream_step

from tests.espnet_model.test_contextual_block_conformer import tiny_encoder


def _stream(encoder, feats: torch.Tensor, sizes: list[int], rng: random.Random) -> torch.Tensor:
    state, outs, pos = BlockStreamState(), [], 0
    while True:
        n = rng.choice(sizes)
        final = pos + n >= feats.size(0)
        outs += stream_step(encoder, [state], [feats[pos : pos + n]], [final])
        pos += n
        if final:
            return torch.cat(outs)


@pytest.mark.parametrize("input_layer", ["conv2d", "conv2d6"])
def test_any_chunking_equals_the_whole_forward(input_layer: str) -> None:
    """Lengths from too short to many blocks (around the first block's edge at 8 and 9
    subsampled frames, and the ends of later blocks), chunks of 0..40 frames."""
    encoder = tiny_encoder(input_layer=input_layer)
    rng = random.Random(0)
    with torch.no_grad():
        for frames in [1, 6, 7, 12, 20, *range(33, 48), 51, 55, 59, 97, 150]:
            x = torch.randn(frames, 20)
            try:
                ref, lengths = encoder(x[None], torch.tensor([frames]))
                ref = ref[0, : lengths[0]]
            except ValueError:  # fewer frames than the subsampling needs
                ref = torch.zeros(0, 16)
            for _ in range(2 if frames < 60 else 1):
                got = _stream(encoder, x, [0, 1, 2, 5, 9, 17, 40], rng)
                assert got.shape == ref.shape, frames
                torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_streams_batched_together_stay_isolated() -> None:
    """Three streams of different lengths, fed different chunk sizes in one batch, each
    get their own whole-utterance output (the padded batch's forward)."""
    encoder = tiny_encoder()
    rng = random.Random(1)
    lengths = [90, 33, 61]
    xs = torch.randn(3, 90, 20)
    with torch.no_grad():
        ref, ref_lengths = encoder(xs, torch.tensor(lengths))
        states = [BlockStreamState() for _ in lengths]
        outs: list[list[torch.Tensor]] = [[] for _ in lengths]
        pos = [0, 0, 0]
        while not all(s.finished for s in states):
            live = [i for i, s in enumerate(states) if not s.finished]
            chunks, final = [], []
            for i in live:
                n = rng.choice([3, 7, 16])
                chunks.append(xs[i, pos[i] : min(pos[i] + n, lengths[i])])
                final.append(pos[i] + n >= lengths[i])
                pos[i] += n
            for i, out in zip(
                live, stream_step(encoder, [states[i] for i in live], chunks, final), strict=True
            ):
                outs[i].append(out)
    for i in range(3):
        torch.testing.assert_close(torch.cat(outs[i]), ref[i, : ref_lengths[i]], atol=1e-5, rtol=0)


def test_output_lags_by_the_look_ahead() -> None:
    """A non-final chunk emits every frame whose block (look-ahead included) is there."""
    encoder = tiny_encoder()  # block 8, hop 3, look-ahead 2: block i emits up to 3i + 5
    state = BlockStreamState()
    with torch.no_grad():
        (out,) = stream_step(encoder, [state], [torch.randn(4 * 9 + 3, 20)], [False])
    # 39 frames -> 9 subsampled; block 0 needs 9 (> block_size) and emits 0..5
    assert out.shape[0] == 6 and state.blocks == 1


def test_a_finished_stream_refuses_input_and_block_size_zero_cannot_stream() -> None:
    encoder = tiny_encoder()
    state = BlockStreamState()
    stream_step(encoder, [state], [torch.randn(50, 20)], [True])
    with pytest.raises(ValueError, match="finished"):
        stream_step(encoder, [state], [torch.randn(5, 20)], [False])
    with pytest.raises(ValueError, match="block_size=0"):
        stream_step(tiny_encoder(block_size=0), [BlockStreamState()], [torch.randn(5, 20)], [True])
