"""LanguageModel: ESPnet2's <sos>/<eos> loss, per-sentence NLL, the training contract."""

from __future__ import annotations

import math

import pytest
import torch
from espnet_model.lm import LanguageModel, SequentialRNNLM, TransformerLM

V = 8
SOS = V - 1


@pytest.fixture(params=["transformer", "seq_rnn"])
def model(request: pytest.FixtureRequest) -> LanguageModel:
    torch.manual_seed(0)
    if request.param == "transformer":
        lm = TransformerLM(V, embed_unit=8, att_unit=8, head=2, unit=16, layer=2)
    else:
        lm = SequentialRNNLM(V, unit=8, nlayers=1)
    return LanguageModel(lm, vocab_size=V).eval()


TEXT = torch.tensor([[1, 2, 3, 4], [5, 6, -1, -1], [2, -1, -1, -1]])
LENGTHS = torch.tensor([4, 2, 1])


def test_nll_scores_each_token_and_eos_after_sos(model: LanguageModel) -> None:
    with torch.no_grad():
        nll, counts = model.nll(TEXT, LENGTHS)
        for row, length in enumerate(LENGTHS.tolist()):
            words = TEXT[row, :length].tolist()
            ys = torch.tensor([[SOS, *words]])
            logp = torch.log_softmax(model.lm(ys), dim=-1)[0]
            expected = -sum(logp[i, t].item() for i, t in enumerate([*words, SOS]))
            assert math.isclose(nll[row].item(), expected, abs_tol=1e-5)
    assert counts.tolist() == [5, 3, 2]


def test_padding_value_does_not_matter_and_token_nll_is_zero_after_the_end(
    model: LanguageModel,
) -> None:
    with torch.no_grad():
        per_token, counts = model.token_nll(TEXT, LENGTHS)
        zero_padded, _ = model.token_nll(TEXT.clamp(min=0), LENGTHS)
        longer, _ = model.token_nll(torch.cat([TEXT, TEXT], dim=1), LENGTHS)
    assert per_token.shape == (3, 5)
    torch.testing.assert_close(per_token, zero_padded)
    torch.testing.assert_close(per_token, longer)
    assert (per_token[1, 3:] == 0).all() and (per_token[2, 2:] == 0).all()
    assert (per_token[0] > 0).all()


def test_forward_follows_the_training_contract(model: LanguageModel) -> None:
    model.train()
    loss, stats, weight = model(text=TEXT, text_lengths=LENGTHS, utt_id=["a", "b", "c"])
    assert loss.dim() == 0 and loss.requires_grad
    assert set(stats) == {"loss"} and not stats["loss"].requires_grad
    assert weight == 10  # tokens scored, <eos> counted (ESPnet2's weight)
    loss.backward()
    model.eval()
    with torch.no_grad():
        nll, counts = model.nll(TEXT, LENGTHS)
        loss, _, _ = model(text=TEXT, text_lengths=LENGTHS)
    torch.testing.assert_close(loss, nll.sum() / counts.sum())


def test_batch_score_delegates_and_vocab_is_checked(model: LanguageModel) -> None:
    ys = torch.tensor([[SOS, 1, 2]])
    with torch.no_grad():
        logp, state = model.batch_score(ys)
        full = torch.log_softmax(model.lm(ys), dim=-1)[:, -1]
    torch.testing.assert_close(logp, full, atol=1e-5, rtol=0)
    assert state.length == 3
    assert model.sos == model.eos == V - 1
    with pytest.raises(ValueError, match="lm has 8 tokens but vocab_size=9"):
        LanguageModel(model.lm, vocab_size=9)
