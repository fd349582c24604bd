"""Shallow fusion of a language model in the streaming beam searches (``joint``: the
blockwise search; ``ctc_prefix``: the frame-synchronous CTC prefix search)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from espnet_infer.streaming import Speech2TextStreaming

from tests.espnet_infer.test_decode_lm_fusion import FAVOURITE, _lm, _lm_logprob
from tests.espnet_infer.test_decode_streaming import same_together_and_alone
from tests.espnet_infer.test_streaming import VOCAB, _speech, tiny_model

WAVES = [(1.6, 31), (2.3, 32), (2.9, 33)]


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def _waves() -> list[np.ndarray]:
    return [_speech(seconds, seed) for seconds, seed in WAVES]


def _final_hyps(s2t: Speech2TextStreaming, wave: np.ndarray, chunk: int = 3200):
    """Feed ``wave`` in chunks, end the stream; its hypotheses that ended with eos (not
    at the token limit, one per encoder frame), best first."""
    stream = s2t.start()
    for start in range(0, wave.size, chunk):
        s2t.feed(stream, wave[start : start + chunk])
    result = s2t.feed(stream, [], final=True)
    assert s2t.search is not None
    return [h for h in s2t.search.nbest(stream.search, 10) if len(h.tokens) < result.frames]


def test_lm_weight_zero_is_the_search_without_lm(model) -> None:
    plain = Speech2TextStreaming(model, mode="joint", beam_size=4, ctc_weight=0.3)
    fused = Speech2TextStreaming(model, mode="joint", beam_size=4, ctc_weight=0.3, lm=_lm(),
                                 lm_weight=0.0)
    assert fused.search is not None and fused.search.lm is None
    for wave in _waves():
        a, b = plain.transcribe(wave, chunk_ms=200), fused.transcribe(wave, chunk_ms=200)
        assert (a.tokens, a.score) == (b.tokens, b.score)


@pytest.mark.parametrize("ctc_weight", [0.0, 0.3])
def test_scores_decompose_by_scorer(model, ctc_weight: float) -> None:
    """Every ended hypothesis: score = (1 - c) att + c ctc + w lm + penalty (len + 1), and
    its lm part is the LM's own log-probability of its tokens and eos."""
    lm, weight, penalty = _lm(seed=1), 0.7, 0.2
    s2t = Speech2TextStreaming(model, mode="joint", beam_size=3, ctc_weight=ctc_weight,
                               penalty=penalty, lm=lm, lm_weight=weight)
    checked = 0
    for wave in _waves():
        for h in _final_hyps(s2t, wave):
            parts = h.scores
            total = (1 - ctc_weight) * parts["att"] + weight * parts["lm"]
            total += penalty * (len(h.tokens) + 1)
            if ctc_weight:
                total += ctc_weight * parts["ctc"]
            assert h.score == pytest.approx(total, abs=1e-4)
            assert parts["lm"] == pytest.approx(_lm_logprob(lm, h.tokens), abs=1e-4)
            checked += 1
    assert checked >= 3


def test_fusion_moves_hypotheses_towards_the_lm(model) -> None:
    lm = _lm(bias=4.0, vocab=VOCAB)
    shares, lm_scores = [], []
    for weight in (0.0, 0.5, 2.0):
        s2t = Speech2TextStreaming(model, mode="joint", beam_size=4, ctc_weight=0.3, lm=lm,
                                   lm_weight=weight)
        best = [s2t.transcribe(wave, chunk_ms=320).tokens for wave in _waves()]
        shares.append(sum(t.count(FAVOURITE) / max(len(t), 1) for t in best))
        lm_scores.append(sum(_lm_logprob(lm, t) / (len(t) + 1) for t in best))
    print("favourite-token share", shares, "LM log-prob per token", lm_scores)
    assert shares[0] < shares[2] and shares[0] <= shares[1]
    assert lm_scores[0] < lm_scores[2]


