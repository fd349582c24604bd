"""Recurrent language model (ESPnet2 ``lm: seq_rnn``, ``SequentialRNNLM``).

Embedding (``encoder``, ``padding_idx=ignore_id``), dropout, a multi-layer LSTM / GRU /
Elman RNN (``rnn``, batch-first), dropout, output projection (``decoder``, optionally
tied to the embedding). Names are ESPnet2's, so ``lm.*`` weights of an ESPnet2
checkpoint load with ``strict=True``. The scoring state is the RNN's hidden state,
``(h, c)`` for an LSTM, each ``(nlayers, n, nhid)``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from espnet_model._checks import check_choice
from espnet_model.dropout import Dropout
from espnet_model.lm.base import BaseLM, LMState

RNNType = Literal["lstm", "gru", "rnn_tanh", "rnn_relu"]
_NONLINEARITY = {"rnn_tanh": "tanh", "rnn_relu": "relu"}


class SequentialRNNLM(BaseLM):
    """ESPnet2's ``SequentialRNNLM`` (``lm_conf`` names and defaults).

    Args:
        vocab_size: number of tokens (derived from the token list).
        unit: embedding size (and hidden size unless ``nhid`` is given).
        nhid: hidden size of the RNN (default ``unit``).
        nlayers: number of RNN layers.
        dropout_rate: dropout on the embedding, between RNN layers and on the output.
        tie_weights: share the embedding matrix with the output projection
            (needs ``nhid == unit``).
        rnn_type: ``lstm``, ``gru``, ``rnn_tanh`` or ``rnn_relu`` (any case, as in ESPnet2).
        ignore_id: the embedding's ``padding_idx`` (its row gets no gradient).
    """

    def __init__(
        self,
        vocab_size: int,
        unit: int = 650,
        nhid: int | None = None,
        nlayers: int = 2,
        dropout_rate: float = 0.0,
        tie_weights: bool = False,
        rnn_type: RNNType = "lstm",
        ignore_id: int = 0,
    ) -> None:
        super().__init__()
        kind = rnn_type.lower()
        check_choice("lm_conf.rnn_type", kind, ("lstm", "gru", "rnn_tanh", "rnn_relu"))
        nhid = unit if nhid is None else nhid
        if tie_weights and nhid != unit:
            raise ValueError(
                f"lm_conf.tie_weights=true needs nhid == unit, got nhid={nhid}, unit={unit}; "
                "drop nhid or set tie_weights: false"
            )
        self.vocab_size = vocab_size
        self.drop = Dropout(dropout_rate)
        self.encoder = nn.Embedding(vocab_size, unit, padding_idx=ignore_id)
        self.rnn: nn.RNNBase
        if kind == "lstm":
            self.rnn = nn.LSTM(unit, nhid, nlayers, dropout=dropout_rate, batch_first=True)
        elif kind == "gru":
            self.rnn = nn.GRU(unit, nhid, nlayers, dropout=dropout_rate, batch_first=True)
        else:
            self.rnn = nn.RNN(
                unit,
                nhid,
                nlayers,
                nonlinearity=_NONLINEARITY[kind],
                dropout=dropout_rate,
                batch_first=True,
            )
        self.decoder = nn.Linear(nhid, vocab_size)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.rnn_type = kind
        self.nhid = nhid
        self.nlayers = nlayers

    def _run(
        self, tokens: torch.Tensor, hidden: torch.Tensor | tuple[torch.Tensor, ...] | None
    ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, ...]]:
        output, hidden = self.rnn(self.drop(self.encoder(tokens)), hidden)
        return self.decoder(self.drop(output)), hidden

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, L, V)``; position ``i`` sees the tokens ``<= i``."""
        return self._run(tokens, None)[0]

    def _extend(self, ys: torch.Tensor, state: LMState | None) -> tuple[torch.Tensor, LMState]:
        """The state tensors are ``(h, c)`` (LSTM) or ``(h,)``, each ``(nlayers, n, nhid)``."""
        start = 0 if state is None else state.length
        hidden: torch.Tensor | tuple[torch.Tensor, ...] | None = None
        if state is not None:
            tensors = state.gathered()
            hidden = tensors if self.rnn_type == "lstm" else tensors[0]
        logits, hidden = self._run(ys[:, start:], hidden)
        tensors = tuple(hidden) if isinstance(hidden, tuple) else (hidden,)
        return logits[:, -1], LMState(tensors, batch_dim=1, length=ys.size(1))
