"""Blockwise synchronous joint CTC/attention beam search (ESPnet2's ``BatchBeamSearchOnline``).

Tsunoo et al., "Streaming Transformer ASR with Blockwise Synchronous Beam Search"
(2020). The encoder emits its output block by block; after each block the label-
synchronous joint search runs over all encoder frames so far, one token per step, until
a step would make a hypothesis end (``eos``) or repeat a token it already holds: such a
decision is premature without the future frames, so the step is dropped, and the last
accepted step too (its token was chosen with the least look-ahead), and the search waits
for the next block. With the last block (``final``) it runs to the end like the offline
search (ESPnet's end detection when ``maxlenratio == 0``).

Blocks are defined on the encoder output as in ESPnet2: block ``b`` covers the first
``block_size - look_ahead + b * hop_size`` frames and is searched once more frames than
that exist, so the hypotheses depend on the encoder output only, not on how the audio
was chunked.

Scores are those of :class:`~espnet_infer.decode.BeamSearch`: ``(1 - ctc_weight) * att +
ctc_weight * ctc + penalty * tokens`` with ESPnet2's pre-beam. The decoder's cache of
earlier positions is kept when the memory grows (as ESPnet2 does). The CTC prefix
scores are exact over the frames so far: each hypothesis carries the forward variables
of all its prefixes at the last frame, so new frames extend them (and its prefix score)
without re-scoring the history, and a hypothesis's score is always that of the offline
search for it over the frames so far. ESPnet2 instead extends only the blank paths of a
hypothesis and keeps the prefix score of the block where the token was chosen. Another
difference: ESPnet2 can step back to hypotheses saved in an earlier block; here the
step-back stays within the block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from espnet_infer.decode.beam_search import Hypothesis
from espnet_infer.decode.ctc_prefix_score import LOGZERO, CTCPrefixScorer, CTCPrefixState
from espnet_infer.decode.protocol import ASRModelLike

__all__ = ["BlockwiseBeamSearch", "BlockwiseState"]

_NEG_INF = float("-inf")


@dataclass
class _Running:
    """The running hypotheses of one stream (rows), at ``frames`` encoder frames."""

    ys: torch.Tensor  # (N, L + 1) with sos first
    score: torch.Tensor  # (N,)
    att: torch.Tensor  # (N,) summed decoder log-probabilities
    cache: list[torch.Tensor] | None
    r: torch.Tensor  # (T, 2, N) CTC forward variables of each hypothesis
    frontier: torch.Tensor  # (N, L + 1, 2) of every prefix at the last frame
    log_psi: torch.Tensor  # (N,)


@dataclass
class BlockwiseState:
    """One stream's search state: encoder frames and CTC log-probabilities so far,
    running and ended hypotheses, blocks searched."""

    enc: torch.Tensor | None = None
    logp: torch.Tensor | None = None
    running: _Running | None = None
    ended: list[Hypothesis] | None = None
    blocks: int = 0
    step: int = 0
    done: bool = False


def _end_detected(hyps: list[Hypothesis], step: int) -> bool:
    """ESPnet's ``end_detect``: the ended hypotheses of each of the last 3 lengths are all
    ``e^10`` less likely than the best ended one."""
    if not hyps:
        return False
    best = max(h.score for h in hyps)
    count = 0
    for m in range(3):
        same = [h.score for h in hyps if len(h.tokens) + 2 == step - m]
        if same and max(same) - best < -10.0:
            count += 1
    return count == 3


class BlockwiseBeamSearch:
    """The blockwise synchronous search of one model; states are per stream.

    Args:
        model: encoder/CTC/decoder model (:class:`ASRModelLike`) with a decoder.
        block_size / hop_size / look_ahead: the encoder's (``encoder_conf``).
        beam_size, ctc_weight, penalty, pre_beam_ratio: as in ``BeamSearch``.
        maxlenratio: ``0``: at most one token per encoder frame and end detection.
        disable_repetition_detection: do not stop a block at a repeated token.
    """

    def __init__(
        self,
        model: ASRModelLike,
        *,
        block_size: int,
        hop_size: int,
        look_ahead: int,
        beam_size: int = 10,
        ctc_weight: float = 0.3,
        penalty: float = 0.0,
        pre_beam_ratio: float = 1.5,
        maxlenratio: float = 0.0,
        disable_repetition_detection: bool = False,
    ) -> None:
        if model.decoder is None or ctc_weight >= 1.0:
            raise ValueError(
                "the blockwise joint search needs an attention decoder and ctc_weight < 1; "
                "use the ctc_prefix mode for a CTC-only model"
            )
        if model.ctc is None and ctc_weight > 0:
            raise ValueError("the model has no CTC head; set ctc_weight: 0.0")
        if beam_size < 1 or not 0.0 <= ctc_weight < 1.0 or maxlenratio < 0:
            raise ValueError(
                f"beam_size={beam_size} must be >= 1, ctc_weight={ctc_weight} in [0, 1), "
                f"maxlenratio={maxlenratio} >= 0"
            )
        self.model = model
        self.first = block_size - look_ahead
        self.hop = hop_size
        self.beam_size = beam_size
        self.ctc_weight = float(ctc_weight)
        self.penalty = float(penalty)
        self.pre_beam_ratio = pre_beam_ratio
        self.maxlenratio = maxlenratio
        self.repetition = not disable_repetition_detection
        self.eos = int(model.sos_eos_id)
        self.blank = int(model.blank_id)
        self.vocab = int(model.vocab_size)

    # -- per stream ---------------------------------------------------------------------

    def extend(
        self, state: BlockwiseState, enc: torch.Tensor, logp: torch.Tensor | None, final: bool
    ) -> list[int]:
        """Add encoder frames ``(n, D)`` (and their CTC log-probabilities ``(n, V)``), search
        every block that is complete (all of them with ``final``); returns the best
        hypothesis so far (final: the result)."""
        if state.done:
            raise ValueError("this stream's search has finished; start a new state")
        state.enc = enc if state.enc is None else torch.cat([state.enc, enc])
        if logp is not None:
            logp = logp.float()
            state.logp = logp if state.logp is None else torch.cat([state.logp, logp])
        total = state.enc.size(0)
        while True:
            end = self.first + self.hop * state.blocks
            if end < total:
                self._block(state, end, final=False)
                state.blocks += 1
            elif final:
                if total:
                    self._block(state, total, final=True)
                state.done = True
                break
            else:
                break
        return self.best(state)[0]

    def best(self, state: BlockwiseState) -> tuple[list[int], float]:
        """Best ended hypothesis when the search is done, else the best running one."""
        if state.done and state.ended:
            hyp = max(state.ended, key=lambda h: h.score)
            return list(hyp.tokens), hyp.score
        run = state.running
        if run is None or run.ys.size(0) == 0:
            return [], 0.0
        row = int(run.score.argmax())
        return run.ys[row, 1:].tolist(), float(run.score[row])

    def nbest(self, state: BlockwiseState, n: int) -> list[Hypothesis]:
        return sorted(state.ended or [], key=lambda h: -h.score)[:n]

    # -- internals ----------------------------------------------------------------------

    def _scorer(self, state: BlockwiseState, frames: int) -> CTCPrefixScorer | None:
        if not self.ctc_weight or state.logp is None:
            return None
        return CTCPrefixScorer(
            state.logp[None, :frames], torch.tensor([frames]), blank_id=self.blank, eos_id=self.eos
        )

    def _init(self, state: BlockwiseState, frames: int) -> None:
        assert state.enc is not None
        device = state.enc.device
        r = torch.full((frames, 2, 1), LOGZERO, device=device)
        frontier = torch.full((1, 1, 2), LOGZERO, device=device)
        if self.ctc_weight and state.logp is not None:
            r[:, 1, 0] = torch.cumsum(state.logp[:frames, self.blank], dim=0)
            frontier[0, 0, 1] = r[-1, 1, 0]
        state.running = _Running(
            ys=torch.full((1, 1), self.eos, dtype=torch.long, device=device),
            score=torch.zeros(1, device=device),
            att=torch.zeros(1, device=device),
            cache=None,
            r=r,
            frontier=frontier,
            log_psi=torch.zeros(1, device=device),
        )
        state.ended = []

    def _extend_ctc(self, state: BlockwiseState, begin: int, end: int) -> None:
        """Forward variables of every running prefix over frames ``begin..end-1``."""
        run, logp = state.running, state.logp
        assert run is not None and logp is not None
        tokens = run.ys[:, 1:]  # (N, L)
        same = torch.zeros_like(tokens, dtype=torch.bool)
        same[:, 1:] = tokens[:, 1:] == tokens[:, :-1]
        prev = run.frontier
        log_psi = run.log_psi
        rows = []
        for t in range(begin, end):
            x = logp[t]
            emit = x[tokens]  # (N, L)
            pn, pb = prev[..., 0], prev[..., 1]  # (N, L + 1)
            new = torch.full_like(prev, LOGZERO)
            new[:, :, 1] = torch.logaddexp(pn, pb) + x[self.blank]
            if tokens.size(1):
                phi = torch.where(same, pb[:, :-1], torch.logaddexp(pn[:, :-1], pb[:, :-1]))
                entered = phi + emit  # the last token emitted first at frame t
                new[:, 1:, 0] = torch.logaddexp(pn[:, 1:], phi) + emit
                log_psi = torch.logaddexp(log_psi, entered[:, -1])
            prev = new.clamp_(min=LOGZERO)
            rows.append(prev[:, -1].t())
        run.frontier = prev
        run.r = torch.cat([run.r, torch.stack(rows)])
        # the prefix scores over all frames so far, and the scores they enter
        run.log_psi = log_psi.clamp(min=LOGZERO)
        run.score = (
            (1.0 - self.ctc_weight) * run.att
            + self.ctc_weight * run.log_psi
            + self.penalty * tokens.size(1)
        )

    def _block(self, state: BlockwiseState, frames: int, *, final: bool) -> None:
        assert state.enc is not None
        if state.running is None:
            self._init(state, frames)
        elif state.running.r.size(0) < frames and self.ctc_weight:
            self._extend_ctc(state, state.running.r.size(0), frames)
        assert state.ended is not None
        memory = state.enc[:frames]
        scorer = self._scorer(state, frames)
        maxlen = frames if self.maxlenratio == 0 else max(1, int(self.maxlenratio * frames))
        prev: _Running | None = None
        while state.step < maxlen:
            run = state.running
            assert run is not None
            if run.ys.size(0) == 0:
                break
            parent, token, score, att, psi, cache = self._expand(run, memory, scorer)
            is_eos = token == self.eos
            if not final:
                repeated = False
                if self.repetition:
                    for p, t in zip(parent.tolist(), token.tolist(), strict=True):
                        if t != self.eos and t in run.ys[p, 1:].tolist():
                            repeated = True
                            break
                if repeated or bool(is_eos.any()):
                    break
            elif self.maxlenratio == 0.0 and _end_detected(state.ended, state.step):
                state.running = None
                return
            prev = run
            for i in is_eos.nonzero().view(-1).tolist():
                p = int(parent[i])
                scores = {"att": float(att[i])}
                if scorer is not None:
                    scores["ctc"] = float(psi[i])
                state.ended.append(
                    Hypothesis(tokens=run.ys[p, 1:].tolist(), score=float(score[i]), scores=scores)
                )
            keep = (~is_eos).nonzero().view(-1)
            state.running = self._advance(
                run, scorer, cache, parent[keep], token[keep], score[keep], att[keep],
                psi[keep] if psi is not None else None,
            )  # fmt: skip
            state.step += 1
            if final and state.step >= maxlen:  # ends with maxlen tokens; eos not scored
                run = state.running
                for row in range(run.ys.size(0)):
                    state.ended.append(
                        Hypothesis(
                            tokens=run.ys[row, 1:].tolist(),
                            score=float(run.score[row]),
                            scores={"att": float(run.att[row])},
                        )
                    )
        if not final and prev is not None and state.step > 1:
            state.running = prev
            state.step -= 1

    def _expand(
        self, run: _Running, memory: torch.Tensor, scorer: CTCPrefixScorer | None
    ) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None,
        list[torch.Tensor],
    ]:  # fmt: skip
        """One search step: the ``beam_size`` best (parent row, token) pairs, their total
        scores, summed decoder log-probabilities and CTC prefix scores, and the decoder's
        cache of the rows before selection."""
        decoder = self.model.decoder
        assert decoder is not None
        rows = run.ys.size(0)
        att_logp, cache = decoder.forward_one_step(
            run.ys, memory[None].expand(rows, -1, -1), None, run.cache
        )
        att_logp = att_logp.float()
        full = (1.0 - self.ctc_weight) * att_logp
        psi_all: torch.Tensor | None = None
        if scorer is not None:
            width = min(int(self.pre_beam_ratio * self.beam_size), self.vocab)
            top = full.topk(width, dim=1).indices
            cand = torch.cat(
                [top, torch.full((rows, 1), self.eos, dtype=torch.long, device=top.device)], dim=1
            )
            cand_scores = full.gather(1, cand)
            cand_scores[:, -1].masked_fill_((top == self.eos).any(dim=1), _NEG_INF)
            state = CTCPrefixState(
                r=run.r, log_psi=run.log_psi, last=self._last(run),
                utt=run.ys.new_zeros(rows), num_tokens=run.ys.size(1) - 1,
            )  # fmt: skip
            psi_all = scorer.score(state, cand)
            cand_scores = cand_scores + self.ctc_weight * (psi_all - run.log_psi[:, None])
        else:
            cand = torch.arange(self.vocab, device=full.device)[None].expand(rows, -1)
            cand_scores = full
        cand_scores = cand_scores.masked_fill(cand == self.blank, _NEG_INF)
        total = (run.score[:, None] + cand_scores + self.penalty).view(-1)
        best, flat = total.topk(min(self.beam_size, total.numel()))
        finite = torch.isfinite(best)
        best, flat = best[finite], flat[finite]
        width = cand.size(1)
        parent = flat // width
        token = cand.reshape(-1)[flat]
        att = run.att[parent] + att_logp[parent, token]
        psi = psi_all.reshape(-1)[flat] if psi_all is not None else None
        return parent, token, best, att, psi, cache

    def _last(self, run: _Running) -> torch.Tensor:
        if run.ys.size(1) == 1:
            return run.ys.new_full((run.ys.size(0),), -1)
        return run.ys[:, -1]

    def _advance(
        self,
        run: _Running,
        scorer: CTCPrefixScorer | None,
        cache: list[torch.Tensor],
        parent: torch.Tensor,
        token: torch.Tensor,
        score: torch.Tensor,
        att: torch.Tensor,
        psi: torch.Tensor | None,
    ) -> _Running:
        cache = [c.index_select(0, parent) for c in cache]
        ys = torch.cat([run.ys.index_select(0, parent), token[:, None]], dim=1)
        if scorer is not None and psi is not None and parent.numel():
            state = CTCPrefixState(
                r=run.r, log_psi=run.log_psi, last=self._last(run),
                utt=run.ys.new_zeros(run.ys.size(0)), num_tokens=run.ys.size(1) - 1,
            )  # fmt: skip
            new = scorer.extend(state, rows=parent, tokens=token, log_psi=psi)
            r = new.r
            frontier = torch.cat([run.frontier.index_select(0, parent), r[-1].t()[:, None]], dim=1)
            log_psi = psi
        else:
            r = run.r.index_select(2, parent)
            frontier = torch.cat(
                [
                    run.frontier.index_select(0, parent),
                    run.frontier.new_full((parent.numel(), 1, 2), LOGZERO),
                ],
                dim=1,
            )
            log_psi = run.log_psi.index_select(0, parent)
        return _Running(
            ys=ys, score=score, att=att, cache=cache, r=r, frontier=frontier, log_psi=log_psi
        )
