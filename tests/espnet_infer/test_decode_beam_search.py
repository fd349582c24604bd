"""Joint CTC/attention beam search on tiny random models."""

from __future__ import annotations

import itertools

import pytest
import torch
from espnet_infer.decode import BeamSearch, Hypothesis, decode_batch
from espnet_infer.decode.beam_search import _end_detected
from espnet_infer.decode.testing import TinyASRModel


def _batch(model: TinyASRModel, sizes: list[int], seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    speech = torch.randn(len(sizes), max(sizes), generator=gen)
    lengths = torch.tensor(sizes)
    speech = speech * (torch.arange(max(sizes))[None] < lengths[:, None])
    return model.encode(speech, lengths)


def _att_greedy(model: TinyASRModel, enc: torch.Tensor, maxlen: int) -> list[int]:
    """Reference: arg-max attention decoding with the uncached decoder, blank excluded."""
    assert model.decoder is not None
    ys = [model.sos_eos_id]
    for _ in range(maxlen):
        logp, _ = model.decoder(torch.tensor([ys]), enc, None)
        logp = logp[0, -1].clone()
        logp[model.blank_id] = float("-inf")
        token = int(logp.argmax())
        if token == model.sos_eos_id:
            break
        ys.append(token)
    return ys[1:]


def test_tiny_decoder_cache_matches_uncached() -> None:
    model = TinyASRModel().eval()
    assert model.decoder is not None
    enc, _ = _batch(model, [48, 48])
    ys = torch.tensor([[11, 3, 5, 2], [11, 1, 1, 4]])
    full, _ = model.decoder(ys, enc, None)
    _, cache = model.decoder.forward_one_step(ys[:, :1], enc, None, None)
    for length in range(2, 5):
        step, cache = model.decoder.forward_one_step(ys[:, :length], enc, None, cache)
        assert cache[0].shape == (2, length, 16)
        torch.testing.assert_close(step, full[:, length - 1])


def test_beam_one_without_ctc_is_attention_greedy() -> None:
    model = TinyASRModel(eos_bias=1.5, seed=3).eval()
    enc, lengths = _batch(model, [80, 56, 32])
    result = BeamSearch(model, beam_size=1, ctc_weight=0.0)(enc, lengths)
    for b, hyps in enumerate(result):
        expect = _att_greedy(model, enc[b : b + 1, : lengths[b]], int(lengths[b]))
        assert hyps[0].tokens == expect


@pytest.mark.parametrize("ctc_weight", [0.0, 0.3, 1.0])
def test_batched_equals_one_utterance_at_a_time(ctc_weight: float) -> None:
    model = TinyASRModel(eos_bias=1.0, seed=1).eval()
    enc, lengths = _batch(model, [72, 40, 56, 20])
    search = BeamSearch(model, beam_size=4, ctc_weight=ctc_weight, nbest=2)
    batched = search(enc, lengths)
    for b in range(len(lengths)):
        (alone,) = search(enc[b : b + 1, : lengths[b]], lengths[b : b + 1])
        assert [h.tokens for h in batched[b]] == [h.tokens for h in alone]
        for got, want in zip(batched[b], alone, strict=True):
            assert got.score == pytest.approx(want.score, abs=1e-3)


@torch.no_grad()
def test_scores_are_consistent_with_model_and_ctc_loss() -> None:
    model = TinyASRModel(eos_bias=1.0, seed=2).eval()
    assert model.decoder is not None
    enc, lengths = _batch(model, [64, 36])
    weight, penalty = 0.4, 0.5
    result = BeamSearch(model, beam_size=3, ctc_weight=weight, penalty=penalty, nbest=3)(
        enc, lengths
    )
    log_probs = model.ctc.log_softmax(enc)
    for b, hyps in enumerate(result):
        assert len(hyps) == 3 and hyps[0].score >= hyps[1].score >= hyps[2].score
        for hyp in hyps:
            ys = torch.tensor([[model.sos_eos_id, *hyp.tokens]])
            logp, _ = model.decoder(ys, enc[b : b + 1, : lengths[b]], None)
            targets = [*hyp.tokens, model.sos_eos_id]
            att = float(logp[0, torch.arange(len(targets)), targets].sum())
            ctc = -float(
                torch.nn.functional.ctc_loss(
                    log_probs[b, : lengths[b]],
                    torch.tensor(hyp.tokens),
                    lengths[b : b + 1],
                    torch.tensor([len(hyp.tokens)]),
                    reduction="sum",
                )
            )
            assert hyp.scores["att"] == pytest.approx(att, abs=1e-3)
            assert hyp.scores["ctc"] == pytest.approx(ctc, abs=1e-3)
            expect = (1 - weight) * att + weight * ctc + penalty * (len(hyp.tokens) + 1)
            assert hyp.score == pytest.approx(expect, abs=1e-3)


def test_exhaustive_ctc_prefix_search_finds_most_probable_sequence() -> None:
    # 2 real tokens, 5 frames: a beam of 64 keeps every prefix, so the search is exact.
    model = TinyASRModel(vocab_size=4, with_decoder=False, sharpness=1.0, seed=4).eval()
    enc, lengths = _batch(model, [20], seed=4)
    log_probs = model.ctc.log_softmax(enc)[0].detach()
    log_probs[:, model.sos_eos_id] = -1e4  # CTC never emits sos/eos in practice
    log_probs = log_probs.log_softmax(-1)
    model.ctc.log_softmax = lambda _enc: log_probs[None]  # type: ignore[method-assign]

    best_seq, best_lp = (), float("-inf")
    for n in range(6):
        for seq in itertools.product([1, 2], repeat=n):
            lp = (
                -float(
                    torch.nn.functional.ctc_loss(
                        log_probs,
                        torch.tensor(seq, dtype=torch.long),
                        torch.tensor([5]),
                        torch.tensor([n]),
                        reduction="sum",
                        zero_infinity=False,
                    )
                )
                if n
                else float(log_probs[:, 0].sum())
            )
            if lp > best_lp:
                best_seq, best_lp = seq, lp
    (hyps,) = BeamSearch(model, beam_size=64, ctc_weight=1.0, nbest=1)(enc, lengths)
    assert tuple(hyps[0].tokens) == best_seq
    assert hyps[0].scores == {"ctc": pytest.approx(best_lp, abs=1e-4)}


def test_length_limits() -> None:
    model = TinyASRModel(eos_bias=-5.0, seed=5).eval()  # eos unlikely: runs to maxlen
    enc, lengths = _batch(model, [80, 48])
    short = BeamSearch(model, beam_size=2, ctc_weight=0.0, maxlenratio=0.25)(enc, lengths)
    assert [len(h[0].tokens) for h in short] == [5, 3]
    eager = TinyASRModel(eos_bias=8.0, seed=5).eval()  # eos likely: min length binds
    result = BeamSearch(eager, beam_size=2, ctc_weight=0.0, minlenratio=0.2)(enc, lengths)
    assert [len(h[0].tokens) for h in result] == [4, 2]


def test_configuration_errors_name_the_fix() -> None:
    ctc_only = TinyASRModel(with_decoder=False)
    with pytest.raises(ValueError, match="ctc_weight=1.0"):
        BeamSearch(ctc_only, ctc_weight=0.3)
    with pytest.raises(ValueError, match="raise beam_size"):
        BeamSearch(TinyASRModel(), beam_size=2, nbest=3)
    search = BeamSearch(ctc_only, ctc_weight=1.0)
    with pytest.raises(ValueError, match="empty"):
        search(torch.zeros(1, 4, 16), torch.tensor([0]))
    with pytest.raises(ValueError, match="different model"):
        decode_batch(
            TinyASRModel(),
            torch.zeros(1, 8),
            torch.tensor([8]),
            method="beam_search",
            beam_search=search,
        )


def test_decode_batch_beam_search_defaults() -> None:
    model = TinyASRModel(with_decoder=False, seed=6).eval()
    speech, lengths = torch.randn(2, 40), torch.tensor([40, 24])
    out = decode_batch(model, speech, lengths, method="beam_search")
    enc, enc_lengths = model.encode(speech, lengths)
    expect = [h[0].tokens for h in BeamSearch(model, ctc_weight=1.0)(enc, enc_lengths)]
    assert out == expect and all(isinstance(t, int) for row in out for t in row)


@torch.no_grad()
def test_hypothesis_cut_at_maxlen_has_no_eos_score() -> None:
    model = TinyASRModel(eos_bias=-5.0, seed=5).eval()  # eos unlikely: runs to maxlen
    assert model.decoder is not None
    enc, lengths = _batch(model, [80])
    (hyps,) = BeamSearch(model, beam_size=2, ctc_weight=0.0, maxlenratio=0.25)(enc, lengths)
    best = hyps[0]
    assert len(best.tokens) == 5  # maxlen = int(0.25 * 20 frames)
    logp, _ = model.decoder(torch.tensor([[model.sos_eos_id, *best.tokens[:-1]]]), enc, None)
    att = float(logp[0, torch.arange(5), torch.tensor(best.tokens)].sum())  # eos not scored
    assert best.scores["att"] == pytest.approx(att, abs=1e-4)
    assert best.score == pytest.approx(att, abs=1e-4)


def test_end_detection_follows_espnet() -> None:
    hyps = [Hypothesis([1] * n, s) for n, s in ((3, -1.0), (4, -20.0), (5, -30.0), (6, -15.0))]
    # step 8 looks at sequence lengths 8, 7, 6 (sos + eos counted): 6, 5, 4 tokens,
    # each more than 10 below the best ended hypothesis
    assert _end_detected(hyps, 8)
    assert not _end_detected(hyps, 9)  # nothing ended with 7 tokens
    assert not _end_detected([*hyps, Hypothesis([1] * 5, -5.0)], 8)  # 5 tokens: close to best
    assert not _end_detected([], 3)
