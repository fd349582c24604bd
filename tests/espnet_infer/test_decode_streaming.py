"""Streaming searches: CTC prefix beam search against brute force, the blockwise joint
search's CTC state against from-scratch prefix scoring, and streams searched together
against each alone."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
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


def _feed_schedule(s2t, waves, sizes, starts, together: bool) -> list[list[tuple]]:
    """Feed each wave in chunks of its own size from call ``starts[i]`` on, all streams in
    one call each (``together``) or every stream alone; each call's result per stream."""
    streams = [s2t.start() for _ in waves]
    pos = [0] * len(waves)
    seen: list[list[tuple]] = [[] for _ in waves]
    call = 0
    while not all(stream.finished for stream in streams):
        live = [i for i in range(len(waves)) if call >= starts[i] and not streams[i].finished]
        chunks = [waves[i][pos[i] : pos[i] + sizes[i]] for i in live]
        finals = [pos[i] + sizes[i] >= waves[i].size for i in live]
        if together:
            results = s2t.feed([streams[i] for i in live], chunks, final=finals)
        else:
            results = [
                s2t.feed(streams[i], c, final=f) for i, c, f in zip(live, chunks, finals, strict=True)
            ]
        for i, result in zip(live, results, strict=True):
            pos[i] += sizes[i]
            seen[i].append((result.tokens, result.score, result.final, result.frames))
        call += 1
    return seen


def same_together_and_alone(s2t, waves, sizes, starts) -> list[list[tuple]]:
    """Feed the streams together and each alone (:func:`_feed_schedule`); check that every
    call's result of every stream is the same both ways. Returns the results together."""
    together = _feed_schedule(s2t, waves, sizes, starts, together=True)
    alone = _feed_schedule(s2t, waves, sizes, starts, together=False)
    for got, want in zip(together, alone, strict=True):
        assert len(got) == len(want) and got[-1][2]
        for (tokens, score, final, frames), (tokens_a, score_a, final_a, frames_a) in zip(
            got, want, strict=True
        ):
            assert (tokens, final, frames) == (tokens_a, final_a, frames_a)
            assert math.isclose(score, score_a, rel_tol=1e-5, abs_tol=1e-4)
    return together


@pytest.mark.parametrize(("ctc_weight", "beam"), [(0.3, 3), (0.0, 2), (0.6, 5)])
def test_joint_search_of_streams_together_equals_each_alone(ctc_weight: float, beam: int) -> None:
    """Streams fed in one call are searched together (one decoder step and one CTC
    scoring per search step for all of them): every call's partial and final result of
    every stream equals what it gets fed alone, with different chunk sizes, a stream
    joining late (its empty hypothesis stepped beside long ones), and streams ending
    while others go on."""
    model = tiny_model()
    s2t = Speech2TextStreaming(model, mode="joint", beam_size=beam, ctc_weight=ctc_weight)
    waves = [_speech(s, seed) for s, seed in ((1.5, 21), (3.1, 22), (0.7, 23), (2.4, 24))]
    sizes = [1000, 2560, 4000, 1700]
    starts = [0, 0, 3, 5]
    together = same_together_and_alone(s2t, waves, sizes, starts)
    assert sum(len(seen[-1][0]) for seen in together) >= 8, "the searches emit tokens"
    assert len({len(seen) for seen in together}) > 1, "the streams end at different calls"


def test_streams_ctc_scores_rows_of_streams_of_different_lengths() -> None:
    """StreamsCTC gives each row what CTCPrefixScorer gives it over its own stream alone,
    for streams of different frames and hypotheses of different lengths."""
    from espnet_infer.decode.blockwise_ctc import StreamsCTC

    torch.manual_seed(1)
    vocab, blank, eos = 7, 0, 6
    logps = [torch.log_softmax(torch.randn(t, vocab) * 3, -1) for t in (9, 5)]
    prefixes = [[2, 3, 3], [], [4]]  # rows: two of stream 0, one of stream 1
    streams = [0, 0, 1]
    alone_r, alone_psi, last = [], [], []
    cand = torch.tensor([[1, 3, 5, eos], [2, 3, 4, eos], [4, 1, 0, eos]])
    for row, (prefix, s) in enumerate(zip(prefixes, streams, strict=True)):
        scorer = CTCPrefixScorer(
            logps[s][None], torch.tensor([logps[s].size(0)]), blank_id=blank, eos_id=eos
        )
        state = scorer.init_state(torch.zeros(1, dtype=torch.long))
        for token in prefix:
            psi = scorer.score(state, torch.tensor([[token]]))[0]
            state = scorer.extend(state, rows=torch.zeros(1, dtype=torch.long),
                                  tokens=torch.tensor([token]), log_psi=psi)  # fmt: skip
        alone_psi.append(scorer.score(state, cand[row : row + 1])[0])
        alone_r.append(state.r[:, :, 0])
        last.append(prefix[-1] if prefix else -1)
    ctc = StreamsCTC(logps, blank_id=blank, eos_id=eos)
    r = torch.stack([ctc.padded(x[:, :, None])[:, :, 0] for x in alone_r], dim=2)
    num_tokens = torch.tensor([len(p) for p in prefixes])
    utt = torch.tensor(streams)
    psi = ctc.score(r, torch.tensor(last), num_tokens, utt, cand)
    np.testing.assert_allclose(psi, torch.stack(alone_psi), rtol=1e-5, atol=1e-4)
    # Extending each row by its first candidate gives the stream-alone forward variables.
    parent, tokens = torch.tensor([0, 1, 2]), cand[:, 0]
    new = ctc.extend(r, torch.tensor(last), num_tokens, utt, parent, tokens)
    for row, s in enumerate(streams):
        frames = logps[s].size(0)
        scorer = CTCPrefixScorer(logps[s][None], torch.tensor([frames]), blank_id=blank, eos_id=eos)
        state = scorer.init_state(torch.zeros(1, dtype=torch.long))
        for token in [*prefixes[row], int(tokens[row])]:
            psi1 = scorer.score(state, torch.tensor([[token]]))[0]
            state = scorer.extend(state, rows=torch.zeros(1, dtype=torch.long),
                                  tokens=torch.tensor([token]), log_psi=psi1)  # fmt: skip
        np.testing.assert_allclose(new[:frames, :, row], state.r[:, :, 0], rtol=1e-5, atol=1e-3)
