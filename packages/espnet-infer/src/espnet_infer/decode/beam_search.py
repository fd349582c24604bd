"""Joint CTC/attention beam search, batched over utterances and beams.

All ``B x beam`` running hypotheses are scored with one decoder call per output step
(using the decoder's incremental cache) and one vectorised CTC prefix-scoring call.
Hypotheses live in fixed slots ``row = utterance * beam + k``; a slot whose
hypothesis ended or was never filled carries score ``-inf``. Utterances that are
finished are dropped from the batch, so the work shrinks as decoding proceeds.

Scores follow ESPnet2 (shallow fusion with an optional language model)::

    score = (1 - ctc_weight) * att + ctc_weight * ctc + lm_weight * lm + penalty * (tokens + 1)

where ``att`` sums decoder log-probabilities (``eos`` included), ``ctc`` is the CTC
prefix log-probability (the whole-sequence log-probability once ``eos`` is chosen),
``lm`` sums the language model's log-probabilities (``eos`` included) and the penalty
is added for every emitted symbol, ``eos`` included.

The search rules are ESPnet2's (``BatchBeamSearch``), so that the same weights give
the same hypotheses: when CTC is used with a whole-vocabulary scorer (the decoder and/or
the LM), only ``eos`` and the ``int(pre_beam_ratio * beam_size)`` best tokens of the
weighted whole-vocabulary scores (``(1 - ctc_weight) * att + lm_weight * lm``) are
CTC-scored; a
hypothesis that reaches ``maxlen`` tokens ends there (its ``eos`` is not scored);
with ``maxlenratio == 0`` an utterance also stops by ESPnet's end detection (the
hypotheses that ended in each of the last three steps' lengths are all ``e^-10``
less likely than the best one). One deliberate difference: before ``minlen`` tokens
``eos`` is not a candidate (ESPnet2 lets it take a beam slot and drops the result).
Independently of those rules, an utterance stops as soon as none of its running
hypotheses can still beat its ``nbest``-th ended one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from espnet_infer.decode.ctc_prefix_score import CTCPrefixScorer, CTCPrefixState
from espnet_infer.decode.protocol import (
    ASRModelLike,
    IncrementalStepper,
    LMLike,
    LMStateLike,
    StepCacheLike,
    fused_lm,
)

__all__ = ["BeamSearch", "Hypothesis"]

_NEG_INF = float("-inf")


@dataclass
class Hypothesis:
    """One finished transcript.

    Attributes:
        tokens: token ids, without ``sos``/``eos``.
        score: the weighted total score used for ranking.
        scores: unweighted component scores: ``"att"`` (decoder log-probability),
            ``"ctc"`` (CTC log-probability) and ``"lm"`` (language-model log-probability),
            each present when that scorer is used.
    """

    tokens: list[int]
    score: float
    scores: dict[str, float] = field(default_factory=dict)


def _end_detected(hyps: list[Hypothesis], step: int, window: int = 3,
                  margin: float = -10.0) -> bool:
    """ESPnet's end detection (``end_detect``, Watanabe et al. 2017, eq. 50) at ``step``.

    True when, for each of the ``window`` sequence lengths ``step, step - 1, ...``
    (``sos`` and ``eos`` counted), some hypothesis of that length has ended and the
    best of them scores more than ``-margin`` below the best ended hypothesis.
    """
    if not hyps:
        return False
    best = max(h.score for h in hyps)
    count = 0
    for m in range(window):
        same = [h.score for h in hyps if len(h.tokens) + 2 == step - m]
        if same and max(same) - best < margin:
            count += 1
    return count == window


def _chosen(values: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """Per-candidate ``values`` ``(U * beam, K)`` at the top-k picks ``flat`` ``(U, beam)``.

    ``flat`` indexes each utterance's ``beam * K`` candidates; returns ``(U * beam,)``.
    """
    return values.reshape(flat.shape[0], -1).gather(1, flat).view(-1)


DecoderCache = list[torch.Tensor] | StepCacheLike


def _select_rows(cache: DecoderCache, rows: torch.Tensor) -> DecoderCache:
    """The decoder cache of ``rows``: a per-layer list is gathered, a stepper's cache
    records them (``select``, nothing copied)."""
    if isinstance(cache, list):
        return [c.index_select(0, rows) for c in cache]
    return cache.select(rows)


class BeamSearch:
    """Joint CTC/attention (or pure CTC prefix) beam search.

    Args:
        model: an encoder/CTC/decoder model following :class:`ASRModelLike`.
        beam_size: running hypotheses kept per utterance.
        ctc_weight: weight of the CTC prefix score in ``[0, 1]``; ``1.0`` runs a pure
            CTC prefix beam search (the decoder is not called); ``0.0`` is attention
            only. A model without decoder needs ``1.0``.
        penalty: score added per emitted token (length bonus when positive).
        maxlenratio: ``maxlen = max(1, int(maxlenratio * T))`` tokens per utterance of
            ``T`` encoder frames; ``0`` means ``maxlen = T`` and end detection. A
            hypothesis that reaches ``maxlen`` tokens ends there.
        minlenratio: ``eos`` is not allowed before ``int(minlenratio * T)`` tokens.
        pre_beam_ratio: with CTC and a whole-vocabulary scorer (decoder, LM), only
            ``eos`` and the ``int(pre_beam_ratio * beam_size)`` best tokens of their
            weighted sum are CTC-scored per hypothesis.
        nbest: finished hypotheses returned per utterance, best first.
        lm: a language model over the same vocabulary (:class:`LMLike`, e.g.
            ``espnet_model.lm.LanguageModel`` in eval mode) for shallow fusion.
        lm_weight: weight of the LM score (ESPnet2's ``lm_weight``); ignored without ``lm``.
    """

    def __init__(
        self,
        model: ASRModelLike,
        *,
        beam_size: int = 10,
        ctc_weight: float = 0.3,
        penalty: float = 0.0,
        maxlenratio: float = 0.0,
        minlenratio: float = 0.0,
        pre_beam_ratio: float = 1.5,
        nbest: int = 1,
        lm: LMLike | None = None,
        lm_weight: float = 0.0,
    ) -> None:
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        if not 0.0 <= ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
        if not 1 <= nbest <= beam_size:
            raise ValueError(
                f"nbest must be in [1, beam_size={beam_size}], got {nbest}; "
                "raise beam_size to return more hypotheses"
            )
        if maxlenratio < 0 or minlenratio < 0:
            raise ValueError(
                f"maxlenratio and minlenratio must be >= 0, got {maxlenratio} and {minlenratio}"
            )
        if pre_beam_ratio < 1.0:
            raise ValueError(f"pre_beam_ratio must be >= 1.0, got {pre_beam_ratio}")
        if model.decoder is None and ctc_weight != 1.0:
            raise ValueError(
                f"the model has no attention decoder (CTC-only), so ctc_weight must be 1.0, "
                f"got {ctc_weight}; pass BeamSearch(model, ctc_weight=1.0) or use ctc_greedy"
            )
        if model.ctc is None and ctc_weight != 0.0:
            raise ValueError(
                f"the model has no CTC head (trained with ctc_weight=0), so ctc_weight must be "
                f"0.0, got {ctc_weight}; pass BeamSearch(model, ctc_weight=0.0)"
            )
        vocab = int(model.vocab_size)
        if {model.blank_id, model.sos_eos_id} == set(range(vocab)) or vocab < 3:
            raise ValueError(f"vocab_size={vocab} leaves no token besides blank and sos/eos")
        self.model = model
        self.lm, self.lm_weight = fused_lm(lm, lm_weight, vocab)
        self.beam_size = beam_size
        self.ctc_weight = float(ctc_weight)
        self.penalty = float(penalty)
        self.maxlenratio = float(maxlenratio)
        self.minlenratio = float(minlenratio)
        self.pre_beam_ratio = float(pre_beam_ratio)
        self.nbest = nbest

    @property
    def uses_attention(self) -> bool:
        return self.model.decoder is not None and self.ctc_weight < 1.0

    @property
    def uses_ctc(self) -> bool:
        return self.ctc_weight > 0.0

    @property
    def uses_lm(self) -> bool:
        return self.lm is not None

    def __call__(self, enc: torch.Tensor, enc_lengths: torch.Tensor) -> list[list[Hypothesis]]:
        """Decode a padded batch of encoder outputs.

        Args:
            enc: ``(B, T, D)`` encoder output.
            enc_lengths: ``(B,)`` valid frames per utterance (each >= 1).

        Returns:
            Per utterance, up to ``nbest`` hypotheses sorted by descending score.
        """
        if enc.dim() != 3:
            raise ValueError(f"enc must be (B, T, D), got shape {tuple(enc.shape)}")
        if enc_lengths.shape != enc.shape[:1]:
            raise ValueError(
                f"enc_lengths must have shape ({enc.shape[0]},), got {tuple(enc_lengths.shape)}"
            )
        lengths = enc_lengths.to(device=enc.device, dtype=torch.long)
        if enc.shape[0] and (int(lengths.min()) < 1 or int(lengths.max()) > enc.shape[1]):
            raise ValueError(
                f"enc_lengths must lie in [1, T={enc.shape[1]}], got {lengths.tolist()}; "
                "drop utterances whose encoder output is empty"
            )
        with torch.inference_mode():
            return self._search(enc, lengths)

    # -- search -----------------------------------------------------------------

    def _length_limits(self, lengths: torch.Tensor) -> tuple[list[int], list[int]]:
        frames = lengths.tolist()
        if self.maxlenratio == 0.0:
            maxlens = frames
        else:
            maxlens = [max(1, int(self.maxlenratio * t)) for t in frames]
        minlens = [min(int(self.minlenratio * t), m) for t, m in zip(frames, maxlens, strict=True)]
        return maxlens, minlens

    def _search(self, enc: torch.Tensor, lengths: torch.Tensor) -> list[list[Hypothesis]]:
        model = self.model
        batch, frames, _ = enc.shape
        device = enc.device
        beam = self.beam_size
        vocab = int(model.vocab_size)
        eos = int(model.sos_eos_id)
        blank = int(model.blank_id)
        filler = next(t for t in range(vocab) if t not in (eos, blank))
        maxlens, minlens = self._length_limits(lengths)
        ended: list[list[Hypothesis]] = [[] for _ in range(batch)]
        if batch == 0:
            return []

        scorer: CTCPrefixScorer | None = None
        if self.uses_ctc:
            assert model.ctc is not None  # checked in __init__
            scorer = CTCPrefixScorer(
                model.ctc.log_softmax(enc), lengths, blank_id=blank, eos_id=eos
            )
        active = list(range(batch))
        utt_rows = torch.arange(batch, device=device).repeat_interleave(beam)
        memory = enc.index_select(0, utt_rows)
        memory_mask: torch.Tensor | None = None  # None: every frame valid (faster attention)
        if int(lengths.min()) < frames:
            memory_mask = (torch.arange(frames, device=device)[None, :] < lengths[:, None])[
                utt_rows
            ].unsqueeze(1)
        score = torch.full((batch * beam,), _NEG_INF, device=device)
        score[::beam] = 0.0
        att_sum = torch.zeros(batch * beam, device=device)
        lm_sum = torch.zeros(batch * beam, device=device)
        lm_state: LMStateLike | None = None
        ys = torch.full((batch * beam, 1), eos, dtype=torch.long, device=device)
        cache: DecoderCache | None = None
        ctc_state = scorer.init_state(utt_rows) if scorer is not None else None
        # Source-attention keys/values, projected once per utterance (not per step).
        memory_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        if self.uses_attention and hasattr(model.decoder, "memory_kv"):
            memory_kv = model.decoder.memory_kv(enc)
        # A decoder that can feed one token per step gets its step weights laid out once;
        # it takes one row of memory_kv per utterance (the beam's queries together),
        # forward_one_step one per hypothesis.
        stepper = None
        if memory_kv is not None and hasattr(model.decoder, "incremental"):
            stepper = model.decoder.incremental()
        elif memory_kv is not None:
            memory_kv = [
                (k.index_select(0, utt_rows), v.index_select(0, utt_rows)) for k, v in memory_kv
            ]

        num_tokens = 0
        base = torch.empty(0)
        while active:
            num_active = len(active)
            if base.shape[0] != num_active:  # first row of each utterance's beam
                base = torch.arange(num_active, device=device)[:, None] * beam
            cand, cand_scores, att_cand, new_cache, ctc_psi, lm_cand, new_lm_state = (
                self._expand(
                    ys, memory, memory_mask, cache, memory_kv, stepper, scorer, ctc_state,
                    lm_state, vocab, eos, blank,
                )
            )
            width = cand.shape[1]
            total = score[:, None] + cand_scores
            if self.penalty:
                total += self.penalty
            before_minlen = [num_tokens < minlens[u] for u in active]
            if any(before_minlen):  # no eos before minlen
                no_eos = torch.tensor(before_minlen, device=device).repeat_interleave(beam)
                total.masked_fill_((cand == eos) & no_eos[:, None], _NEG_INF)

            best, flat = total.view(num_active, beam * width).topk(beam, dim=1)
            parent = (base + flat // width).view(-1)
            token = _chosen(cand, flat)
            best = best.view(-1)
            alive = torch.isfinite(best)
            finished = alive & (token == eos)
            running = alive & ~finished
            reach_maxlen = [num_tokens + 1 >= maxlens[u] for u in active]
            cut: torch.Tensor | None = None
            if any(reach_maxlen):
                at_maxlen = torch.tensor(reach_maxlen, device=device).repeat_interleave(beam)
                cut = running & at_maxlen  # ends with maxlen tokens; its eos is not scored
                running = running & ~at_maxlen

            att_sum = att_sum.index_select(0, parent)
            if att_cand is not None:
                att_sum = att_sum + _chosen(att_cand, flat)
            if lm_cand is not None:
                lm_sum = lm_sum.index_select(0, parent) + _chosen(lm_cand, flat)
            new_psi = _chosen(ctc_psi, flat) if ctc_psi is not None else None
            ys = ys.index_select(0, parent)
            self._collect(ended, active, finished, ys, best, att_sum, new_psi, lm_sum)
            if cut is not None and bool(cut.any()):
                grown = torch.cat([ys, token[:, None]], dim=1)
                self._collect(ended, active, cut, grown, best, att_sum, new_psi, lm_sum)

            score = best.masked_fill(~running, _NEG_INF)
            safe_token = token.masked_fill(~running, filler)
            ys = torch.cat([ys, safe_token[:, None]], dim=1)
            if new_cache is not None:
                cache = _select_rows(new_cache, parent)
            if new_lm_state is not None:
                lm_state = new_lm_state.select(parent)
            if scorer is not None and ctc_state is not None and new_psi is not None:
                ctc_state = scorer.extend(
                    ctc_state, rows=parent, tokens=safe_token, log_psi=new_psi
                )
            num_tokens += 1

            keep = self._still_running(
                ended, active, score.view(num_active, beam), num_tokens, maxlens
            )
            if self.maxlenratio == 0.0:
                keep = [p for p in keep if not _end_detected(ended[active[p]], num_tokens - 1)]
            if len(keep) < num_active:
                kept = torch.tensor(keep, dtype=torch.long, device=device)
                rows = (kept[:, None] * beam + torch.arange(beam, device=device)[None, :]).view(-1)
                active = [active[i] for i in keep]
                score, att_sum, lm_sum, ys = score[rows], att_sum[rows], lm_sum[rows], ys[rows]
                memory = memory[rows]
                if memory_mask is not None:
                    memory_mask = memory_mask[rows]
                if cache is not None:
                    cache = _select_rows(cache, rows)
                if lm_state is not None:
                    lm_state = lm_state.select(rows)
                if memory_kv is not None:
                    index = rows if stepper is None else kept
                    memory_kv = [(k[index], v[index]) for k, v in memory_kv]
                if ctc_state is not None:
                    ctc_state = ctc_state.index_select(rows)

        return [sorted(hyps, key=lambda h: -h.score)[: self.nbest] for hyps in ended]

    def _expand(
        self,
        ys: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None,
        cache: DecoderCache | None,
        memory_kv: list[tuple[torch.Tensor, torch.Tensor]] | None,
        stepper: IncrementalStepper | None,
        scorer: CTCPrefixScorer | None,
        ctc_state: CTCPrefixState | None,
        lm_state: LMStateLike | None,
        vocab: int,
        eos: int,
        blank: int,
    ) -> tuple[
        torch.Tensor,
        torch.Tensor,
        torch.Tensor | None,
        DecoderCache | None,
        torch.Tensor | None,
        torch.Tensor | None,
        LMStateLike | None,
    ]:
        """Candidate tokens ``(N, K)`` and their weighted score increments ``(N, K)``.

        Also returns the candidates' decoder log-probabilities ``(N, K)``, the decoder's
        new cache, the candidates' CTC prefix scores ``(N, K)``, the candidates' LM
        log-probabilities ``(N, K)`` and the LM's new state (None when unused).
        """
        num_rows = ys.shape[0]
        device = ys.device
        att_logp: torch.Tensor | None = None
        new_cache: DecoderCache | None = None
        if self.uses_attention:
            decoder = self.model.decoder
            assert decoder is not None  # guaranteed by uses_attention
            if stepper is not None and memory_kv is not None:
                # Feeds only the last token; the cache holds self-attention keys/values.
                # One memory (and mask row) per utterance, shared by its beam.
                utt_mask = None if memory_mask is None else memory_mask[:: self.beam_size]
                att_logp, new_cache = stepper.step(
                    ys[:, -1], ys.shape[1] - 1, memory_kv, utt_mask, cache  # type: ignore[arg-type]
                )
            elif memory_kv is None:
                att_logp, new_cache = decoder.forward_one_step(
                    ys, memory, memory_mask, cache  # type: ignore[arg-type]
                )
            else:
                att_logp, new_cache = decoder.forward_one_step(  # type: ignore[call-arg]
                    ys, memory, memory_mask, cache, memory_kv=memory_kv  # type: ignore[arg-type]
                )
            att_logp = att_logp.float()
        lm_logp: torch.Tensor | None = None
        new_lm_state: LMStateLike | None = None
        if self.lm is not None:
            lm_logp, new_lm_state = self.lm.batch_score(ys, lm_state)
            lm_logp = lm_logp.float()

        # The whole-vocabulary scorers' weighted sum (ESPnet2's "full" scores).
        full: torch.Tensor | None = None
        if att_logp is not None:
            full = (1.0 - self.ctc_weight) * att_logp if self.uses_ctc else att_logp
        if lm_logp is not None:
            full = self.lm_weight * lm_logp if full is None else full + self.lm_weight * lm_logp

        att_cand: torch.Tensor | None = None
        lm_cand: torch.Tensor | None = None
        if full is not None and self.uses_ctc:
            # ESPnet2's pre-beam: the best tokens of the whole vocabulary (eos and
            # blank too), and eos always (the CTC scorer scores it for every
            # hypothesis); a second eos column is dropped where eos made the pre-beam.
            width = min(int(self.pre_beam_ratio * self.beam_size), vocab)
            top = full.topk(width, dim=1).indices
            eos_col = torch.full((num_rows, 1), eos, dtype=torch.long, device=device)
            cand = torch.cat([top, eos_col], dim=1)
            cand_scores = full.gather(1, cand)
            cand_scores[:, -1].masked_fill_((top == eos).any(dim=1), _NEG_INF)
        elif full is not None:  # no CTC: the beam's best tokens are all that can survive
            ranked = full.clone()
            ranked[:, blank] = _NEG_INF
            cand = ranked.topk(min(self.beam_size, vocab - 1), dim=1).indices
            cand_scores = full.gather(1, cand)
        else:
            cand = torch.arange(vocab, device=device)[None, :].expand(num_rows, vocab)
            cand_scores = torch.zeros(num_rows, vocab, device=device)
        if att_logp is not None:
            att_cand = att_logp.gather(1, cand)
        if lm_logp is not None:
            lm_cand = lm_logp.gather(1, cand)

        ctc_psi: torch.Tensor | None = None
        if scorer is not None and ctc_state is not None:
            full_vocab = full is None
            ctc_psi = scorer.score(ctc_state, None if full_vocab else cand)
            cand_scores = cand_scores + self.ctc_weight * (ctc_psi - ctc_state.log_psi[:, None])
        cand_scores = cand_scores.masked_fill(cand == blank, _NEG_INF)
        return cand, cand_scores, att_cand, new_cache, ctc_psi, lm_cand, new_lm_state

    def _collect(
        self,
        ended: list[list[Hypothesis]],
        active: list[int],
        finished: torch.Tensor,
        ys: torch.Tensor,
        best: torch.Tensor,
        att_sum: torch.Tensor,
        ctc_psi: torch.Tensor | None,
        lm_sum: torch.Tensor,
    ) -> None:
        """Move the hypotheses that chose ``eos`` to their utterance's ended list."""
        rows = finished.nonzero().view(-1).tolist()
        if not rows:
            return
        prefixes = ys[rows, 1:].tolist()
        totals = best[rows].tolist()
        atts = att_sum[rows].tolist()
        ctcs = ctc_psi[rows].tolist() if ctc_psi is not None else None
        lms = lm_sum[rows].tolist() if self.uses_lm else None
        for i, row in enumerate(rows):
            scores: dict[str, float] = {}
            if self.uses_attention:
                scores["att"] = atts[i]
            if ctcs is not None:
                scores["ctc"] = ctcs[i]
            if lms is not None:
                scores["lm"] = lms[i]
            utt = active[row // self.beam_size]
            ended[utt].append(Hypothesis(tokens=prefixes[i], score=totals[i], scores=scores))

    def _still_running(
        self,
        ended: list[list[Hypothesis]],
        active: list[int],
        running_scores: torch.Tensor,
        num_tokens: int,
        maxlens: list[int],
    ) -> list[int]:
        """Positions in ``active`` of the utterances that may still improve.

        An utterance stops when no hypothesis runs, or when it holds ``nbest`` ended
        hypotheses and none of its running ones can catch up: scores only decrease
        per step, except by a positive ``penalty`` for each token still allowed.
        """
        best_running = running_scores.max(dim=1).values.tolist()
        keep: list[int] = []
        for pos, utt in enumerate(active):
            top = best_running[pos]
            if top == _NEG_INF or math.isnan(top):
                continue
            done = ended[utt]
            if len(done) >= self.nbest:
                kth = sorted((h.score for h in done), reverse=True)[self.nbest - 1]
                bound = top + max(self.penalty, 0.0) * (maxlens[utt] - num_tokens + 1)
                if kth >= bound:
                    continue
            keep.append(pos)
        return keep
