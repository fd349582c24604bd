"""CTC prefix scores for the blockwise search's hypotheses of many streams at once.

The blockwise search (:mod:`espnet_infer.decode.blockwise`) steps the hypotheses of
several streams together, and the streams differ in their number of frames and in the
length of their hypotheses (each stream is at its own point of its utterance). These
are the operations of :class:`~espnet_infer.decode.CTCPrefixScorer` for such rows: the
frames of every stream padded to the longest (a padded frame emits blank with
probability one, so it adds nothing to any prefix), and the number of tokens given per
row instead of once for all. Each row's results equal what the stream alone gets.

A hypothesis carries its forward variables ``r`` ``(T, 2)`` (the prefix ending in a
non-blank / blank frame at every frame) and its *frontier* ``(L + 1, 2)``: the forward
variables of each of its prefixes (empty to whole) at the stream's last frame, which is
what extending it over new frames needs (:func:`extend_frontiers`).
"""

from __future__ import annotations

import torch

from espnet_infer.decode.ctc_prefix_score import LOGZERO, _forward_recursion

__all__ = ["StreamsCTC", "extend_frontiers"]


class StreamsCTC:
    """The CTC log-probabilities of the streams searched together, padded.

    Args:
        logps: per stream, ``(T_s, V)`` log-probabilities of the frames its block
            searches (``T_s >= 1``).
        blank_id / eos_id: the blank token (scores :data:`LOGZERO`) and the end of
            sentence (scores the whole hypothesis at the stream's last frame).
    """

    def __init__(self, logps: list[torch.Tensor], *, blank_id: int, eos_id: int) -> None:
        lengths = [x.size(0) for x in logps]
        if not logps or min(lengths) < 1:
            raise ValueError(f"every stream needs at least one frame, got {lengths}")
        frames, vocab = max(lengths), logps[0].size(1)
        x = logps[0].new_full((frames, len(logps), vocab), LOGZERO)
        x[:, :, blank_id] = 0.0
        for s, logp in enumerate(logps):
            x[: logp.size(0), s] = logp.float()
        self._x = x  # (T, S, V)
        self._x_flat = x.view(frames, -1)  # column stream * V + token
        self.lengths = torch.tensor(lengths, device=x.device)
        self.num_frames = frames
        self.vocab_size = vocab
        self.blank_id = blank_id
        self.eos_id = eos_id

    def _emissions(self, utt: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``(T, N, K)`` log-probabilities of ``tokens`` ``(N, K)`` in the rows' streams."""
        flat = utt[:, None] * self.vocab_size + tokens
        return self._x_flat.index_select(1, flat.reshape(-1)).view(self.num_frames, *tokens.shape)

    def padded(self, r: torch.Tensor) -> torch.Tensor:
        """A stream's forward variables ``(T_s, 2, n)`` padded to ``(T, 2, n)`` with
        :data:`LOGZERO` (its padded frames emit nothing but blank, which no score reads)."""
        if r.size(0) == self.num_frames:
            return r
        pad = r.new_full((self.num_frames - r.size(0), *r.shape[1:]), LOGZERO)
        return torch.cat([r, pad])

    def score(
        self,
        r: torch.Tensor,
        last: torch.Tensor,
        num_tokens: torch.Tensor,
        utt: torch.Tensor,
        candidates: torch.Tensor,
    ) -> torch.Tensor:
        """Prefix log-probabilities ``(N, K)`` of each row's ``candidates`` ``(N, K)``.

        ``r`` ``(T, 2, N)`` are the rows' forward variables, ``last`` their last tokens
        (-1 when empty), ``num_tokens`` their lengths and ``utt`` their streams. ``eos``
        scores the whole hypothesis at the stream's last frame, blank :data:`LOGZERO`.
        """
        frames = self.num_frames
        xc = self._emissions(utt, candidates)  # (T, N, K)
        empty = num_tokens == 0
        start = max(int(num_tokens.min()), 1)
        # A new token's first frame t >= start: phi of frames start-1 .. T-2, frames last.
        prev = r[start - 1 : frames - 1]
        r_sum = torch.logaddexp(prev[:, 0], prev[:, 1]).t()  # (N, F)
        same = candidates == last[:, None]
        terms = torch.where(same[:, :, None], prev[:, 1].t()[:, None], r_sum[:, None])
        terms = terms + xc[start:].permute(1, 2, 0)  # (N, K, F)
        if bool(empty.any()):  # an empty prefix's first token may be emitted at frame 0
            first = torch.where(empty[:, None], xc[0], LOGZERO)
            terms = torch.cat([first[:, :, None], terms], dim=2)
        if terms.size(2):
            psi = torch.logsumexp(terms, dim=2).clamp_min_(LOGZERO)
        else:
            psi = torch.full(candidates.shape, LOGZERO, device=xc.device)
        end = self.lengths.index_select(0, utt) - 1
        rows = torch.arange(r.size(2), device=r.device)
        final = torch.logaddexp(r[end, 0, rows], r[end, 1, rows])
        psi = torch.where(candidates == self.eos_id, final[:, None], psi)
        return psi.masked_fill(candidates == self.blank_id, LOGZERO)

    def extend(
        self,
        r: torch.Tensor,
        last: torch.Tensor,
        num_tokens: torch.Tensor,
        utt: torch.Tensor,
        parent: torch.Tensor,
        tokens: torch.Tensor,
    ) -> torch.Tensor:
        """Forward variables ``(T, 2, M)`` of rows ``parent`` extended by ``tokens`` ``(M,)``
        (neither blank nor eos; the arguments as in :meth:`score`)."""
        utt = utt.index_select(0, parent)
        num_tokens = num_tokens.index_select(0, parent)
        emit = self._emissions(
            utt, torch.stack([tokens, torch.full_like(tokens, self.blank_id)], dim=1)
        ).transpose(1, 2)  # (T, 2, M)
        out = torch.full((self.num_frames, 2, parent.numel()), LOGZERO, device=r.device)
        if not parent.numel():
            return out
        empty = num_tokens == 0
        out[0, 0] = torch.where(empty, emit[0, 0], LOGZERO)
        start = max(int(num_tokens.min()), 1)
        end = int(self.lengths.index_select(0, utt).max())
        if end > start:
            prev = r[start - 1 : end - 1].index_select(2, parent)  # (F, 2, M)
            phi = torch.where(
                tokens == last.index_select(0, parent),
                prev[:, 1],
                torch.logaddexp(prev[:, 0], prev[:, 1]),
            )
            out[start - 1 : end] = _forward_recursion(out[start - 1], phi, emit[start - 1 : end])
        return out.clamp_(min=LOGZERO)


def extend_frontiers(
    frontiers: list[torch.Tensor],
    tokens: list[torch.Tensor],
    log_psi: list[torch.Tensor],
    logps: list[torch.Tensor],
    *,
    blank_id: int,
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Carry the hypotheses of several streams over their new frames, all at once.

    Per stream: ``frontiers`` ``(n, L + 1, 2)`` (each prefix's forward variables at the
    last frame so far), ``tokens`` ``(n, L)`` (the hypotheses, without ``sos``),
    ``log_psi`` ``(n,)`` (their prefix scores) and ``logps`` ``(F, V)`` (the new frames'
    log-probabilities). Returns per stream the new frontiers, the hypotheses' forward
    variables at the new frames ``(F, 2, n)`` and the prefix scores over all frames.

    The prefixes are right-aligned across streams (a shorter hypothesis gets impossible
    prefixes in front, which stay impossible) and a stream with fewer new frames keeps
    its values once its frames are used up.
    """
    lengths = [t.size(1) for t in tokens]
    counts = [x.size(0) for x in logps]
    rows = [t.size(0) for t in tokens]
    width = max(lengths)
    pad_front = [width - n for n in lengths]
    prev = torch.cat(
        [
            torch.nn.functional.pad(f, (0, 0, p, 0), value=LOGZERO)
            for f, p in zip(frontiers, pad_front, strict=True)
        ]
    )  # (N, W + 1, 2)
    toks = torch.cat(
        [
            torch.nn.functional.pad(t, (p, 0), value=-1)
            for t, p in zip(tokens, pad_front, strict=True)
        ]
    )  # (N, W), -1 before a hypothesis's first token
    psi = torch.cat(log_psi)
    owner = torch.cat([torch.full((n,), s, dtype=torch.long) for s, n in enumerate(rows)]).to(
        psi.device
    )
    steps = max(counts)
    x = logps[0].new_zeros((steps, len(logps), logps[0].size(1)))
    for s, logp in enumerate(logps):
        x[: logp.size(0), s] = logp.float()
    left = torch.tensor(counts, device=psi.device).index_select(0, owner)  # new frames per row
    same = torch.zeros_like(toks, dtype=torch.bool)
    same[:, 1:] = (toks[:, 1:] == toks[:, :-1]) & (toks[:, 1:] >= 0)
    safe = toks.clamp(min=0)
    out_rows = []
    for t in range(steps):
        frame = x[t].index_select(0, owner)  # (N, V)
        emit = frame.gather(1, safe)  # (N, W)
        pn, pb = prev[..., 0], prev[..., 1]
        new = torch.full_like(prev, LOGZERO)
        new[:, :, 1] = torch.logaddexp(pn, pb) + frame[:, blank_id, None]
        entered = None
        if width:
            phi = torch.where(same, pb[:, :-1], torch.logaddexp(pn[:, :-1], pb[:, :-1]))
            entered = phi + emit  # the last token emitted first at frame t
            new[:, 1:, 0] = torch.logaddexp(pn[:, 1:], phi) + emit
        new.clamp_(min=LOGZERO)
        live = t < left
        if bool(live.all()):
            prev = new
            if entered is not None:
                psi = torch.logaddexp(psi, entered[:, -1])
        else:
            prev = torch.where(live[:, None, None], new, prev)
            if entered is not None:
                psi = torch.where(live, torch.logaddexp(psi, entered[:, -1]), psi)
        out_rows.append(prev[:, -1].t())
    psi = psi.clamp(min=LOGZERO)
    r_new = torch.stack(out_rows) if out_rows else prev.new_zeros((0, 2, prev.size(0)))
    new_frontiers, new_r, new_psi = [], [], []
    begin = 0
    for n, count, p in zip(rows, counts, pad_front, strict=True):
        new_frontiers.append(prev[begin : begin + n, p:])
        new_r.append(r_new[:count, :, begin : begin + n])
        new_psi.append(psi[begin : begin + n])
        begin += n
    return new_frontiers, new_r, new_psi
