"""What every language model network provides: teacher-forced logits and cached scoring.

A network (:class:`TransformerLM`, :class:`SequentialRNNLM`) maps token ids to
next-token logits. :meth:`BaseLM.batch_score` scores the token after each of ``n``
prefixes at once (utterances x beams in a beam search) and returns an :class:`LMState`
that lets the next call feed only the new token::

    state = None
    ys = torch.full((n, 1), sos)
    for _ in range(steps):
        logp, state = lm.batch_score(ys, state)       # (n, V)
        parent, token = prune(logp)                   # the search keeps some rows
        ys = torch.cat([ys[parent], token[:, None]], dim=1)
        state = state.select(parent)

ESPnet2's ``BatchScorerInterface.batch_score(ys, states, xs)`` passes a list of
per-hypothesis states; here the state of all rows is one object of stacked tensors, and
reordering after pruning only records the rows: the network gathers them in its next
call, where it copies its cache anyway (a transformer LM's cache grows by one position
per call), so a step copies the cache once.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, replace

import torch
from torch import nn

PADDING_ID = 0  # ESPnet2's LM text padding id (a transformer LM masks keys holding it)


@dataclass(frozen=True)
class LMState:
    """The cache of ``n`` prefixes of ``length`` tokens, stacked along ``batch_dim``.

    ``tensors`` are the network's (a transformer's keys and values, an LSTM's ``(h, c)``)
    and ``rows`` says which of their rows, in which order, are this state's prefixes
    (None: all of them, in order); :meth:`gathered` applies it. Callers only
    :meth:`select` rows. States are never written in place, so one state may be scored
    twice (two calls give two independent new states).
    """

    tensors: tuple[torch.Tensor, ...]
    batch_dim: int
    length: int
    rows: torch.Tensor | None = None

    def __len__(self) -> int:
        if self.rows is not None:
            return self.rows.numel()
        return self.tensors[0].size(self.batch_dim)

    def select(self, indices: torch.Tensor) -> LMState:
        """The states of rows ``indices`` (``(m,)`` long, repeats allowed), in that order.

        After beam pruning pass each kept hypothesis's parent row; to start ``beam``
        hypotheses per utterance from one row each, pass ``arange(B).repeat_interleave(beam)``.
        Nothing is copied: the new state records its rows of the same ``tensors``.
        """
        index = indices.to(self.tensors[0].device)
        rows = index if self.rows is None else self.rows.index_select(0, index)
        return replace(self, rows=rows)

    def gathered(self) -> tuple[torch.Tensor, ...]:
        """``tensors`` with only this state's rows, in its order (``index_select`` copies)."""
        if self.rows is None:
            return self.tensors
        return tuple(t.index_select(self.batch_dim, self.rows) for t in self.tensors)


class BaseLM(nn.Module):
    """A causal network over token ids; subclasses fill :meth:`forward` and :meth:`_extend`.

    Attributes: ``vocab_size``.
    """

    vocab_size: int

    @abstractmethod
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(B, L, V)`` of the token after each position of ``tokens``.

        ``tokens`` ``(B, L)``; padding after a sequence's end is id 0 (ESPnet2's).
        """

    @abstractmethod
    def _extend(self, ys: torch.Tensor, state: LMState | None) -> tuple[torch.Tensor, LMState]:
        """Feed ``ys[:, state.length:]`` (all of ``ys`` when ``state`` is None).

        Returns the logits ``(n, V)`` after the last token of ``ys`` and the state of
        the whole of ``ys``.
        """

    def batch_score(
        self, ys: torch.Tensor, state: LMState | None = None
    ) -> tuple[torch.Tensor, LMState]:
        """Log-probabilities ``(n, V)`` of the token after each prefix, and the new state.

        Args:
            ys: ``(n, L)`` prefixes, ``<sos>`` first (all rows have the same length).
            state: what the previous call returned for ``ys[:, :-1]`` (rows reordered with
                :meth:`LMState.select`), or None to feed the whole of ``ys``.

        Equals ``log_softmax(forward(ys)[:, -1])``; with a state only the last token is
        computed. Call ``eval()`` first (dropout otherwise applies).
        """
        if ys.dim() != 2 or ys.size(1) == 0:
            raise ValueError(
                f"ys must be (n, L) token ids with L >= 1, got shape {tuple(ys.shape)}"
            )
        if state is not None:
            if len(state) != ys.size(0):
                raise ValueError(
                    f"state has {len(state)} rows but ys has {ys.size(0)}; select the rows "
                    "of the kept hypotheses with state.select(indices)"
                )
            if state.length != ys.size(1) - 1:
                raise ValueError(
                    f"state holds prefixes of {state.length} tokens but ys has {ys.size(1)}; "
                    "pass the state returned for ys[:, :-1] (or None to feed all of ys)"
                )
        logits, new_state = self._extend(ys, state)
        return torch.log_softmax(logits, dim=-1), new_state
