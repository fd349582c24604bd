"""Frame-synchronous CTC decoding of a stream: greedy and prefix beam search.

Both consume CTC log-posteriors a few frames at a time and keep everything they need
between calls, so the result after the last frame does not depend on how the frames were
cut into chunks. Partial results are available after every call.

:class:`CTCGreedyStream` is best-path decoding (ESPnet's greedy CTC, repeats merged across
chunk boundaries). :class:`CTCPrefixStream` is the classic prefix beam search (Hannun et
al., 2014): per prefix the probability of ending in blank and in non-blank, merged over
paths, ``beam_size`` prefixes kept after every frame; only the ``beam_size`` likeliest
tokens of a frame (and blank) are tried, and frames whose blank posterior exceeds
``blank_skip`` are treated as pure blank. With a language model (shallow fusion), a
prefix is ranked by its CTC log-probability plus ``lm_weight`` times the LM's
log-probability of its tokens (and, for the final result, of ``eos`` after them); each
prefix's LM distribution is computed once, when it is first extended, from its
parent's LM state.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from espnet_infer.decode.protocol import fused_lm

__all__ = ["CTCGreedyStream", "CTCPrefixStream"]

_NEG_INF = float("-inf")


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))


class CTCGreedyStream:
    """Best-path CTC decoding, frame by frame.

    Args:
        blank_id: the CTC blank.
    """

    def __init__(self, blank_id: int = 0) -> None:
        self.blank_id = blank_id
        self.tokens: list[int] = []
        self.score = 0.0
        self._last = blank_id
        self.frames = 0

    def extend(self, log_probs: torch.Tensor) -> list[int]:
        """Consume ``(n, V)`` frames; returns the tokens so far."""
        if log_probs.numel():
            best, ids = log_probs.float().max(dim=-1)
            self.score += float(best.sum())
            for token in ids.tolist():
                if token != self._last and token != self.blank_id:
                    self.tokens.append(token)
                self._last = token
            self.frames += log_probs.size(0)
        return list(self.tokens)

    def best(self, final: bool = False) -> tuple[list[int], float]:
        """The tokens so far and the best path's log-probability (``final`` changes nothing)."""
        return list(self.tokens), self.score

    def best_parts(self, final: bool = False) -> tuple[list[int], float, dict[str, float]]:
        """:meth:`best` with the score's one part, ``ctc_path``."""
        return list(self.tokens), self.score, {"ctc_path": self.score}