def test_result_does_not_depend_on_chunk_size(model) -> None:
    s2t = Speech2TextStreaming(model, mode="joint", beam_size=4, ctc_weight=0.3,
                               lm=_lm(seed=3), lm_weight=0.6)
    for wave in _waves():
        whole = s2t.transcribe(wave, chunk_ms=1e6)
        for chunk_ms in (100, 320, 640):
            result = s2t.transcribe(wave, chunk_ms=chunk_ms)
            assert result.tokens == whole.tokens and result.frames == whole.frames
            assert math.isclose(result.score, whole.score, rel_tol=1e-5, abs_tol=1e-4)


def test_streams_searched_together_equal_each_alone(model) -> None:
    """With an LM (one LM call per stream and step), streams fed together get every
    partial and final result they get alone; they join and end at different calls."""
    s2t = Speech2TextStreaming(model, mode="joint", beam_size=3, ctc_weight=0.3,
                               lm=_lm(seed=4), lm_weight=0.8)
    waves = [_speech(s, seed) for s, seed in ((1.5, 41), (3.1, 42), (0.7, 43), (2.4, 44))]
    sizes, starts = [1000, 2560, 4000, 1700], [0, 0, 3, 5]
    together = same_together_and_alone(s2t, waves, sizes, starts)
    assert sum(len(seen[-1][0]) for seen in together) >= 6, "the searches emit tokens"


def test_transformer_lm_is_fused_too(model) -> None:
    """A transformer LM (a prefix-tree cache carried across blocks and step-backs)."""
    from espnet_model.lm import build_lm

    torch.manual_seed(5)
    lm = build_lm({"lm": "transformer", "lm_conf": {"att_unit": 16, "head": 2, "unit": 32,
                                                     "layer": 2}}, vocab_size=VOCAB).eval()
    s2t = Speech2TextStreaming(model, mode="joint", beam_size=3, ctc_weight=0.3, lm=lm,
                               lm_weight=0.7)
    hyps = [h for wave in _waves() for h in _final_hyps(s2t, wave)]
    assert len(hyps) >= 3 and any(h.tokens for h in hyps)
    for h in hyps:
        assert h.scores["lm"] == pytest.approx(_lm_logprob(lm, h.tokens), abs=1e-4)


def test_bad_lm_settings_are_refused(model) -> None:
    with pytest.raises(ValueError, match="not by mode='ctc_greedy'"):
        Speech2TextStreaming(model, mode="ctc_greedy", lm=_lm(), lm_weight=0.5)
    Speech2TextStreaming(model, mode="ctc_greedy", lm=_lm(), lm_weight=0.0)  # no fusion: fine
    for mode in ("joint", "ctc_prefix"):
        with pytest.raises(ValueError, match="13 tokens but the ASR model has 12"):
            Speech2TextStreaming(model, mode=mode, lm=_lm(vocab=13), lm_weight=0.5)
    for mode in ("joint", "ctc_prefix"):
        with pytest.raises(ValueError, match="lm_weight must be >= 0"):
            Speech2TextStreaming(model, mode=mode, lm=_lm(), lm_weight=-0.5)


# -- ctc_prefix ---------------------------------------------------------------------------


def test_prefix_search_lm_weight_zero_is_the_search_without_lm(model) -> None:
    plain = Speech2TextStreaming(model, mode="ctc_prefix", beam_size=4)
    fused = Speech2TextStreaming(model, mode="ctc_prefix", beam_size=4, lm=_lm(), lm_weight=0.0)
    for wave in _waves():
        a, b = plain.transcribe(wave, chunk_ms=200), fused.transcribe(wave, chunk_ms=200)
        assert (a.tokens, a.score) == (b.tokens, b.score)


