from __future__ import annotations

import pytest
import torch
from espnet_model.conv1d import DepthwiseConv1d, PointwiseConv1d
from torch.nn import functional as F


@pytest.mark.parametrize("kernel", [1, 5, 31])
def test_depthwise_matches_conv1d_forward_and_backward(kernel: int) -> None:
    conv = DepthwiseConv1d(6, kernel)
    assert conv.weight.shape == (6, 1, kernel)  # nn.Conv1d's, so checkpoints load
    x = torch.randn(3, 40, 6, requires_grad=True)  # (B, T, C)
    out = conv(x)
    assert out.shape == (3, 40, 6) and out.is_contiguous()
    ref_x = x.detach().clone().requires_grad_()
    ref = F.conv1d(ref_x.transpose(1, 2), conv.weight, conv.bias, padding=kernel // 2, groups=6)
    torch.testing.assert_close(out, ref.transpose(1, 2))
    grad = torch.randn_like(out)
    out.backward(grad)
    weight_grad = conv.weight.grad.clone()  # type: ignore[union-attr]
    conv.zero_grad()
    ref.backward(grad.transpose(1, 2))
    torch.testing.assert_close(x.grad, ref_x.grad)
    torch.testing.assert_close(weight_grad, conv.weight.grad)


def test_pointwise_is_a_kernel_one_conv1d() -> None:
    conv = PointwiseConv1d(4, 8)
    assert conv.weight.shape == (8, 4, 1)
    x = torch.randn(2, 10, 4)
    ref = F.conv1d(x.transpose(1, 2), conv.weight, conv.bias).transpose(1, 2)
    torch.testing.assert_close(conv(x), ref)


def test_depthwise_runs_in_float32_under_bf16() -> None:
    """oneDNN's bf16 depthwise kernel hangs at some shapes with 2 threads (torch 2.11):
    under CPU bf16 autocast, and on bf16 input, the convolution is computed in fp32."""
    conv = DepthwiseConv1d(144, 15)
    x = torch.randn(5, 62, 144).to(torch.bfloat16)  # a shape that hung
    ref = conv(x.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref.to(torch.bfloat16), rtol=0, atol=0)
    grad_x = x.float().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(grad_x)
    assert out.dtype == torch.float32 and torch.equal(out, ref)
    out.sum().backward()
    assert grad_x.grad is not None and conv.weight.grad is not None
    conv_bf16 = DepthwiseConv1d(144, 15).to(torch.bfloat16)
    assert conv_bf16(x).dtype == torch.bfloat16
