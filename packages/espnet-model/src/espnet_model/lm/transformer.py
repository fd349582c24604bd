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
only the new token, and the result equals the full forward's (to float rounding).

The cache is a prefix tree, not one copy per row: every token fed is a node whose keys
and values are appended to a store shared by the states of one search
(:class:`NodeStore`), and a state holds, per row, which nodes are on its prefix
(``paths``, ``(n, nodes)`` bool). Reordering rows after beam pruning reorders only
``paths``; the hypotheses of a beam share most of their prefix, so a step attends over
roughly one node per position (plus the recent branches) with the other rows' nodes
masked, instead of copying ``n`` caches of the whole prefix. Nodes no row descends from
are dropped when the store fills up. A one-token step in eval mode runs on weights laid
out once per search (:class:`_StepWeights`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from espnet_model._checks import check_choice, check_divisible
from espnet_model._step import (
    NodeStore,
    affine,
    affine_params,
    norm_params,
    spare_nodes,
    stacked_affine_params,
)
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
        """One new token in eval mode: :meth:`_StepWeights.step`; else the whole of ``ys``
        again (training mode, or several new tokens: not a search's path)."""
        start = 0 if state is None else state.length
        weights = state.weights if isinstance(state, TransformerLMState) else None
        if ys.size(1) - start == 1 and not self.training:
            if weights is None:
                weights = _StepWeights(self)
            return weights.step(ys, state if isinstance(state, TransformerLMState) else None)
        return self._prefix(ys, weights)

    def _prefix(
        self, ys: torch.Tensor, weights: _StepWeights | None
    ) -> tuple[torch.Tensor, TransformerLMState]:
        """Logits after all of ``ys`` ``(n, L)`` and a state of ``n * L`` nodes (no sharing)."""
        rows, length = ys.shape
        keep = ys != PADDING_ID
        x = self.encoder.embed(self.embed(ys))  # (n, L, D)
        mask = keep.unsqueeze(1) & subsequent_mask(length, ys.device)  # (n, L, L)
        nodes = rows * length
        store = NodeStore.empty(
            len(self.encoder.encoders), self._heads, self._d_k, nodes + spare_nodes(rows), x
        )
        for i, layer in enumerate(self.encoder.encoders):
            h = layer.norm1(x)
            k, v = layer.self_attn.project_kv(h, h)  # (n, H, L, d_k)
            # Node j * n + r is position j of row r.
            store.kv[i, 0, :, :nodes] = k.permute(1, 2, 0, 3).reshape(self._heads, nodes, self._d_k)
            store.kv[i, 1, :, :nodes] = v.permute(1, 2, 0, 3).reshape(self._heads, nodes, self._d_k)
            x = x + layer.dropout(layer.self_attn.attend(h, k, v, mask))
            x = x + layer.dropout(layer.feed_forward(layer.norm2(x)))
        store.keep[:nodes] = keep.t().reshape(-1)
        store.size = nodes
        paths = torch.eye(rows, dtype=torch.bool, device=ys.device).repeat(1, length)
        logits = self.decoder(self.encoder.after_norm(x[:, -1]))
        return logits, TransformerLMState(
            (paths,), batch_dim=0, length=length, store=store, weights=weights
        )


@dataclass(frozen=True)
class TransformerLMState(LMState):
    """:class:`LMState` of a :class:`TransformerLM`: ``tensors`` is ``(paths,)``, bool
    ``(n, nodes)`` (``batch_dim`` 0): which nodes of ``store`` are on each row's prefix
    (one per position). ``weights`` are the step weights, laid out at the first one-token
    step of a search and passed from state to state.
    """

    store: NodeStore | None = None
    weights: _StepWeights | None = None


class _StepWeights:
    """A :class:`TransformerLM`'s weights laid out for one-token steps (eval mode).

    As :class:`~espnet_model.IncrementalDecoder`: query/key/value projections stacked,
    every matrix transposed for ``addmm``, torch's functions called directly. Built from
    the weights at the first step of a search; the states of that search carry it.
    """

    def __init__(self, lm: TransformerLM) -> None:
        linear, norm, _, _, positions = lm.encoder.embed
        with torch.no_grad():
            self.embedding = lm.embed.weight
            self.input, self.input_norm = affine_params(linear), norm_params(norm)
            self.layers = [
                (
                    norm_params(layer.norm1),
                    stacked_affine_params(
                        layer.self_attn.linear_q, layer.self_attn.linear_k, layer.self_attn.linear_v
                    ),
                    affine_params(layer.self_attn.linear_out),
                    norm_params(layer.norm2),
                    affine_params(layer.feed_forward.w_1),
                    affine_params(layer.feed_forward.w_2),
                )
                for layer in lm.encoder.encoders
            ]
            self.after_norm = norm_params(lm.encoder.after_norm)
            self.output = affine_params(lm.decoder)
        self.activations = [
            torch.relu_ if isinstance(activation, nn.ReLU) else activation
            for activation in (layer.feed_forward.activation for layer in lm.encoder.encoders)
        ]
        self.positions = positions if isinstance(positions, PositionalEncoding) else None
        self.heads, self.d_k = lm._heads, lm._d_k
        self.scale = self.d_k**-0.5

    def step(
        self, ys: torch.Tensor, state: TransformerLMState | None
    ) -> tuple[torch.Tensor, TransformerLMState]:
        """Logits after the last token of ``ys`` ``(n, L + 1)``; ``state`` holds ``L`` tokens."""
        rows, length = ys.shape
        heads, d_k = self.heads, self.d_k
        token = ys[:, -1]
        if state is None or state.store is None:
            store = NodeStore.empty(len(self.layers), heads, d_k, spare_nodes(rows), self.embedding)
            old = ys.new_empty((rows, 0), dtype=torch.bool)
        else:
            store, old = state.store.for_step(state.gathered()[0])
        size = store.size
        end = size + rows
        store.size = end  # this step's nodes: [size, end), one per row
        store.keep[size:end] = token != PADDING_ID
        paths = torch.cat([old, torch.eye(rows, dtype=torch.bool, device=ys.device)], dim=1)
        # Scores of the nodes off a row's prefix (and of padding tokens) get -inf.
        bias = torch.zeros(paths.shape, dtype=self.embedding.dtype, device=ys.device)
        bias.masked_fill_(~(paths & store.keep[:end]), float("-inf"))
        x = torch.embedding(self.embedding, token)
        x = torch.relu_(torch.layer_norm(affine(self.input, x), *self.input_norm))
        if self.positions is not None:
            x = x * self.positions.xscale + self.positions.encoding(length - 1, x)
        for i, (norm1, qkv_params, out, norm2, w_1, w_2) in enumerate(self.layers):
            qkv = affine(qkv_params, torch.layer_norm(x, *norm1)).view(rows, 3, heads, d_k)
            store.kv[i, :, :, size:end] = qkv[:, 1:].permute(1, 2, 0, 3)
            # All rows' queries against every node, heads as the batch: (H, n, nodes).
            keys, values = store.kv[i, :, :, :end]
            scores = torch.baddbmm(
                bias, qkv[:, 0].transpose(0, 1), keys.transpose(1, 2), alpha=self.scale
            )
            attended = torch.bmm(torch.softmax(scores, dim=-1), values)  # (H, n, d_k)
            x = x + affine(out, attended.transpose(0, 1).reshape(rows, heads * d_k))
            hidden = self.activations[i](affine(w_1, torch.layer_norm(x, *norm2)))
            x = x + affine(w_2, hidden)
        logits = affine(self.output, torch.layer_norm(x, *self.after_norm))
        return logits, TransformerLMState(
            (paths,), batch_dim=0, length=length, store=store, weights=self
        )
