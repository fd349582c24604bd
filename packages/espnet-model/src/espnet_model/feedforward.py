"""Position-wise feed-forward block and the activations encoders may choose from."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from espnet_model._checks import check_choice
from espnet_model.dropout import Dropout

Activation = Literal["swish", "relu", "gelu"]
_ACTIVATIONS: dict[str, type[nn.Module]] = {"swish": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}


def make_activation(name: Activation, key: str = "activation_type") -> nn.Module:
    """Instantiate the activation called ``name`` (``swish`` | ``relu`` | ``gelu``)."""
    check_choice(key, name, tuple(_ACTIVATIONS))
    return _ACTIVATIONS[name]()


LAYER_NORM_EPS = 1.0e-12  # ESPnet's LayerNorm epsilon (torch's default is 1e-5)


def layer_norm(size: int) -> nn.LayerNorm:
    """``nn.LayerNorm(size)`` with ESPnet's epsilon, so ESPnet2 weights give ESPnet2's outputs."""
    return nn.LayerNorm(size, eps=LAYER_NORM_EPS)


class PositionwiseFeedForward(nn.Module):
    """``w_2(dropout(activation(w_1(x))))`` (ESPnet parameter names ``w_1`` / ``w_2``)."""

    def __init__(
        self, idim: int, hidden_units: int, dropout_rate: float, activation: Activation = "relu"
    ) -> None:
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden_units)
        self.w_2 = nn.Linear(hidden_units, idim)
        self.dropout = Dropout(dropout_rate)
        self.activation = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(self.activation(self.w_1(x))))
