from __future__ import annotations

import torch
from espnet_model.mask import (
    encoder_masks,
    make_non_pad_mask,
    make_pad_mask,
    pad_mask_or_none,
    subsequent_mask,
    target_mask,
    unpadded,
    zero_padded,
)


def test_pad_mask() -> None:
    mask = make_pad_mask(torch.tensor([3, 1]))
    assert mask.tolist() == [[False, False, False], [False, True, True]]
    assert make_pad_mask(torch.tensor([1]), max_len=3).tolist() == [[False, True, True]]
    assert (make_non_pad_mask(torch.tensor([3, 1])) == ~mask).all()


def test_subsequent_and_target_mask() -> None:
    assert subsequent_mask(3).tolist() == [
        [True, False, False],
        [True, True, False],
        [True, True, True],
    ]
    m = target_mask(torch.tensor([2, 3]), 3)
    assert m.shape == (2, 3, 3)
    assert m[0, 2].tolist() == [True, True, False]
    assert m[1, 2].tolist() == [True, True, True]


def test_encoder_masks_are_none_without_padding() -> None:
    assert encoder_masks(torch.tensor([4]), 4) == (None, None)
    assert encoder_masks(torch.tensor([4, 4]), 4) == (None, None)
    mask, pad_mask = encoder_masks(torch.tensor([4, 2]), 4)
    assert mask is not None and pad_mask is not None
    assert mask.shape == (2, 1, 4) and pad_mask.shape == (2, 4, 1)
    assert mask[1, 0].tolist() == [True, True, False, False]
    assert (pad_mask.squeeze(-1) == ~mask.squeeze(1)).all()
    x = torch.ones(2, 4, 3)
    assert zero_padded(x, None) is x
    assert zero_padded(x, pad_mask)[1].sum(-1).tolist() == [3.0, 3.0, 0.0, 0.0]


def test_unpadded_and_pad_mask_or_none() -> None:
    assert unpadded(torch.tensor([4, 4]), 4) and not unpadded(torch.tensor([4, 3]), 4)
    assert pad_mask_or_none(torch.tensor([5]), 5) is None
    mask = pad_mask_or_none(torch.tensor([5, 2]), 5)
    assert mask is not None and mask.shape == (2, 5, 1)
    assert mask[1, :, 0].tolist() == [False, False, True, True, True]
