"""Position-wise feed-forward block and the activations encoders may choose from."""

from __future__ import annotations

from typing import Literal

from torch import nn

from espnet_model._checks import check_choice

Activation = Literal["swish", "relu", "gelu"]
_ACTIVATIONS: dict[str, type[nn.Module]] = {"swish": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}


def make_activation(name: Activation, key: str = "activation_type") -> nn.Module:
    """Instantiate the activation called ``name`` (``swish`` | ``relu`` | ``gelu``)."""
    check_choice(key, name, tuple(_ACTIVATIONS))
    return _ACTIVATIONS[name]()


class PositionwiseFeedForward(nn.Sequential):
    """``Linear(d, units) -> activation -> dropout -> Linear(units, d)``."""

    def __init__(
        self, idim: int, hidden_units: int, dropout_rate: float, activation: Activation = "relu"
    ) -> None:
        super().__init__(
            nn.Linear(idim, hidden_units),
            make_activation(activation),
            nn.Dropout(dropout_rate),
            nn.Linear(hidden_units, idim),
        )
