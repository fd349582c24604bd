"""The frozen contextual block conformer layers equal the modules' (``frozen_block``)."""

from __future__ import annotations

import random

import pytest
import torch
from espnet_model.encoders.block_stream import BlockStreamState, stream_step
from espnet_model.frozen_block import freeze_block_encoder

from tests.espnet_model.test_contextual_block_conformer import tiny_encoder


@pytest.mark.parametrize(
    "conf",
    [
        {},
        {"macaron_style": False},
        {"use_cnn_module": False},
        {"block_size": 12, "hop_size": 4, "look_ahead": 4, "num_blocks": 3},
    ],
)
def test_frozen_layers_equal_the_modules(conf: dict[str, object]) -> None:
    encoder = tiny_encoder(**conf)
    frozen = freeze_block_encoder(encoder)
    assert frozen is not None and len(frozen.layers) == len(encoder.encoders)
    layers = frozen.layers
    size = encoder.block_size + 2
    x = torch.randn(3, size, encoder.output_size())
    mask = encoder.block_mask.unsqueeze(0)
    with torch.no_grad():
        for layer, frozen in zip(encoder.encoders, layers, strict=True):
            want = layer(x, mask, blind_first=True)
            torch.testing.assert_close(frozen(x), want, atol=1e-5, rtol=1e-5)
            x = want


def test_streaming_with_frozen_layers_equals_the_whole_forward() -> None:
    """Two streams fed random chunks together through the frozen encoder give the
    whole-utterance forward of the module."""
    encoder = tiny_encoder(input_layer="conv2d6")
    frozen = freeze_block_encoder(encoder)
    rng = random.Random(3)
    lengths = [97, 40]
    xs = torch.randn(2, 97, 20)
    with torch.no_grad():
        ref, ref_lengths = encoder(xs, torch.tensor(lengths))
        states = [BlockStreamState(), BlockStreamState()]
        outs: list[list[torch.Tensor]] = [[], []]
        pos = [0, 0]
        while not all(s.finished for s in states):
            live = [i for i, s in enumerate(states) if not s.finished]
            chunks, final = [], []
            for i in live:
                n = rng.choice([0, 3, 7, 16])
                chunks.append(xs[i, pos[i] : min(pos[i] + n, lengths[i])])
                final.append(pos[i] + n >= lengths[i])
                pos[i] += n
            got = stream_step(encoder, [states[i] for i in live], chunks, final, frozen)
            for i, out in zip(live, got, strict=True):
                outs[i].append(out)
    for i, n in enumerate(ref_lengths.tolist()):
        torch.testing.assert_close(torch.cat(outs[i]), ref[i, :n], atol=1e-5, rtol=0)


def test_no_frozen_form_off_the_cpu_float32() -> None:
    assert freeze_block_encoder(tiny_encoder().double()) is None
    assert freeze_block_encoder(torch.nn.Linear(2, 2)) is None


@pytest.mark.parametrize("input_layer", ["conv2d", "conv2d6"])  # 20 bins: too few for x8
def test_frozen_subsampling_equals_the_module(input_layer: str) -> None:
    encoder = tiny_encoder(input_layer=input_layer)
    frozen = freeze_block_encoder(encoder)
    assert frozen is not None
    with torch.no_grad():
        for frames in (11, 35, 41, 64):
            x = torch.randn(2, frames, 20)
            torch.testing.assert_close(
                frozen.convolve(x), encoder.embed._convolve(x), atol=1e-5, rtol=1e-5
            )
