"""Frame-synchronous CTC decoding of a stream: greedy and prefix beam search.

Both consume CTC log-posteriors a few frames at a time and keep everything they need
between calls, so the result after the last frame does not depend on how the frames were
cut into chunks. Partial results are available after every call.

:class:`CTCGreedyStream` is best-path decoding (ESPnet's greedy CTC, repeats merged across
chunk boundaries). :class:`CTCPrefixStream` is the classic prefix beam search (Hannun et
al., 2014): per prefix the probability of ending in blank and in non-blank, merged over
paths, ``beam_size`` prefixes kept after every frame; only the ``beam_size`` likeliest
tokens of a frame (and blank) are tried, and frames whose blank posterior exceeds
``blank_skip`` are treated as pure blank.
"""

from __future__ import annotations

import math

import torch

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

    def best(self) -> tuple[list[int], float]:
        return list(self.tokens), self.score


class CTCPrefixStream:
    """CTC prefix beam search over frames as they arrive.

    Args:
        beam_size: prefixes kept after each frame.
        blank_id: the CTC blank.
        blank_skip: a frame whose blank probability is above this is decoded as blank
            only (1.0 never skips; e.g. 0.999 saves time on silence).
    """

    def __init__(self, beam_size: int = 10, blank_id: int = 0, blank_skip: float = 1.0) -> None:
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        self.beam_size = beam_size
        self.blank_id = blank_id
        self.log_blank_skip = math.log(blank_skip) if blank_skip < 1.0 else math.inf
        # prefix -> (log P(ends in blank), log P(ends in non-blank))
        self.beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, _NEG_INF)}
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
        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            add(prefix, total + blank, _NEG_INF)  # stay, emitting blank
            if skip:
                continue
            last = prefix[-1] if prefix else None
            for score, token in zip(scores, ids, strict=True):
                if token == self.blank_id:
                    continue
                if token == last:
                    add(prefix, _NEG_INF, pnb + score)  # repeat merged into the last token
                    add((*prefix, token), _NEG_INF, pb + score)  # a new token after blank
                else:
                    add((*prefix, token), _NEG_INF, total + score)
        scored = [(_logaddexp(v[0], v[1]), k, v) for k, v in new.items()]
        scored = [item for item in scored if item[0] > _NEG_INF]  # impossible prefixes
        scored.sort(key=lambda item: -item[0])
        self.beams = {k: (v[0], v[1]) for _, k, v in scored[: self.beam_size]}

    def best(self) -> tuple[list[int], float]:
        prefix, (pb, pnb) = max(self.beams.items(), key=lambda kv: _logaddexp(*kv[1]))
        return list(prefix), _logaddexp(pb, pnb)

    def nbest(self, n: int) -> list[tuple[list[int], float]]:
        ranked = sorted(self.beams.items(), key=lambda kv: -_logaddexp(*kv[1]))
        return [(list(k), _logaddexp(*v)) for k, v in ranked[:n]]