class CTCPrefixStream:
    """CTC prefix beam search over frames as they arrive.

    Args:
        beam_size: prefixes kept after each frame.
        blank_id: the CTC blank.
        blank_skip: a frame whose blank probability is above this is decoded as blank
            only (1.0 never skips; e.g. 0.999 saves time on silence).
        lm: a language model over the same tokens (``batch_score(ys, state)``, e.g.
            ``espnet_model.lm.LanguageModel`` in eval mode) for shallow fusion.
        lm_weight: weight of its log-probabilities; ``0`` (or no ``lm``) decodes without.
        sos_eos_id: the LM's ``sos``/``eos`` token (needed with ``lm``).
    """

    def __init__(
        self,
        beam_size: int = 10,
        blank_id: int = 0,
        blank_skip: float = 1.0,
        *,
        lm: Any = None,
        lm_weight: float = 0.0,
        sos_eos_id: int | None = None,
    ) -> None:
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        self.lm, self.lm_weight = fused_lm(lm, lm_weight)
        if self.lm is not None and sos_eos_id is None:
            raise ValueError(
                "an LM needs sos_eos_id (the token its prefixes start with): pass the ASR "
                "model's sos_eos_id"
            )
        self.sos_eos_id = sos_eos_id
        parameters = getattr(self.lm, "parameters", None)
        first = next(iter(parameters()), None) if callable(parameters) else None
        self._lm_device = first.device if first is not None else torch.device("cpu")
        self.beam_size = beam_size
        self.blank_id = blank_id
        self.log_blank_skip = math.log(blank_skip) if blank_skip < 1.0 else math.inf
        # prefix -> (log P(ends in blank), log P(ends in non-blank))
        self.beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, _NEG_INF)}
        # with an LM: prefix -> summed LM log-probability of its tokens, and the LM's
        # next-token log-probabilities and state after it (for the prefixes in the beam)
        self.lm_sums: dict[tuple[int, ...], float] = {(): 0.0}
        self._lm_next: dict[tuple[int, ...], tuple[list[float], Any]] = {}
        self.frames = 0

    def extend(self, log_probs: torch.Tensor) -> list[int]:
        """Consume ``(n, V)`` frames; returns the best prefix so far."""
        if log_probs.numel():
            width = min(self.beam_size, log_probs.size(-1))
            top_scores, top_ids = log_probs.float().topk(width, dim=-1)
            blank_scores = log_probs[:, self.blank_id].float().tolist()
            for t, (scores, ids) in enumerate(
                zip(top_scores.tolist(), top_ids.tolist(), strict=True)
            ):
                self._frame(blank_scores[t], scores, ids)
            self.frames += log_probs.size(0)
        return self.best()[0]

    def _frame(self, blank: float, scores: list[float], ids: list[int]) -> None:
        beams = self.beams
        new: dict[tuple[int, ...], list[float]] = {}

        def add(prefix: tuple[int, ...], pb: float, pnb: float) -> None:
            cur = new.get(prefix)
            if cur is None:
                new[prefix] = [pb, pnb]
            else:
                cur[0] = _logaddexp(cur[0], pb)
                cur[1] = _logaddexp(cur[1], pnb)

        skip = blank > self.log_blank_skip
        lm_sums = self.lm_sums
        new_sums: dict[tuple[int, ...], float] = {}
        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            add(prefix, total + blank, _NEG_INF)  # stay, emitting blank
            if self.lm is not None:
                new_sums[prefix] = lm_sums[prefix]
            if skip:
                continue
            last = prefix[-1] if prefix else None
            lm_next = self._lm_after(prefix)[0] if self.lm is not None else None
            for score, token in zip(scores, ids, strict=True):
                if token == self.blank_id:
                    continue
                longer = (*prefix, token)
                if token == last:
                    add(prefix, _NEG_INF, pnb + score)  # repeat merged into the last token
                    add(longer, _NEG_INF, pb + score)  # a new token after blank
                else:
                    add(longer, _NEG_INF, total + score)
                if lm_next is not None and longer not in new_sums:
                    new_sums[longer] = lm_sums[prefix] + lm_next[token]
        weight = self.lm_weight
        scored = [
            (_logaddexp(v[0], v[1]) + (weight * new_sums[k] if weight else 0.0), k, v)
            for k, v in new.items()
        ]
        scored = [item for item in scored if item[0] > _NEG_INF]  # impossible prefixes
        scored.sort(key=lambda item: -item[0])
        self.beams = {k: (v[0], v[1]) for _, k, v in scored[: self.beam_size]}
        if self.lm is not None:
            self.lm_sums = {k: new_sums[k] for k in self.beams}
            self._lm_next = {k: v for k, v in self._lm_next.items() if k in self.beams}

    def _lm_after(self, prefix: tuple[int, ...]) -> tuple[list[float], Any]:
        """The LM's next-token log-probabilities after ``prefix`` (and its state), from its
        parent's state when that is still known."""
        cached = self._lm_next.get(prefix)
        if cached is not None:
            return cached
        assert self.lm is not None and self.sos_eos_id is not None
        parent = self._lm_next.get(prefix[:-1]) if prefix else None
        ys = torch.tensor([[self.sos_eos_id, *prefix]], device=self._lm_device)
        if parent is not None:
            logp, state = self.lm.batch_score(ys, parent[1])
        else:
            logp, state = self.lm.batch_score(ys, None)  # the whole prefix
        entry = (logp[0].float().tolist(), state)
        self._lm_next[prefix] = entry
        return entry

    def _ranked(self, final: bool) -> list[tuple[float, tuple[int, ...], dict[str, float]]]:
        """The prefixes with their scores (CTC, plus the weighted LM with ``eos`` when
        ``final``) and the scores' parts (``ctc``, ``lm``), best first."""
        ranked = []
        for prefix, (pb, pnb) in self.beams.items():
            score = _logaddexp(pb, pnb)
            parts = {"ctc": score}
            if self.lm is not None:
                lm = self.lm_sums[prefix]
                if final:
                    assert self.sos_eos_id is not None
                    lm += self._lm_after(prefix)[0][self.sos_eos_id]
                score += self.lm_weight * lm
                parts["lm"] = lm
            ranked.append((score, prefix, parts))
        ranked.sort(key=lambda item: -item[0])
        return ranked

    def best(self, final: bool = False) -> tuple[list[int], float]:
        """The best prefix and its score; ``final``: with the LM's ``eos`` after it."""
        tokens, score, _ = self.best_parts(final)
        return tokens, score

    def best_parts(self, final: bool = False) -> tuple[list[int], float, dict[str, float]]:
        """:meth:`best` with the score's parts: ``ctc`` (and ``lm`` with an LM)."""
        score, prefix, parts = self._ranked(final)[0]
        return list(prefix), score, parts

    def nbest(self, n: int, final: bool = False) -> list[tuple[list[int], float]]:
        return [(list(prefix), score) for score, prefix, _ in self._ranked(final)[:n]]
