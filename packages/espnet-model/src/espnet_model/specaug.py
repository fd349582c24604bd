"""SpecAugment: time warping, frequency masking and time masking.

Key names follow ESPnet2's ``specaug_conf``. Masks are drawn per utterance and
applied in one vectorised step; time masks respect each utterance's length.
The module is the identity in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from espnet_model._checks import check_choice, check_positive

TimeWarpMode = Literal["bicubic", "bilinear", "nearest"]
_TIME_WARP_MODES: tuple[TimeWarpMode, ...] = ("bicubic", "bilinear", "nearest")
_DEFAULT_TIME_MASK_WIDTH: tuple[int, int] = (0, 40)


def _as_range(key: str, value: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(value, int | float):
        return (0.0, float(value))
    if len(value) != 2 or value[0] > value[1] or value[0] < 0:
        raise ValueError(f"specaug_conf.{key}={value!r} must be [low, high] with 0 <= low <= high")
    return (float(value[0]), float(value[1]))


def _mask_along(
    x: torch.Tensor, widths: torch.Tensor, starts: torch.Tensor, axis_len: int, dim: int
) -> torch.Tensor:
    """Zero ``[start, start + width)`` along ``dim`` (1 = time, 2 = freq) of ``x`` (B, T, F)."""
    pos = torch.arange(axis_len, device=x.device).view(1, 1, axis_len)
    hit = (pos >= starts.unsqueeze(-1)) & (pos < (starts + widths).unsqueeze(-1))
    mask = hit.any(dim=1)  # (B, axis_len)
    mask = mask.unsqueeze(2) if dim == 1 else mask.unsqueeze(1)
    return x.masked_fill(mask, 0.0)


class SpecAug(nn.Module):
    """SpecAugment on ``(B, T, F)`` features; active only when ``self.training``.

    Args:
        apply_time_warp: warp the time axis around a random centre.
        time_warp_window: maximal displacement of the warp centre in frames.
        time_warp_mode: interpolation used to warp.
        apply_freq_mask: apply ``num_freq_mask`` frequency masks.
        freq_mask_width_range: ``[low, high]`` width of each frequency mask in bins
            (an int ``n`` means ``[0, n]``).
        num_freq_mask: frequency masks per utterance.
        apply_time_mask: apply ``num_time_mask`` time masks.
        time_mask_width_range: ``[low, high]`` width of each time mask in frames.
        time_mask_width_ratio_range: ``[low, high]`` width as a fraction of the
            utterance length; give this or ``time_mask_width_range``, not both
            (neither means ``time_mask_width_range=[0, 40]``).
        num_time_mask: time masks per utterance.
    """

    def __init__(
        self,
        apply_time_warp: bool = False,
        time_warp_window: int = 5,
        time_warp_mode: TimeWarpMode = "bicubic",
        apply_freq_mask: bool = True,
        freq_mask_width_range: int | Sequence[int] = (0, 27),
        num_freq_mask: int = 2,
        apply_time_mask: bool = True,
        time_mask_width_range: int | Sequence[int] | None = None,
        time_mask_width_ratio_range: float | Sequence[float] | None = None,
        num_time_mask: int = 2,
    ) -> None:
        super().__init__()
        check_choice("specaug_conf.time_warp_mode", time_warp_mode, _TIME_WARP_MODES)
        check_positive("specaug_conf.time_warp_window", time_warp_window, allow_zero=True)
        check_positive("specaug_conf.num_freq_mask", num_freq_mask, allow_zero=True)
        check_positive("specaug_conf.num_time_mask", num_time_mask, allow_zero=True)
        if time_mask_width_range is not None and time_mask_width_ratio_range is not None:
            raise ValueError(
                "specaug_conf: give time_mask_width_range or time_mask_width_ratio_range, "
                f"not both (got {time_mask_width_range!r} and {time_mask_width_ratio_range!r})"
            )
        self.apply_time_warp = apply_time_warp
        self.time_warp_window = time_warp_window
        self.time_warp_mode: TimeWarpMode = time_warp_mode
        self.apply_freq_mask = apply_freq_mask
        self.freq_mask_width_range = _as_range("freq_mask_width_range", freq_mask_width_range)
        self.num_freq_mask = num_freq_mask
        self.apply_time_mask = apply_time_mask
        self.time_mask_width_ratio_range: tuple[float, float] | None = None
        self.time_mask_width_range: tuple[float, float] | None = None
        if time_mask_width_ratio_range is not None:
            self.time_mask_width_ratio_range = _as_range(
                "time_mask_width_ratio_range", time_mask_width_ratio_range
            )
        else:
            self.time_mask_width_range = _as_range(
                "time_mask_width_range",
                _DEFAULT_TIME_MASK_WIDTH
                if time_mask_width_range is None
                else time_mask_width_range,
            )
        self.num_time_mask = num_time_mask

    def forward(
        self, feats: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training:
            return feats, lengths
        if self.apply_time_warp and self.time_warp_window > 0:
            feats = self._time_warp(feats, lengths)
        batch, time, freq = feats.shape
        device = feats.device
        if self.apply_freq_mask and self.num_freq_mask > 0:
            low, high = self.freq_mask_width_range
            high = min(high, freq)
            widths = torch.randint(
                int(low), int(high) + 1, (batch, self.num_freq_mask), device=device
            )
            starts = (
                torch.rand(batch, self.num_freq_mask, device=device) * (freq - widths + 1)
            ).long()
            feats = _mask_along(feats, widths, starts, freq, dim=2)
        if self.apply_time_mask and self.num_time_mask > 0:
            lens = lengths.to(device).unsqueeze(1).float()  # (B, 1)
            if self.time_mask_width_ratio_range is not None:
                low_r, high_r = self.time_mask_width_ratio_range
                low_w, high_w = lens * low_r, lens * high_r
            else:
                assert self.time_mask_width_range is not None
                low_w = torch.full_like(lens, self.time_mask_width_range[0])
                high_w = torch.full_like(lens, self.time_mask_width_range[1]).minimum(lens)
            draw = torch.rand(batch, self.num_time_mask, device=device)
            widths = (low_w + draw * (high_w - low_w + 1)).floor().minimum(high_w).long()
            room = (lens - widths + 1).clamp(min=1)
            starts = (torch.rand(batch, self.num_time_mask, device=device) * room).long()
            feats = _mask_along(feats, widths, starts, time, dim=1)
        return feats, lengths

    def _time_warp(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Warp each utterance's valid region independently (a short loop over the batch)."""
        window = self.time_warp_window
        align = None if self.time_warp_mode == "nearest" else False
        out = feats.clone()
        for b, length in enumerate(lengths.tolist()):
            if length - window <= window + 1:
                continue
            centre = int(torch.randint(window, length - window, (1,)))
            warped = int(torch.randint(centre - window, centre + window, (1,))) + 1
            x = feats[b, :length].unsqueeze(0).unsqueeze(0)  # (1, 1, T, F)
            freq = x.size(-1)
            left = nn.functional.interpolate(
                x[:, :, :centre], size=(warped, freq), mode=self.time_warp_mode, align_corners=align
            )
            right = nn.functional.interpolate(
                x[:, :, centre:],
                size=(length - warped, freq),
                mode=self.time_warp_mode,
                align_corners=align,
            )
            out[b, :warped] = left[0, 0]
            out[b, warped:length] = right[0, 0]
        return out