def test_prefix_search_scores_add_the_weighted_lm(model) -> None:
    """The final score is the prefix's CTC log-probability plus lm_weight times the LM's
    log-probability of its tokens and eos; partial scores leave eos out. (A beam wide
    enough to lose no path, so the CTC part is exact.)"""
    from espnet_infer.decode.ctc_prefix_score import CTCPrefixScorer

    lm, weight = _lm(seed=6), 0.8
    s2t = Speech2TextStreaming(model, mode="ctc_prefix", beam_size=64, lm=lm, lm_weight=weight)
    for wave in _waves():
        stream = s2t.start()
        s2t.feed(stream, wave)
        partial_tokens, partial_score = stream.search.best()
        final = s2t.feed(stream, [], final=True)
        with torch.no_grad():
            enc, lengths = model.encode(torch.from_numpy(wave)[None], torch.tensor([wave.size]))
            logp = model.ctc.log_softmax(enc)
        scorer = CTCPrefixScorer(logp, lengths, blank_id=0, eos_id=VOCAB - 1)
        state = scorer.init_state(torch.zeros(1, dtype=torch.long))
        for token in final.tokens:
            psi = scorer.score(state, torch.tensor([[token]]))[0]
            state = scorer.extend(state, rows=torch.zeros(1, dtype=torch.long),
                                  tokens=torch.tensor([token]), log_psi=psi)
        ctc = float(scorer.final_scores(state)[0])
        want = ctc + weight * _lm_logprob(lm, final.tokens)
        # the beam loses a little of the CTC sum, and the streamed encoder rounds apart
        assert final.score == pytest.approx(want, abs=0.05)
        assert partial_tokens == final.tokens or partial_score != final.score


def test_prefix_search_fusion_moves_towards_the_lm(model) -> None:
    """The LM log-probability of the chosen hypotheses grows with the weight (here by
    shorter hypotheses: the sharpened CTC leaves the LM little else to choose)."""
    lm = _lm(seed=8)
    totals = []
    for weight in (0.0, 0.5, 2.0):
        s2t = Speech2TextStreaming(model, mode="ctc_prefix", beam_size=4, lm=lm, lm_weight=weight)
        best = [s2t.transcribe(wave, chunk_ms=320).tokens for wave in _waves()]
        totals.append(sum(_lm_logprob(lm, t) for t in best))
    print("LM log-prob of the best hypotheses", totals)
    assert totals[0] < totals[1] < totals[2]


def test_prefix_search_with_lm_does_not_depend_on_chunk_size(model) -> None:
    s2t = Speech2TextStreaming(model, mode="ctc_prefix", beam_size=4, lm=_lm(seed=7),
                               lm_weight=0.6)
    for wave in _waves():
        whole = s2t.transcribe(wave, chunk_ms=1e6)
        for chunk_ms in (100, 320):
            result = s2t.transcribe(wave, chunk_ms=chunk_ms)
            assert result.tokens == whole.tokens
            assert math.isclose(result.score, whole.score, rel_tol=1e-6, abs_tol=1e-5)


def test_results_carry_the_score_parts(model) -> None:
    """StreamResult.scores holds the unweighted parts of every mode's score (partial and
    final), which add up to the score as the searches weigh them."""
    lm, weight, penalty = _lm(seed=9), 0.6, 0.3
    joint = Speech2TextStreaming(model, mode="joint", beam_size=3, ctc_weight=0.3,
                                 penalty=penalty, lm=lm, lm_weight=weight)
    prefix = Speech2TextStreaming(model, mode="ctc_prefix", beam_size=4, lm=lm, lm_weight=weight)
    greedy = Speech2TextStreaming(model, mode="ctc_greedy")
    for wave in _waves():
        stream = joint.start()
        partial = joint.feed(stream, wave[: wave.size // 2])
        final = joint.feed(stream, wave[wave.size // 2 :], final=True)
        for result, length in ((partial, len(partial.tokens)), (final, len(final.tokens) + 1)):
            parts = result.scores
            if not result.tokens and not parts:
                continue  # nothing decoded yet
            assert set(parts) == {"att", "ctc", "lm"}
            total = 0.7 * parts["att"] + 0.3 * parts["ctc"] + weight * parts["lm"]
            if result.final and length - 1 >= result.frames:
                continue  # ended at the token limit: no eos in the parts
            assert result.score == pytest.approx(total + penalty * length, abs=1e-3)
        result = prefix.transcribe(wave, chunk_ms=320)
        assert set(result.scores) == {"ctc", "lm"}
        assert result.score == pytest.approx(result.scores["ctc"] + weight * result.scores["lm"])
        assert result.scores["lm"] == pytest.approx(_lm_logprob(lm, result.tokens), abs=1e-4)
        result = greedy.transcribe(wave, chunk_ms=320)
        assert result.scores == {"ctc_path": result.score}
