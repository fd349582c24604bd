from __future__ import annotations

import torch
from espnet_model.mask import make_non_pad_mask, make_pad_mask, subsequent_mask, target_mask


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
