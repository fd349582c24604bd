"""Transformer language model (ESPnet2 ``lm: transformer``).

ESPnet2's ``TransformerLM``: a token embedding (``embed_unit``), then ESPnet's transformer
encoder with ``input_layer="linear"`` (``Linear(embed_unit, att_unit)``, torch's
``LayerNorm`` with eps 1e-5, dropout, ReLU, optional sinusoidal positions), ``layer``
pre-LN self-attention blocks under a causal mask, a final LayerNorm and an output
projection. Module and parameter names are ESPnet2's (``embed``, ``encoder.embed.0``,
``encoder.encoders.N.self_attn.linear_q``, ``encoder.after_norm``, ``decoder``), so an
ESPnet2 checkpoint's ``lm.*`` weights load with ``strict=True``. The blocks are this
project's :class:`~espnet_model.encoders.transformer.TransformerEncoderLayer`.

Keys whose token is 0 (ESPnet2's padding id, ``<blank>``) are masked, as in ESPnet2.

Scoring caches each layer's self-attention keys and values (ESPnet2 caches each
layer's output and projects the whole prefix again at every step); a step computes
only the new token, and the result equals the full forward's.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from espnet_model._checks import check_choice, check_divisible
from espnet_model.attention import PositionalEncoding
from espnet_model.dropout import Dropout
from espnet_model.encoders.transformer import TransformerEncoderLayer
from espnet_model.feedforward import layer_norm
from espnet_model.lm.base import PADDING_ID, BaseLM, LMState
from espnet_model.mask import subsequent_mask

PosEnc = Literal["sinusoidal"] | None


class _InputLayer(nn.Sequential):
    """ESPnet's ``input_layer="linear"``: Linear, LayerNorm, Dropout, ReLU, positions.

    Index ``4`` is :class:`PositionalEncoding` or an empty ``nn.Sequential`` (ESPnet2's
    ``pos_enc: null``); ``offset`` is the position of the first frame.
    """

    def __init__(self, idim: int, odim: int, dropout_rate: float, positions: nn.Module) -> None:
        super().__init__(
            nn.Linear(idim, odim), nn.LayerNorm(odim), Dropout(dropout_rate), nn.ReLU(), positions
        )

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:  # type: ignore[override]
        linear, norm, dropout, relu, positions = self
        x = relu(dropout(norm(linear(x))))
        if isinstance(positions, PositionalEncoding):
            x = positions(x, offset)
        return x


class _CausalEncoder(nn.Module):
    """ESPnet's ``Encoder`` as ESPnet2's TransformerLM configures it (names ``embed``,
    ``encoders``, ``after_norm``)."""

    def __init__(
        self,
        idim: int,
        size: int,
        heads: int,
        units: int,
        layers: int,
        dropout_rate: float,
        positional_dropout_rate: float,
        attention_dropout_rate: float,
        pos_enc: PosEnc,
    ) -> None:
        super().__init__()
        positions: nn.Module = (
            PositionalEncoding(size, positional_dropout_rate)
            if pos_enc == "sinusoidal"
            else nn.Sequential()
        )
        self.embed = _InputLayer(idim, size, dropout_rate, positions)
        self.encoders = nn.ModuleList(
            TransformerEncoderLayer(size, heads, units, dropout_rate, attention_dropout_rate, True)
            for _ in range(layers)
        )
        self.after_norm = layer_norm(size)


class TransformerLM(BaseLM):
    """ESPnet2's ``TransformerLM`` (``lm_conf`` names and defaults).

    Args:
        vocab_size: number of tokens (derived from the token list).
        pos_enc: ``"sinusoidal"`` or None (no positional encoding, ESPnet2's default).
        embed_unit: token embedding size.
        att_unit: model dimension.
        head: attention heads (must divide ``att_unit``).
        unit: feed-forward hidden size.
        layer: number of blocks.
        dropout_rate: dropout in the input layer and after attention / feed-forward.
        positional_dropout_rate: dropout after the sinusoidal positions.
        attention_dropout_rate: dropout on attention weights.
    """

    def __init__(
        self,
        vocab_size: int,
        pos_enc: PosEnc = None,
        embed_unit: int = 128,
        att_unit: int = 256,
        head: int = 2,
        unit: int = 1024,
        layer: int = 4,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.1,
    ) -> None:
        super().__init__()
        check_choice("lm_conf.pos_enc", pos_enc, ("sinusoidal", None))
        check_divisible("lm_conf.att_unit", att_unit, "lm_conf.head", head)
        self.vocab_size = vocab_size
        self._heads, self._d_k = head, att_unit // head
        self.embed = nn.Embedding(vocab_size, embed_unit)
        self.encoder = _CausalEncoder(
            embed_unit,
            att_unit,
            head,
            unit,
            layer,
            dropout_rate,
            positional_dropout_rate,
            attention_dropout_rate,
            pos_enc,
        )
        self.decoder = nn.Linear(att_unit, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, L, V)``; position ``i`` sees the non-zero tokens ``<= i``."""
        length = tokens.size(1)
        keep = (tokens != PADDING_ID).unsqueeze(1) & subsequent_mask(length, tokens.device)
        x = self.encoder.embed(self.embed(tokens))
        for layer in self.encoder.encoders:
            x = layer(x, keep)
        return self.decoder(self.encoder.after_norm(x))

    def _extend(self, ys: torch.Tensor, state: LMState | None) -> tuple[torch.Tensor, LMState]:
        """The state tensor is ``(n, layers, 2, heads, L, d_k)``: keys and values per layer."""
        start = 0 if state is None else state.length
        rows, length = ys.shape
        new = length - start
        x = self.encoder.embed(self.embed(ys[:, start:]), offset=start)  # (n, new, D)
        # Query i (position start + i) sees the non-padding keys at positions <= start + i.
        positions = torch.arange(length, device=ys.device)
        causal = positions <= positions[start:].unsqueeze(1)  # (new, L)
        keep = (ys != PADDING_ID).unsqueeze(1) & causal  # (n, new, L)
        cache = x.new_empty(rows, len(self.encoder.encoders), 2, self._heads, length, self._d_k)
        if state is not None:
            cache[..., :start, :] = state.tensors[0]
        for i, layer in enumerate(self.encoder.encoders):
            h = layer.norm1(x)
            k, v = layer.self_attn.project_kv(h, h)  # (n, H, new, d_k)
            cache[:, i, 0, :, start:] = k
            cache[:, i, 1, :, start:] = v
            attended = layer.self_attn.attend(h, cache[:, i, 0], cache[:, i, 1], keep)
            x = x + layer.dropout(attended)
            x = x + layer.dropout(layer.feed_forward(layer.norm2(x)))
        last = self.encoder.after_norm(x[:, new - 1])
        return self.decoder(last), LMState((cache,), batch_dim=0, length=length)
