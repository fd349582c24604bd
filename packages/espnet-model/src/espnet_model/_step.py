"""Weights laid out for one-token steps (:class:`~espnet_model.IncrementalDecoder`, the
transformer LM's cached scoring): arguments for torch's functions, called directly.

At a handful of rows a step is bound by per-call overhead and by reading the weights,
not by arithmetic: module calls and ``F`` wrappers cost more than the matrix products.
"""

from __future__ import annotations

import torch
from torch import nn


def norm_params(norm: nn.LayerNorm) -> tuple:
    """The arguments after the input of ``torch.layer_norm`` for ``norm``."""
    return norm.normalized_shape, norm.weight, norm.bias, norm.eps


def affine_params(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bias, weight transposed)`` of ``linear``, for :func:`affine`."""
    return linear.bias, linear.weight.t().contiguous()


def stacked_affine_params(*linears: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`affine_params` of the linears stacked along their outputs (e.g. q, k, v)."""
    return (
        torch.cat([linear.bias for linear in linears]),
        torch.cat([linear.weight for linear in linears]).t().contiguous(),
    )


def affine(params: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``bias + x @ weight`` for ``params = (bias, weight)``, the weight already transposed."""
    bias, weight = params
    return torch.addmm(bias, x, weight)
