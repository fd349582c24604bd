from __future__ import annotations

import pytest
import torch
from espnet_infer.decode import ctc_greedy_search, decode_batch
from espnet_infer.decode.testing import TinyASRModel


def _one_hot(ids: list[list[int]], vocab: int = 5) -> torch.Tensor:
    x = torch.full((len(ids), len(ids[0]), vocab), -10.0)
    for b, row in enumerate(ids):
        for t, token in enumerate(row):
            x[b, t, token] = 0.0
    return x


def test_collapses_repeats_drops_blanks_and_respects_lengths() -> None:
    x = _one_hot([[1, 1, 0, 1, 2, 2, 0, 3], [0, 4, 4, 4, 0, 0, 2, 2]])
    out = ctc_greedy_search(x, torch.tensor([8, 5]), blank_id=0)
    assert out == [[1, 1, 2, 3], [4]]


def test_other_blank_id_and_empty_output() -> None:
    x = _one_hot([[2, 2, 2], [1, 2, 1]])
    assert ctc_greedy_search(x, torch.tensor([3, 3]), blank_id=2) == [[], [1, 1]]


def test_bad_shapes_name_the_fix() -> None:
    with pytest.raises(ValueError, match="unsqueeze"):
        ctc_greedy_search(torch.zeros(3, 4), torch.tensor([3]))
    with pytest.raises(ValueError, match="encoder output lengths"):
        ctc_greedy_search(torch.zeros(1, 3, 4), torch.tensor([5]))


def test_decode_batch_greedy_matches_manual_pipeline() -> None:
    model = TinyASRModel(with_decoder=False).eval()
    speech, lengths = torch.randn(2, 64), torch.tensor([64, 40])
    enc, enc_lengths = model.encode(speech, lengths)
    expect = ctc_greedy_search(model.ctc.log_softmax(enc), enc_lengths)
    assert decode_batch(model, speech, lengths, method="ctc_greedy") == expect
    with pytest.raises(ValueError, match="unknown decoding method"):
        decode_batch(model, speech, lengths, method="viterbi")  # type: ignore[arg-type]
