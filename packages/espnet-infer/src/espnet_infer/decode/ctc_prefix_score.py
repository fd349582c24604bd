"""Batched CTC prefix scoring in log space (after ESPnet's ``CTCPrefixScoreTH``).

A hypothesis ``g`` carries, for every frame ``t``, the log-probability that the CTC
paths emitting exactly ``g`` in frames ``0..t`` end in a non-blank (``r[t, 0]``) or a
blank (``r[t, 1]``) frame. Extending ``g`` by a token ``c`` gives the *prefix* score

    psi(g + c) = log sum_t  phi_{t-1}(g, c) * p_t(c),
    phi_t(g, c) = r_t^b(g)              if c == last(g)
                  r_t^n(g) + r_t^b(g)   otherwise,

which depends only on ``r(g)``, so :meth:`CTCPrefixScorer.score` evaluates any number
of candidate tokens for all hypotheses at once, with no loop over time. Only the
hypotheses that survive the beam are advanced by :meth:`CTCPrefixScorer.extend`, the
one place with a recursion over frames, solved in closed form with cumulative sums
(no Python loop over frames, see :func:`_forward_recursion`). End of sentence
scores the whole-sequence probability ``r_{T_u - 1}^n(g) + r_{T_u - 1}^b(g)`` at the
utterance's own last frame ``T_u``.

Frames past an utterance's length are padded so that they emit blank with
probability one, which keeps padded frames from contributing to any prefix score.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["LOGZERO", "CTCPrefixScorer", "CTCPrefixState"]

LOGZERO = -1.0e10
"""Finite stand-in for log(0): keeps differences of impossible scores free of NaN."""


@dataclass(frozen=True)
class CTCPrefixState:
    """CTC forward variables of ``N`` hypotheses that all hold ``num_tokens`` tokens.

    Attributes:
        r: ``(T, 2, N)`` log-probabilities of the prefix ending at frame ``t`` in a
            non-blank (``[:, 0]``) or blank (``[:, 1]``) frame.
        log_psi: ``(N,)`` prefix log-probability of each hypothesis (0 when empty).
        last: ``(N,)`` last token of each hypothesis, ``-1`` when empty.
        utt: ``(N,)`` index of each hypothesis's utterance in the scorer's batch.
        num_tokens: number of tokens in every hypothesis (the search is synchronous).
    """

    r: torch.Tensor
    log_psi: torch.Tensor
    last: torch.Tensor
    utt: torch.Tensor
    num_tokens: int

    @property
    def num_hyps(self) -> int:
        return int(self.log_psi.shape[0])

    def index_select(self, rows: torch.Tensor) -> CTCPrefixState:
        """Keep (and reorder) the hypotheses ``rows``; used to drop finished utterances."""
        return CTCPrefixState(
            r=self.r.index_select(2, rows),
            log_psi=self.log_psi.index_select(0, rows),
            last=self.last.index_select(0, rows),
            utt=self.utt.index_select(0, rows),
            num_tokens=self.num_tokens,
        )


class CTCPrefixScorer:
    """Prefix scores of CTC posteriors for many hypotheses of many utterances.

    Args:
        log_probs: ``(B, T, V)`` CTC log-posteriors of a padded batch.
        lengths: ``(B,)`` valid frames per utterance, each in ``[1, T]``.
        blank_id: CTC blank index; extending by blank scores :data:`LOGZERO`.
        eos_id: end-of-sentence index; extending by it scores the whole sequence.
        max_chunk_elements: cap on ``T * hyps * candidates`` in one tensor; larger
            requests (e.g. full-vocabulary scoring) are split over hypotheses.
    """

    def __init__(
        self,
        log_probs: torch.Tensor,
        lengths: torch.Tensor,
        *,
        blank_id: int,
        eos_id: int,
        max_chunk_elements: int = 1 << 24,
    ) -> None:
        if log_probs.dim() != 3:
            raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
        batch, frames, vocab = log_probs.shape
        if lengths.shape != (batch,):
            raise ValueError(
                f"lengths must have shape ({batch},) to match log_probs, got {tuple(lengths.shape)}"
            )
        for name, value in (("blank_id", blank_id), ("eos_id", eos_id)):
            if not 0 <= value < vocab:
                raise ValueError(f"{name}={value} is outside the vocabulary [0, {vocab})")
        lengths = lengths.to(device=log_probs.device, dtype=torch.long)
        if batch and (int(lengths.min()) < 1 or int(lengths.max()) > frames):
            raise ValueError(
                f"every length must be in [1, T={frames}], got {lengths.tolist()}; "
                "drop empty utterances before decoding"
            )
        self.blank_id = blank_id
        self.eos_id = eos_id
        self.vocab_size = vocab
        self.num_frames = frames
        self.lengths = lengths
        self.max_chunk_elements = max_chunk_elements

        # Time-major copy, padded so that frames past the end emit blank with prob. 1.
        x = log_probs.detach().float().transpose(0, 1)
        x = x.clone(memory_format=torch.contiguous_format)  # (T, B, V)
        pad = torch.arange(frames, device=x.device)[:, None] >= lengths[None, :]  # (T, B)
        x.masked_fill_(pad[:, :, None], LOGZERO)
        x[:, :, blank_id].masked_fill_(pad, 0.0)
        self._x = x
        self._x_flat = x.view(frames, batch * vocab)  # column utt * V + token
        # Every utterance fills the batch (batch 1, or equal lengths): no per-row ends.
        self._full_length = batch > 0 and int(lengths.min()) == frames

    def _emissions(self, utt: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``(T, *tokens.shape)`` log-probabilities of ``tokens`` (rows of ``utt``)."""
        flat = utt.view(-1, *([1] * (tokens.dim() - 1))) * self.vocab_size + tokens
        columns = self._x_flat.index_select(1, flat.reshape(-1))
        return columns.view(self.num_frames, *tokens.shape)

    def init_state(self, utt: torch.Tensor) -> CTCPrefixState:
        """Empty prefixes, one per entry of ``utt`` (utterance indices, repeats allowed)."""
        utt = utt.to(device=self._x.device, dtype=torch.long)
        blank = self._x[:, utt, self.blank_id]  # (T, N)
        r = torch.full((self.num_frames, 2, utt.shape[0]), LOGZERO, device=self._x.device)
        r[:, 1] = torch.cumsum(blank, dim=0)
        return CTCPrefixState(
            r=r,
            log_psi=torch.zeros(utt.shape[0], device=self._x.device),
            last=torch.full_like(utt, -1),
            utt=utt,
            num_tokens=0,
        )

    def final_scores(self, state: CTCPrefixState) -> torch.Tensor:
        """``(N,)`` log-probability that each hypothesis is the whole transcript."""
        if self._full_length:
            return torch.logaddexp(state.r[-1, 0], state.r[-1, 1])
        last_frame = self.lengths.index_select(0, state.utt) - 1
        rows = torch.arange(state.num_hyps, device=last_frame.device)
        return torch.logaddexp(state.r[last_frame, 0, rows], state.r[last_frame, 1, rows])

    def score(self, state: CTCPrefixState, candidates: torch.Tensor | None = None) -> torch.Tensor:
        """Prefix log-probabilities ``psi(g + c)`` of candidate extensions.

        Args:
            state: the ``N`` current hypotheses ``g``.
            candidates: ``(N, K)`` token ids to score per hypothesis (partial scoring,
                e.g. the attention decoder's pre-beam), or ``None`` for all ``V`` tokens.

        Returns:
            ``(N, K)`` (or ``(N, V)``) absolute prefix log-probabilities; subtract
            ``state.log_psi[:, None]`` for the score increment. ``eos`` gets the
            whole-sequence probability of ``g``; blank gets :data:`LOGZERO`.
        """
        num_hyps = state.num_hyps
        if candidates is not None and (candidates.dim() != 2 or candidates.shape[0] != num_hyps):
            raise ValueError(
                f"candidates must be (N={num_hyps}, K), got shape {tuple(candidates.shape)}"
            )
        width = self.vocab_size if candidates is None else int(candidates.shape[1])
        out = torch.empty((num_hyps, width), device=self._x.device)
        if num_hyps == 0 or width == 0:
            return out
        rows_per_chunk = max(1, self.max_chunk_elements // max(1, self.num_frames * width))
        final = self.final_scores(state)
        if rows_per_chunk >= num_hyps:  # one chunk: no copy into ``out``
            cand = None if candidates is None else candidates.to(self._x.device)
            return self._score_rows(state, slice(0, num_hyps), cand, final)
        for begin in range(0, num_hyps, rows_per_chunk):
            rows = slice(begin, min(num_hyps, begin + rows_per_chunk))
            cand = None if candidates is None else candidates[rows].to(self._x.device)
            out[rows] = self._score_rows(state, rows, cand, final[rows])
        return out

    def _score_rows(
        self,
        state: CTCPrefixState,
        rows: slice,
        cand: torch.Tensor | None,
        final: torch.Tensor,
    ) -> torch.Tensor:
        utt = state.utt[rows]
        if cand is None:
            xc = self._x[:, utt]  # (T, n, V)
            tokens = torch.arange(self.vocab_size, device=xc.device)[None, :]
        else:
            xc = self._emissions(utt, cand)  # (T, n, K)
            tokens = cand
        num_tokens = state.num_tokens
        start = max(num_tokens, 1)
        # phi of frames start-1 .. T-2, the only ones a new token's frame t >= start uses,
        # with frames last so that the sum over them runs along contiguous memory.
        r = state.r[start - 1 : self.num_frames - 1, :, rows]
        r_sum = torch.logaddexp(r[:, 0], r[:, 1]).t()  # (n, F)
        same = tokens == state.last[rows][:, None]  # (n, K)
        terms = torch.where(same[:, :, None], r[:, 1].t()[:, None], r_sum[:, None])  # (n, K, F)
        terms += xc[start:].permute(1, 2, 0)
        if num_tokens == 0:
            terms = torch.cat([xc[0][:, :, None], terms], dim=2)
        if terms.shape[2] == 0:
            psi = torch.full(tokens.shape, LOGZERO, device=xc.device).expand_as(same).clone()
        else:
            psi = torch.logsumexp(terms, dim=2).clamp_min_(LOGZERO)
        psi = torch.where(tokens == self.eos_id, final[:, None], psi)
        return psi.masked_fill(tokens == self.blank_id, LOGZERO)

    def extend(
        self,
        state: CTCPrefixState,
        *,
        rows: torch.Tensor,
        tokens: torch.Tensor,
        log_psi: torch.Tensor,
    ) -> CTCPrefixState:
        """Advance hypotheses ``rows`` of ``state`` by ``tokens`` (neither blank nor eos).

        Args:
            state: the current hypotheses.
            rows: ``(M,)`` parent row of each new hypothesis.
            tokens: ``(M,)`` token appended to each parent.
            log_psi: ``(M,)`` prefix scores of the new hypotheses, as returned by
                :meth:`score` (passed back to avoid recomputing them).
        """
        token_ids = tokens.tolist()
        if self.eos_id in token_ids or self.blank_id in token_ids:
            raise ValueError(
                f"cannot extend by blank ({self.blank_id}) or eos ({self.eos_id}); "
                f"got tokens {token_ids}. Finish eos hypotheses instead of extending them"
            )
        device = self._x.device
        rows = rows.to(device)
        tokens = tokens.to(device)
        utt = state.utt.index_select(0, rows)
        num_new = len(token_ids)
        # Token and blank log-probabilities of the new hypotheses, (T, 2, M).
        emit = self._emissions(
            utt, torch.stack([tokens, torch.full_like(tokens, self.blank_id)], dim=1)
        ).transpose(1, 2)
        r = torch.full((self.num_frames, 2, num_new), LOGZERO, device=device)
        num_tokens = state.num_tokens
        if num_tokens == 0:
            r[0, 0] = emit[0, 0]
        if not num_new:
            end = 0
        elif self._full_length:
            end = self.num_frames
        else:
            end = int(self.lengths.index_select(0, utt).max())
        start = max(num_tokens, 1)
        if end > start:
            r_prev = state.r[start - 1 : end - 1].index_select(2, rows)  # (F, 2, M)
            last = state.last.index_select(0, rows)
            phi = torch.where(
                tokens == last, r_prev[:, 1], torch.logaddexp(r_prev[:, 0], r_prev[:, 1])
            )  # (F, M)
            r[start - 1 : end] = _forward_recursion(r[start - 1], phi, emit[start - 1 : end])
        r.clamp_(min=LOGZERO)
        return CTCPrefixState(
            r=r,
            log_psi=log_psi.to(device),
            last=tokens,
            utt=utt,
            num_tokens=num_tokens + 1,
        )


def _forward_recursion(
    first: torch.Tensor, phi: torch.Tensor, emit: torch.Tensor
) -> torch.Tensor:
    """Solve the CTC forward recursion over frames without a loop.

    For local frames ``j = 1..n`` (``j = 0`` holds ``first``, ``(2, M)``)::

        r_n[j] = logaddexp(r_n[j-1], phi[j-1]) + emit[j, 0]
        r_b[j] = logaddexp(r_n[j-1], r_b[j-1]) + emit[j, 1]

    Both are first-order linear recurrences in probability space, so with
    ``C[j] = sum_{i=1..j} emit[i, 0]`` the first unrolls to
    ``r_n[j] = C[j] + logcumsumexp(U)[j]``, ``U[0] = r_n[0]``,
    ``U[i] = phi[i-1] - C[i-1]``; ``r_b`` follows the same way from ``r_n``. The sums
    run in float64: ``C`` grows with the utterance length, and the difference of two
    such sums must keep float32 accuracy.

    Args:
        first: ``(2, M)`` the values at the frame before the first new one.
        phi: ``(n, M)`` the ``phi`` term of frames ``0..n-1`` (local indices).
        emit: ``(n + 1, 2, M)`` token and blank log-probabilities (local frame 0 unused).

    Returns:
        ``(n + 1, 2, M)``: ``first`` followed by the ``n`` new frames.
    """
    emit = emit.double().clamp_min_(LOGZERO)
    emit[0] = 0.0
    cum = torch.cumsum(emit, dim=0)  # C[j] in [:, 0], D[j] in [:, 1]
    r = torch.empty_like(cum)
    u = torch.empty_like(cum[:, 0])
    u[0] = first[0]
    torch.sub(phi, cum[:-1, 0], out=u[1:])
    torch.add(cum[:, 0], torch.logcumsumexp(u, dim=0), out=r[:, 0])  # r_n
    u[0] = first[1]
    torch.sub(r[:-1, 0], cum[:-1, 1], out=u[1:])
    torch.add(cum[:, 1], torch.logcumsumexp(u, dim=0), out=r[:, 1])  # r_b
    return r.to(first.dtype)
