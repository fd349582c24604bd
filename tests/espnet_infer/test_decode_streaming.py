"""Streaming searches: CTC prefix beam search against brute force, and the blockwise joint
search's CTC state against from-scratch prefix scoring."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from espnet_infer.decode.blockwise import BlockwiseBeamSearch
from espnet_infer.decode.ctc_prefix_score import CTCPrefixScorer
from espnet_infer.decode.ctc_stream import CTCGreedyStream, CTCPrefixStream
from espnet_infer.streaming import Speech2TextStreaming

from tests.espnet_infer.test_streaming import _speech, tiny_model


def _brute_force(log_probs: torch.Tensor) -> dict[tuple[int, ...], float]:
    """Probability of every label sequence: all paths, collapsed (blank 0)."""
    frames, vocab = log_probs.shape
    out: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(vocab), repeat=frames):
        labels, last = [], None
        for token in path:
            if token != last and token != 0:
                labels.append(token)
            last = token
        p = math.exp(sum(float(log_probs[t, k]) for t, k in enumerate(path)))
        out[tuple(labels)] = out.get(tuple(labels), 0.0) + p
    return out


def test_prefix_search_with_a_wide_beam_is_exact() -> None:
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(5, 3) * 2, dim=-1)
    exact = _brute_force(log_probs)
    for cut in ([5], [1, 1, 3], [2, 0, 3]):
        search = CTCPrefixStream(beam_size=64)
        start = 0
        for n in cut:
            search.extend(log_probs[start : start + n])
            start += n
        for prefix, score in search.nbest(64):
            assert math.isclose(math.exp(score), exact[tuple(prefix)], rel_tol=1e-4)
        assert tuple(search.best()[0]) == max(exact, key=exact.get)


def test_greedy_stream_merges_repeats_across_chunks() -> None:
    ids = [0, 2, 2, 0, 2, 3, 3, 3, 0]
    log_probs = torch.full((len(ids), 4), -10.0)
    log_probs[range(len(ids)), ids] = 0.0
    greedy = CTCGreedyStream()
    for start in range(0, len(ids), 2):  # a chunk boundary inside "2 2" and "3 3 3"
        greedy.extend(log_probs[start : start + 2])
    assert greedy.best()[0] == [2, 2, 3]


def test_blockwise_ctc_state_is_exact_over_the_frames_so_far() -> None:
    """After many blocks, each running hypothesis's CTC forward variables and prefix
    score equal those computed from scratch over all frames so far."""
    model = tiny_model()
    s2t = Speech2TextStreaming(model, mode="joint", beam_size=4, disable_repetition_detection=True)
    assert isinstance(s2t.search, BlockwiseBeamSearch)
    wave = _speech(2.5, 11)
    stream = s2t.start()
    for start in range(0, 30000, 1600):
        s2t.feed(stream, wave[start : start + 1600])
    state = stream.search
    run = state.running
    frames = run.r.size(0)
    assert state.blocks > 5 and run.ys.size(1) > 5
    scorer = CTCPrefixScorer(
        state.logp[None, :frames], torch.tensor([frames]), blank_id=0, eos_id=model.sos_eos_id
    )
    zero = torch.zeros(1, dtype=torch.long)
    for row in range(run.ys.size(0)):
        ctc = scorer.init_state(zero)
        for token in run.ys[row, 1:].tolist():
            psi = scorer.score(ctc, torch.tensor([[token]]))[0]
            ctc = scorer.extend(ctc, rows=zero, tokens=torch.tensor([token]), log_psi=psi)
        np.testing.assert_allclose(ctc.r[:, :, 0], run.r[:, :, row], atol=1e-3, rtol=1e-5)
        np.testing.assert_allclose(float(ctc.log_psi[0]), float(run.log_psi[row]), rtol=1e-5)


def test_joint_streaming_agrees_with_the_offline_search_here() -> None:
    """Not guaranteed in general (blocks decide with limited look-ahead), but on these
    utterances the blockwise search finds the offline beam search's hypothesis."""
    from espnet_infer.decode.beam_search import BeamSearch

    model = tiny_model()
    s2t = Speech2TextStreaming(model, mode="joint", beam_size=4)
    offline = BeamSearch(model, beam_size=4, ctc_weight=0.3)
    for seed in range(3):
        wave = _speech(2.0 + 0.4 * seed, seed)
        with torch.no_grad():
            enc, lengths = model.encode(torch.from_numpy(wave)[None], torch.tensor([wave.size]))
        assert s2t.transcribe(wave, chunk_ms=200).tokens == offline(enc, lengths)[0][0].tokens
