"""Padding and causal masks.

Conventions (same as ESPnet): a *pad mask* is ``True`` on padded frames, a
*non-pad mask* is ``True`` on valid frames. Attention modules take non-pad
("keep") masks that broadcast to ``(B, Tq, Tk)``.
"""

from __future__ import annotations

import torch


def make_pad_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(B, T)`` bool mask, ``True`` where the frame index is ``>= lengths[b]``.

    ``max_len`` defaults to ``lengths.max()``.
    """
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (B,), got shape {tuple(lengths.shape)}")
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() > 0 else 0
    idx = torch.arange(max_len, device=lengths.device)
    return idx.unsqueeze(0) >= lengths.unsqueeze(1)


def make_non_pad_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(B, T)`` bool mask, ``True`` on valid frames (the negation of :func:`make_pad_mask`)."""
    return ~make_pad_mask(lengths, max_len)


def subsequent_mask(size: int, device: torch.device | None = None) -> torch.Tensor:
    """``(size, size)`` lower-triangular bool mask: position ``i`` may see ``j <= i``."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril_()


def target_mask(ys_lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B, L, L)`` decoder self-attention keep-mask: causal and not padded."""
    keep = make_non_pad_mask(ys_lengths, max_len).unsqueeze(1)  # (B, 1, L)
    return keep & subsequent_mask(max_len, ys_lengths.device).unsqueeze(0)


def unpadded(lengths: torch.Tensor, max_len: int) -> bool:
    """``True`` when ``lengths`` are on the CPU and no frame of ``max_len`` is padded.

    As in a batch of one: callers then skip masking, the same result with less work.
    (On a GPU, checking would wait for the device, so this says ``False`` there.)
    """
    return lengths.device.type == "cpu" and bool((lengths >= max_len).all())


def pad_mask_or_none(lengths: torch.Tensor, max_len: int) -> torch.Tensor | None:
    """``(B, T, 1)`` pad mask for ``(B, T, C)`` features, ``None`` when :func:`unpadded`."""
    return None if unpadded(lengths, max_len) else make_pad_mask(lengths, max_len).unsqueeze(-1)


def encoder_masks(
    lengths: torch.Tensor, max_len: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Encoder masks: attention keep-mask ``(B, 1, T)`` and conv pad mask ``(B, T, 1)``.

    Both are ``None`` when :func:`unpadded` (e.g. a batch of one on the CPU); the
    modules then skip masking.
    """
    if unpadded(lengths, max_len):
        return None, None
    keep = make_non_pad_mask(lengths, max_len)
    return keep.unsqueeze(1), ~keep.unsqueeze(-1)


def zero_padded(x: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
    """``x`` with padded frames (``pad_mask`` ``True``) set to 0; ``x`` itself if no mask."""
    return x if pad_mask is None else x.masked_fill(pad_mask, 0.0)
