"""Convolutional front subsampling of encoder inputs (x4, x6, x8 in time).

``Conv2dSubsampling`` is ESPnet's ``conv2d`` / ``conv2d6`` / ``conv2d8`` input
layer without the positional encoding (the encoder applies that). Convolutions
are unpadded in time, so each valid output frame reads only valid input frames.
Output lengths: each ``(kernel, stride)`` stage maps ``T -> (T - kernel) // stride + 1``:

- ``conv2d``  (x4): ``((T - 1) // 2 - 1) // 2``
- ``conv2d6`` (x6): ``((T - 1) // 2 - 2) // 3``
- ``conv2d8`` (x8): ``(((T - 1) // 2 - 1) // 2 - 1) // 2``
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from espnet_model._checks import check_choice
from espnet_model.packed import ragged_lengths

InputLayer = Literal["conv2d", "conv2d6", "conv2d8"]

_STAGES: dict[str, tuple[tuple[int, int], ...]] = {
    "conv2d": ((3, 2), (3, 2)),
    "conv2d6": ((3, 2), (5, 3)),
    "conv2d8": ((3, 2), (3, 2), (3, 2)),
}


def subsampled_lengths(lengths: torch.Tensor, input_layer: InputLayer) -> torch.Tensor:
    """Output lengths of :class:`Conv2dSubsampling` for ``lengths`` input frames."""
    check_choice("encoder_conf.input_layer", input_layer, tuple(_STAGES))
    for kernel, stride in _STAGES[input_layer]:
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    return lengths


def min_input_frames(input_layer: InputLayer) -> int:
    """Fewest input frames that give one output frame."""
    need = 1
    for kernel, stride in reversed(_STAGES[input_layer]):
        need = (need - 1) * stride + kernel
    return need


_FUSED_CONV = (  # oneDNN convolution with a fused activation
    getattr(torch.ops.mkldnn, "_convolution_pointwise", None)
    if torch.backends.mkldnn.is_available()
    else None
)


def relu_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int]
) -> torch.Tensor:
    """``relu(conv2d(x, weight, bias, stride))``.

    In float32 on a CPU without autograd or autocast it is one oneDNN call with the ReLU fused
    (``torch.ops.mkldnn._convolution_pointwise``, the op ``torch.compile`` fuses to):
    measured on a 10 s utterance at batch 1, both x6 convolutions took 11.1 ms instead of
    13.3 ms, as the first one's large output is not read and written again by the ReLU.
    """
    if (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and _FUSED_CONV is not None
    ):
        return _FUSED_CONV(x, weight, bias, [0, 0], list(stride), [1, 1], 1, "relu", [], "")
    return torch.relu_(F.conv2d(x, weight, bias, stride))


def check_input_frames(frames: int, input_layer: InputLayer) -> None:
    """Raise if a padded batch of ``frames`` frames is too short for ``input_layer``."""
    need = min_input_frames(input_layer)
    if frames < need:
        raise ValueError(
            f"input has {frames} frames but input_layer={input_layer!r} needs at "
            f"least {need}; drop shorter utterances or use input_layer='conv2d'"
        )


class Conv2dSubsampling(nn.Module):
    """``(B, T, idim) -> (B, T', odim)``: ReLU conv stack, then a linear projection.

    Args:
        idim: input feature dimension (e.g. 80 mel bins).
        odim: output dimension (= encoder ``output_size``), also the conv channels.
        input_layer: ``conv2d`` (x4), ``conv2d6`` (x6) or ``conv2d8`` (x8).
    """

    def __init__(self, idim: int, odim: int, input_layer: InputLayer = "conv2d") -> None:
        super().__init__()
        check_choice("encoder_conf.input_layer", input_layer, tuple(_STAGES))
        self.input_layer: InputLayer = input_layer
        layers: list[nn.Module] = []
        channels, freq = 1, idim
        for kernel, stride in _STAGES[input_layer]:
            layers += [nn.Conv2d(channels, odim, kernel, stride), nn.ReLU()]
            channels, freq = odim, (freq - kernel) // stride + 1
        if freq < 1:
            raise ValueError(
                f"encoder input_size={idim} is too small for input_layer={input_layer!r}; "
                f"use at least {min_input_frames(input_layer)} features"
            )
        self.conv = nn.Sequential(*layers)
        self.out = nn.Linear(odim * freq, odim)
        self.min_frames = min_input_frames(input_layer)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_input_frames(x.size(1), self.input_layer)
        out_lengths = subsampled_lengths(lengths, self.input_layer).clamp(min=1)
        frames = ragged_lengths(lengths, x.size(1), x.device)
        if frames is not None:
            # Convolve each utterance over its own frames only (espnet_model.packed). The
            # convolutions are a quarter of a training step: measured on issue 4's
            # benchmark batch (29% padding), the step ran 1.11x faster.
            total = int(subsampled_lengths(torch.tensor(x.size(1)), self.input_layer))
            outs = [self._convolve(x[i : i + 1, : max(n, self.min_frames)])
                    for i, n in enumerate(frames)]
            h = torch.cat([F.pad(o, (0, 0, 0, total - o.size(1))) for o in outs])
            return h, out_lengths
        return self._convolve(x), out_lengths

    def _convolve(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutions and the projection: ``(B, T, idim) -> (B, T', odim)``."""
        # oneDNN on a CPU: channels_last convolutions are faster for inference and bf16
        # training, plain-layout ones for fp32 training (~8% on forward + backward).
        layout = torch.channels_last
        if x.device.type == "cpu" and torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu"):
            layout = torch.contiguous_format
        if layout is torch.channels_last:
            # (B, 1, T, F) with channels_last strides: with one channel both layouts
            # fit, and torch would take plain, then copy the first convolution's
            # (large) output to channels_last for the second.
            h = x.contiguous().unsqueeze(-1).permute(0, 3, 1, 2)
        else:
            h = x.unsqueeze(1)
        # each Conv2d of (Conv2d, ReLU, Conv2d, ReLU, ...) with its ReLU, in place: the
        # convolutions' backward needs neither output
        for conv in self.conv[::2]:
            weight = conv.weight.contiguous(memory_format=layout)
            h = relu_conv2d(h, weight, conv.bias, conv.stride)  # (B, C, T', F') at the end
        b, c, t, f = h.shape
        return self.out(h.transpose(1, 2).reshape(b, t, c * f))
