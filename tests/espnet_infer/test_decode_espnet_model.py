"""Decoding a real (tiny, untrained) ``espnet_model`` ASR model end to end."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from espnet_infer.decode import BeamSearch, decode_batch

espnet_model = pytest.importorskip("espnet_model")


def _model(ctc_weight: float, decoder: str | None = "transformer") -> Any:
    config: dict[str, Any] = {
        "frontend": "default",
        "frontend_conf": {"n_mels": 24, "fs": "16k"},
        "encoder": "transformer",
        "encoder_conf": {
            "output_size": 16,
            "attention_heads": 2,
            "linear_units": 32,
            "num_blocks": 1,
        },
        "decoder": decoder,
        "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 2},
        "model_conf": {"ctc_weight": ctc_weight},
    }
    if decoder is None:
        config.pop("decoder_conf")
    torch.manual_seed(0)
    return espnet_model.build_asr_model(config, vocab_size=10).eval()


def test_joint_beam_search_batched_equals_single_and_greedy_runs() -> None:
    model = _model(0.3)
    gen = torch.Generator().manual_seed(0)
    speech = torch.randn(3, 8000, generator=gen)
    lengths = torch.tensor([8000, 5600, 4000])
    speech = speech * (torch.arange(8000)[None] < lengths[:, None])
    search = BeamSearch(model, beam_size=3, ctc_weight=0.3, maxlenratio=0.5, nbest=2)
    with torch.inference_mode():
        enc, enc_lengths = model.encode(speech, lengths)
    batched = search(enc, enc_lengths)
    for b in range(3):
        (alone,) = search(enc[b : b + 1, : enc_lengths[b]], enc_lengths[b : b + 1])
        assert [h.tokens for h in batched[b]] == [h.tokens for h in alone]
        assert set(batched[b][0].scores) == {"att", "ctc"}
    best = decode_batch(model, speech, lengths, method="beam_search", beam_search=search)
    assert best == [h[0].tokens for h in batched]
    greedy = decode_batch(model, speech, lengths, method="ctc_greedy")
    assert len(greedy) == 3 and all(0 not in row for row in greedy)


def test_ctc_only_model_needs_ctc_weight_one() -> None:
    model = _model(1.0, decoder=None)
    with pytest.raises(ValueError, match="ctc_weight must be 1.0"):
        BeamSearch(model, ctc_weight=0.5)
    speech, lengths = torch.randn(2, 4000), torch.tensor([4000, 3200])
    out = decode_batch(model, speech, lengths, method="beam_search")
    assert len(out) == 2


def test_attention_only_model_needs_ctc_weight_zero() -> None:
    model = _model(0.0)
    with pytest.raises(ValueError, match="no CTC head"):
        BeamSearch(model, ctc_weight=0.3)
    speech, lengths = torch.randn(1, 4000), torch.tensor([4000])
    with pytest.raises(ValueError, match="method='beam_search'"):
        decode_batch(model, speech, lengths, method="ctc_greedy")
    search = BeamSearch(model, beam_size=2, ctc_weight=0.0, maxlenratio=0.5)
    assert len(decode_batch(model, speech, lengths, method="beam_search", beam_search=search)) == 1
