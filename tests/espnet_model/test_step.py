"""espnet_model._step: weights laid out for one-token steps (column blocks for large ones)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from espnet_model._step import SPLIT_MIN_ELEMENTS, affine, affine_params, stacked_affine_params
from torch import nn


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Two torch threads (the split applies from two on), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _linear(inputs: int, outputs: int) -> nn.Linear:
    torch.manual_seed(inputs + outputs)
    return nn.Linear(inputs, outputs)


@pytest.mark.parametrize(("inputs", "outputs"), [(256, 1024), (1024, 256), (256, 768)])
def test_large_weights_are_multiplied_in_column_blocks(two_threads, inputs, outputs) -> None:
    linear = _linear(inputs, outputs)
    assert inputs * outputs >= SPLIT_MIN_ELEMENTS
    params = affine_params(linear)
    assert params[1].shape == (2, inputs, outputs // 2) and params[0].shape == (2, 1, outputs // 2)
    with torch.no_grad():
        for rows in (1, 10, 100):
            x = torch.randn(rows, inputs)
            torch.testing.assert_close(affine(params, x), linear(x), atol=1e-4, rtol=1e-5)


def test_stacked_weights_split_after_stacking(two_threads) -> None:
    q, k, v = (_linear(256, 256 + i) for i in (0, 2, 4))
    params = stacked_affine_params(q, k, v)
    assert params[1].dim() == 3  # 256 x 774 as one weight: split
    with torch.no_grad():
        x = torch.randn(10, 256)
        want = torch.cat([q(x), k(x), v(x)], dim=1)
        torch.testing.assert_close(affine(params, x), want, atol=1e-4, rtol=1e-5)


def test_small_weights_and_one_thread_stay_whole(two_threads) -> None:
    small = affine_params(_linear(144, 576))  # 0.33 MB: in L2 already
    assert small[1].shape == (144, 576)
    torch.set_num_threads(1)
    assert affine_params(_linear(256, 1024))[1].shape == (256, 1024)
    with torch.no_grad():
        x = torch.randn(4, 144)
        torch.testing.assert_close(affine(small, x), x @ small[1] + small[0])


def test_a_large_transformer_lm_steps_as_its_full_forward(two_threads) -> None:
    """ESPnet2's TransformerLM defaults (256 units, 1024 in the feed-forward): its step
    weights are split, its cached scores still equal the full forward."""
    from espnet_model.lm import TransformerLM

    torch.manual_seed(0)
    lm = TransformerLM(30, embed_unit=128, att_unit=256, head=2, unit=1024, layer=2).eval()
    ys = torch.randint(1, 29, (10, 6))
    ys[:, 0] = 29
    with torch.no_grad():
        full = torch.log_softmax(lm(ys), dim=-1)
        state = None
        for length in range(1, ys.size(1) + 1):
            logp, state = lm.batch_score(ys[:, :length], state)
            torch.testing.assert_close(logp, full[:, length - 1], atol=1e-4, rtol=0)
    assert state is not None and state.weights is not None
    assert state.weights.layers[0][4][1].dim() == 3  # w_1, 256 x 1024, in column blocks
