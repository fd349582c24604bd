"""1-D convolutions over channels-last ``(B, T, C)`` activations.

Both keep ``nn.Conv1d``'s parameters (``weight`` ``(out, in / groups, kernel)`` and
``bias``), so ESPnet2 checkpoints load as they are; only the forward pass differs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class PointwiseConv1d(nn.Conv1d):
    """``Conv1d(kernel_size=1)`` on ``(B, T, C)`` as one ``F.linear`` (no transposes)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.squeeze(-1), self.bias)


class DepthwiseConv1d(nn.Conv1d):
    """Same-padded depthwise ``Conv1d`` (odd ``kernel_size``) on ``(B, T, C)``.

    Returns a contiguous ``(B, T, C)``. It runs as a channels-last ``conv2d`` over
    ``(B, C, 1, T)``:
    on a CPU, oneDNN's depthwise kernel for that layout is ~5x faster than ``conv1d``
    (forward) and ~10x faster forward + backward at training sizes.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__(
            channels, channels, kernel_size, padding=(kernel_size - 1) // 2, groups=channels
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and (x.dtype == torch.bfloat16 or torch.is_autocast_enabled("cpu")):
            # In float32: oneDNN's bf16 depthwise kernel (torch 2.11, AVX-512 bf16) did not
            # return within 100 s at some shapes with 2 threads, e.g. (5, 144, 1, 62).
            # The convolution is ~1% of a training step.
            with torch.autocast("cpu", enabled=False):
                bias = self.bias.float() if self.bias is not None else None
                return self._convolve(x.float(), self.weight.float(), bias).to(x.dtype)
        return self._convolve(x, self.weight, self.bias)

    def _convolve(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        h = x.transpose(1, 2).unsqueeze(2).contiguous(memory_format=torch.channels_last)
        padding = (0, self.padding[0])  # type: ignore[index]
        out = F.conv2d(h, weight.unsqueeze(2), bias, padding=padding, groups=self.groups)
        return out.squeeze(2).transpose(1, 2)
