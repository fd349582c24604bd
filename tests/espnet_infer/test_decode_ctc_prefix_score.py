"""CTC prefix scores against brute-force enumeration of all alignments."""

from __future__ import annotations

import itertools

import pytest
import torch
from espnet_infer.decode import CTCPrefixScorer
from espnet_infer.decode.ctc_prefix_score import LOGZERO

BLANK, EOS, VOCAB = 0, 3, 4  # real tokens: 1, 2


def _collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    out: list[int] = []
    prev = None
    for p in path:
        if p != prev and p != BLANK:
            out.append(p)
        prev = p
    return tuple(out)


def _brute(log_probs: torch.Tensor, prefix: tuple[int, ...]) -> tuple[float, float]:
    """(log P(output starts with prefix), log P(output == prefix)) over (T, V) posteriors."""
    frames = log_probs.shape[0]
    paths = list(itertools.product(range(VOCAB), repeat=frames))
    index = torch.tensor(paths)  # (P, T)
    path_lp = log_probs[torch.arange(frames)[None, :], index].sum(1).tolist()
    starts, exact = [], []
    for path, lp in zip(paths, path_lp, strict=True):
        out = _collapse(path)
        if out[: len(prefix)] == prefix:
            starts.append(lp)
        if out == prefix:
            exact.append(lp)
    as_log = lambda v: float(torch.logsumexp(torch.tensor(v), 0)) if v else LOGZERO  # noqa: E731
    return as_log(starts), as_log(exact)


def _posteriors(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(batch, frames, VOCAB, generator=gen)
    logits[..., EOS] = -30.0  # a trained CTC head never emits sos/eos
    return torch.log_softmax(logits, dim=-1)


def _walk(scorer: CTCPrefixScorer, utts: list[int], prefix: tuple[int, ...]):
    """Advance empty hypotheses through ``prefix``; yields (state, scores) per step."""
    state = scorer.init_state(torch.tensor(utts))
    rows = torch.arange(len(utts))
    for token in prefix:
        scores = scorer.score(state)
        yield state, scores
        state = scorer.extend(
            state,
            rows=rows,
            tokens=torch.full((len(utts),), token),
            log_psi=scores[:, token],
        )
    yield state, scorer.score(state)


@pytest.mark.parametrize("prefix", [(), (1,), (1, 1), (2, 1, 2)])
def test_prefix_and_eos_scores_match_brute_force(prefix: tuple[int, ...]) -> None:
    log_probs = _posteriors(1, 5)
    scorer = CTCPrefixScorer(log_probs, torch.tensor([5]), blank_id=BLANK, eos_id=EOS)
    *_, (state, scores) = _walk(scorer, [0], prefix)
    start, exact = _brute(log_probs[0], prefix)
    assert float(state.log_psi[0]) == pytest.approx(start if prefix else 0.0, abs=1e-4)
    assert float(scores[0, EOS]) == pytest.approx(exact, abs=1e-4)
    for token in (1, 2):
        expect, _ = _brute(log_probs[0], (*prefix, token))
        got = float(scores[0, token])
        assert got == pytest.approx(expect, abs=1e-4) or (expect <= LOGZERO and got <= -1e9)
    assert float(scores[0, BLANK]) == LOGZERO


def test_partial_scoring_equals_full_scoring() -> None:
    log_probs = _posteriors(2, 6, seed=1)
    scorer = CTCPrefixScorer(log_probs, torch.tensor([6, 4]), blank_id=BLANK, eos_id=EOS)
    *_, (state, full) = _walk(scorer, [0, 1], (2,))
    cand = torch.tensor([[3, 1], [2, 3]])
    torch.testing.assert_close(scorer.score(state, cand), full.gather(1, cand))


def test_padded_utterance_scores_like_an_unpadded_one() -> None:
    log_probs = _posteriors(2, 6, seed=2)
    batched = CTCPrefixScorer(log_probs, torch.tensor([6, 4]), blank_id=BLANK, eos_id=EOS)
    alone = CTCPrefixScorer(log_probs[1:, :4], torch.tensor([4]), blank_id=BLANK, eos_id=EOS)
    for (_, in_batch), (_, single) in zip(
        _walk(batched, [0, 1], (1, 2)), _walk(alone, [0], (1, 2)), strict=True
    ):
        torch.testing.assert_close(in_batch[1], single[0], atol=1e-4, rtol=1e-5)


def test_chunked_scoring_matches_one_chunk() -> None:
    log_probs = _posteriors(3, 5, seed=3)
    lengths = torch.tensor([5, 3, 4])
    whole = CTCPrefixScorer(log_probs, lengths, blank_id=BLANK, eos_id=EOS)
    tiny = CTCPrefixScorer(log_probs, lengths, blank_id=BLANK, eos_id=EOS, max_chunk_elements=1)
    state = whole.init_state(torch.tensor([0, 1, 2, 1]))
    torch.testing.assert_close(whole.score(state), tiny.score(state))


def test_extend_rejects_eos_and_bad_lengths() -> None:
    log_probs = _posteriors(1, 3)
    scorer = CTCPrefixScorer(log_probs, torch.tensor([3]), blank_id=BLANK, eos_id=EOS)
    state = scorer.init_state(torch.tensor([0]))
    with pytest.raises(ValueError, match="eos"):
        scorer.extend(
            state, rows=torch.tensor([0]), tokens=torch.tensor([EOS]), log_psi=torch.zeros(1)
        )
    with pytest.raises(ValueError, match=r"\[1, T=3\]"):
        CTCPrefixScorer(log_probs, torch.tensor([0]), blank_id=BLANK, eos_id=EOS)


def _loop_forward(first: torch.Tensor, phi: torch.Tensor, emit: torch.Tensor) -> torch.Tensor:
    """The frame-by-frame recursion that ``_forward_recursion`` solves in closed form."""
    out = [first.double()]
    for j in range(1, emit.shape[0]):
        prev = out[-1]
        r_n = torch.logaddexp(prev[0], phi[j - 1].double()) + emit[j, 0].double()
        r_b = torch.logaddexp(prev[0], prev[1]) + emit[j, 1].double()
        out.append(torch.stack([r_n, r_b]))
    return torch.stack(out)


@pytest.mark.parametrize("frames", [2, 40, 1500])
def test_closed_form_recursion_matches_the_frame_loop(frames: int) -> None:
    from espnet_infer.decode.ctc_prefix_score import _forward_recursion

    gen = torch.Generator().manual_seed(frames)
    emit = torch.randn(frames, 2, 5, generator=gen).mul(4).log_softmax(1)
    emit[-frames // 4 :, 0] = LOGZERO  # padded frames of a shorter utterance
    emit[-frames // 4 :, 1] = 0.0
    phi = torch.randn(frames - 1, 5, generator=gen) * 3 - 2
    phi[:3] = LOGZERO
    first = torch.tensor([[LOGZERO] * 5, [-1.0, -2.0, -3.0, LOGZERO, -0.5]])
    got = _forward_recursion(first, phi, emit).clamp_min(LOGZERO)
    want = _loop_forward(first, phi, emit).float().clamp_min(LOGZERO)
    valid = slice(0, frames - frames // 4)
    torch.testing.assert_close(got[valid], want[valid], rtol=1e-5, atol=1e-3)
