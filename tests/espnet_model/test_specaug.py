from __future__ import annotations

import pytest
import torch
from espnet_model.specaug import SpecAug


def test_identity_in_eval() -> None:
    aug = SpecAug(apply_time_warp=True).eval()
    x = torch.randn(2, 50, 20)
    y, lengths = aug(x, torch.tensor([50, 30]))
    assert y is x and lengths.tolist() == [50, 30]


def test_masks_zero_some_bins_and_frames() -> None:
    aug = SpecAug(
        freq_mask_width_range=(5, 5), num_freq_mask=1, time_mask_width_range=(4, 4)
    ).train()
    x = torch.randn(3, 40, 20) + 10.0
    y, _ = aug(x, torch.tensor([40, 30, 20]))
    assert y.shape == x.shape
    zero_bins = (y == 0).all(dim=1).sum(dim=-1)  # whole frequency columns masked
    assert (zero_bins >= 5).all()
    zero_frames = (y == 0).all(dim=2).sum(dim=-1)
    assert (zero_frames >= 4).all()


def test_ratio_and_time_warp() -> None:
    aug = SpecAug(apply_time_warp=True, time_mask_width_ratio_range=(0.0, 0.1)).train()
    x = torch.randn(2, 60, 16)
    y, _ = aug(x, torch.tensor([60, 40]))
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_conflicting_time_mask_keys() -> None:
    with pytest.raises(ValueError, match="time_mask_width_ratio_range"):
        SpecAug(time_mask_width_range=(0, 10), time_mask_width_ratio_range=(0.0, 0.1))
    with pytest.raises(ValueError, match="time_warp_mode"):
        SpecAug(time_warp_mode="cubic")  # type: ignore[arg-type]
