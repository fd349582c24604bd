"""The slice of an ASR model that decoding relies on (the ``espnet_model`` contract).

Decoding is written against these structural types rather than a concrete class, so
any module with the same methods (``espnet_model``'s models, or the dummies in
:mod:`espnet_infer.decode.testing`) can be decoded.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = [
    "ASRModelLike",
    "CTCLike",
    "DecoderLike",
    "IncrementalStepper",
    "LMLike",
    "LMStateLike",
    "StepCacheLike",
    "fused_lm",
]


@runtime_checkable
class CTCLike(Protocol):
    """CTC output layer: encoder frames to per-frame log-posteriors."""

    def log_softmax(self, enc: torch.Tensor) -> torch.Tensor:
        """``(B, T, D) -> (B, T, V)`` log-probabilities."""
        ...


@runtime_checkable
class DecoderLike(Protocol):
    """Autoregressive attention decoder with an incremental (per-layer) cache.

    Optional, used by :class:`~espnet_infer.decode.BeamSearch` when present (as on
    ``espnet_model.TransformerDecoder``): ``memory_kv(memory)``, the source-attention
    keys/values projected once per utterance, and ``incremental()``, which returns an
    :class:`IncrementalStepper` that feeds only the last token of each prefix and
    caches self-attention keys/values.
    """

    def forward_one_step(
        self,
        ys: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None,
        cache: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Score the next token of every prefix.

        Args:
            ys: ``(N, L)`` prefixes, each starting with ``sos``.
            memory: ``(N, T, D)`` encoder output.
            memory_mask: ``(N, 1, T)`` True on valid frames, or None.
            cache: per layer ``(N, L - 1, D)`` states of the previous positions.

        Returns:
            ``(N, V)`` next-token log-probabilities and the per-layer ``(N, L, D)`` cache.
        """
        ...


@runtime_checkable
class StepCacheLike(Protocol):
    """An :class:`IncrementalStepper`'s cache of ``n`` prefixes (``espnet_model.StepCache``)."""

    def select(self, indices: torch.Tensor) -> Any:
        """The cache of rows ``indices`` (``(m,)`` long, repeats allowed), in that order."""
        ...


@runtime_checkable
class IncrementalStepper(Protocol):
    """One-token decoder steps (``espnet_model.IncrementalDecoder``), built once per search."""

    def step(
        self,
        tokens: torch.Tensor,
        position: int,
        memory_kv: list[tuple[torch.Tensor, torch.Tensor]],
        memory_mask: torch.Tensor | None,
        cache: StepCacheLike | None = None,
    ) -> tuple[torch.Tensor, StepCacheLike]:
        """``(N, V)`` log-probabilities after the last tokens ``(N,)`` at ``position``.

        ``cache`` (None at position 0) is what this call returned at the previous
        position, its rows reordered with ``cache.select(rows)``; the new one is returned.
        ``memory_kv`` and ``memory_mask`` ``(M, 1, T)`` hold one memory per group of
        ``N / M`` consecutive rows (the search passes one per utterance, for its beam).
        """
        ...


@runtime_checkable
class ASRModelLike(Protocol):
    """Encoder + CTC and/or attention decoder as used by the decoders.

    ``ctc`` is None for a model trained with ``ctc_weight == 0`` and ``decoder`` is
    None for a CTC-only model (``ctc_weight == 1``).
    """

    blank_id: int
    sos_eos_id: int
    vocab_size: int
    ctc_weight: float
    ctc: CTCLike | None
    decoder: DecoderLike | None

    def encode(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, S), (B,) -> (B, T, D), (B,)``."""
        ...


@runtime_checkable
class LMStateLike(Protocol):
    """The cache of a language model's ``n`` prefixes (``espnet_model.lm.LMState``)."""

    def select(self, indices: torch.Tensor) -> Any:
        """The states of rows ``indices`` (``(m,)`` long, repeats allowed), in that order."""
        ...


@runtime_checkable
class LMLike(Protocol):
    """A token language model scored incrementally (``espnet_model.lm.LanguageModel``).

    It shares the ASR model's vocabulary: ``sos``/``eos`` is the last id and every id
    means the same token in both.
    """

    vocab_size: int

    def batch_score(
        self, ys: torch.Tensor, state: Any = None
    ) -> tuple[torch.Tensor, LMStateLike]:
        """``(n, V)`` log-probabilities of the token after each prefix ``ys`` ``(n, L)``.

        ``state`` is what the previous call returned for ``ys[:, :-1]`` (rows reordered
        with ``select``), or None to feed the whole of ``ys``.
        """
        ...


def fused_lm(
    lm: LMLike | None, lm_weight: float, vocab_size: int | None = None
) -> tuple[LMLike | None, float]:
    """The language model a search fuses and its weight: ``(None, 0.0)`` without ``lm``
    or at ``lm_weight`` 0. A negative weight is refused, and so is an LM whose vocabulary
    is not the ASR model's ``vocab_size`` (when given)."""
    if lm is not None and vocab_size is not None and int(lm.vocab_size) != int(vocab_size):
        raise ValueError(
            f"the language model has {int(lm.vocab_size)} tokens but the ASR model has "
            f"{int(vocab_size)}: an LM for shallow fusion must be trained with the ASR "
            "model's tokenizer"
        )
    if lm_weight < 0:
        raise ValueError(f"lm_weight must be >= 0, got {lm_weight}")
    if lm is None or lm_weight == 0:
        return None, 0.0
    return lm, float(lm_weight)
