"""Shallow fusion of a language model in the batched beam search."""

from __future__ import annotations

import pytest
import torch
from espnet_infer.decode import BeamSearch
from espnet_infer.decode.testing import TinyASRModel
from espnet_model.lm import LanguageModel, build_lm

VOCAB = 12
FAVOURITE = 5  # the token the biased LM likes


def _lm(bias: float = 0.0, seed: int = 0, vocab: int = VOCAB) -> LanguageModel:
    torch.manual_seed(seed)
    lm = build_lm({"lm": "seq_rnn", "lm_conf": {"unit": 16, "nlayers": 1}}, vocab_size=vocab)
    if bias:
        with torch.no_grad():
            lm.lm.decoder.bias[FAVOURITE] += bias
    return lm.eval()


def _enc(model: TinyASRModel, sizes: list[int], seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    speech = torch.randn(len(sizes), max(sizes), generator=gen)
    lengths = torch.tensor(sizes)
    speech = speech * (torch.arange(max(sizes))[None] < lengths[:, None])
    return model.encode(speech, lengths)


def _lm_logprob(lm: LanguageModel, tokens: list[int]) -> float:
    with torch.no_grad():
        nll, _ = lm.nll(torch.tensor([tokens or [1]]), torch.tensor([len(tokens)]))
    return -float(nll[0])


@pytest.mark.parametrize("ctc_weight", [0.0, 0.3, 1.0])
def test_lm_weight_zero_is_the_search_without_lm(ctc_weight: float) -> None:
    model = TinyASRModel(with_decoder=ctc_weight < 1.0, eos_bias=1.0).eval()
    enc, lengths = _enc(model, [64, 48, 56])
    plain = BeamSearch(model, beam_size=4, ctc_weight=ctc_weight, nbest=2)(enc, lengths)
    fused = BeamSearch(model, beam_size=4, ctc_weight=ctc_weight, nbest=2, lm=_lm(),
                       lm_weight=0.0)(enc, lengths)
    assert [[h.tokens for h in u] for u in plain] == [[h.tokens for h in u] for u in fused]
    assert all("lm" not in h.scores for u in fused for h in u)


@pytest.mark.parametrize("ctc_weight", [0.0, 0.3, 1.0])
def test_scores_decompose_by_scorer(ctc_weight: float) -> None:
    """score = (1 - c) att + c ctc + w lm + penalty (len + 1); lm is the LM's own log-prob."""
    model = TinyASRModel(with_decoder=ctc_weight < 1.0, eos_bias=1.0).eval()
    lm, weight, penalty = _lm(seed=1), 0.7, 0.2
    enc, lengths = _enc(model, [64, 40])
    search = BeamSearch(model, beam_size=3, ctc_weight=ctc_weight, nbest=3, lm=lm,
                        lm_weight=weight, penalty=penalty)
    for hyps in search(enc, lengths):
        assert hyps
        for h in hyps:
            parts = h.scores
            total = weight * parts["lm"] + penalty * (len(h.tokens) + 1)
            if ctc_weight < 1.0:
                total += (1 - ctc_weight) * parts["att"]
            if ctc_weight > 0.0:
                total += ctc_weight * parts["ctc"]
            assert h.score == pytest.approx(total, abs=1e-4)
            assert parts["lm"] == pytest.approx(_lm_logprob(lm, h.tokens), abs=1e-4)


@pytest.mark.parametrize("ctc_weight", [0.3, 1.0])
def test_fusion_moves_hypotheses_towards_the_lm(ctc_weight: float) -> None:
    model = TinyASRModel(with_decoder=ctc_weight < 1.0, eos_bias=1.0, sharpness=1.5).eval()
    lm = _lm(bias=4.0)
    enc, lengths = _enc(model, [64, 64, 48, 56], seed=3)
    counts, lm_scores = [], []
    for weight in (0.0, 0.5, 2.0):
        search = BeamSearch(model, beam_size=4, ctc_weight=ctc_weight, lm=lm, lm_weight=weight)
        best = [u[0].tokens for u in search(enc, lengths)]
        counts.append(sum(t.count(FAVOURITE) / max(len(t), 1) for t in best))
        lm_scores.append(sum(_lm_logprob(lm, t) / (len(t) + 1) for t in best))
    print("favourite-token share", counts, "LM log-prob per token", lm_scores)
    assert counts[0] < counts[1] <= counts[2]
    assert lm_scores[0] < lm_scores[2]


def test_batched_fusion_equals_one_by_one() -> None:
    model = TinyASRModel(eos_bias=1.0).eval()
    search = BeamSearch(model, beam_size=4, ctc_weight=0.3, nbest=2, lm=_lm(seed=2),
                        lm_weight=0.5)
    sizes = [64, 40, 56]
    enc, lengths = _enc(model, sizes)
    batched = search(enc, lengths)
    for i in range(len(sizes)):
        alone = search(enc[i : i + 1, : int(lengths[i])], lengths[i : i + 1])[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batched[i]]
        for a, b in zip(alone, batched[i], strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-4)


def test_lm_with_another_vocabulary_is_refused() -> None:
    model = TinyASRModel()
    with pytest.raises(ValueError, match="LM.*13 tokens.*12.*tokenizer|13 tokens but the ASR model has 12"):
        BeamSearch(model, lm=_lm(vocab=13), lm_weight=0.3)
    with pytest.raises(ValueError, match="lm_weight must be >= 0"):
        BeamSearch(model, lm=_lm(), lm_weight=-1.0)
