"""Decoding: CTC greedy search and joint CTC/attention beam search.

``decode_batch`` is the one-call entry point; ``BeamSearch`` and ``ctc_greedy_search``
are the building blocks, ``CTCPrefixScorer`` the batched CTC prefix scorer.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from espnet_infer.decode.beam_search import BeamSearch, Hypothesis
from espnet_infer.decode.ctc_prefix_score import CTCPrefixScorer, CTCPrefixState
from espnet_infer.decode.greedy import ctc_greedy_search
from espnet_infer.decode.protocol import ASRModelLike

__all__ = [
    "ASRModelLike",
    "BeamSearch",
    "CTCPrefixScorer",
    "CTCPrefixState",
    "DecodeMethod",
    "Hypothesis",
    "ctc_greedy_search",
    "decode_batch",
]

DecodeMethod = Literal["ctc_greedy", "beam_search"]


def decode_batch(
    model: ASRModelLike,
    speech: torch.Tensor,
    speech_lengths: torch.Tensor,
    *,
    method: DecodeMethod = "ctc_greedy",
    beam_search: BeamSearch | None = None,
) -> list[list[int]]:
    """Encode a padded batch of waveforms and return the best token ids per utterance.

    Args:
        model: the ASR model (see :class:`ASRModelLike`).
        speech: ``(B, S)`` padded waveforms.
        speech_lengths: ``(B,)`` valid samples per waveform.
        method: ``"ctc_greedy"`` (best path) or ``"beam_search"``.
        beam_search: the searcher for ``"beam_search"``; it must wrap ``model``.
            ``None`` builds ``BeamSearch(model)`` with the model's ``ctc_weight``
            (``1.0`` without decoder, ``0.0`` without CTC head).
    """
    if method not in get_args(DecodeMethod):
        raise ValueError(
            f"unknown decoding method {method!r}; choose one of {list(get_args(DecodeMethod))}"
        )
    if beam_search is not None and beam_search.model is not model:
        raise ValueError(
            "beam_search wraps a different model than the one passed to decode_batch; "
            "build it with BeamSearch(model, ...)"
        )
    with torch.inference_mode():
        enc, enc_lengths = model.encode(speech, speech_lengths)
        if method == "ctc_greedy":
            if model.ctc is None:
                raise ValueError(
                    "ctc_greedy needs a CTC head but the model has none (trained with "
                    "ctc_weight=0); use method='beam_search'"
                )
            return ctc_greedy_search(
                model.ctc.log_softmax(enc), enc_lengths, blank_id=model.blank_id
            )
        if beam_search is None:
            weight = float(model.ctc_weight)
            if model.decoder is None or model.ctc is None:
                weight = 1.0 if model.decoder is None else 0.0
            beam_search = BeamSearch(model, ctc_weight=weight)
        return [hyps[0].tokens if hyps else [] for hyps in beam_search(enc, enc_lengths)]
