"""Intermediate CTC and self-conditioned CTC, shared by the encoders (ESPnet2's keys).

Intermediate CTC (Lee & Watanabe, 2021) adds the CTC loss of some inner blocks'
outputs to the final one; self-conditioned CTC (Nozaki & Komatsu, 2021) also adds the
intermediate CTC posteriors back into the hidden state, so later blocks condition on
an early guess of the transcript. Both regularise the lower blocks and shorten the
early plateau of CTC training.

ESPnet2's ``encoder_conf`` keys, with its semantics exactly:

- ``interctc_layer_idx``: 1-based blocks after which a tap sits (``[3, 6]`` taps
  after the 3rd and 6th block), each in ``1 .. num_blocks - 1`` (the last block's
  output is the encoder output, whose CTC is the main loss).
- ``interctc_use_conditioning``: after each tap,
  ``x = x + conditioning_layer(softmax(ctc_lo(h)))`` where ``h`` is the tap's output
  and ``conditioning_layer`` is ``Linear(vocab_size, output_size)``; the model
  (:class:`~espnet_model.asr.ASRModel`) makes it, as ESPnet2's ``ESPnetASRModel``
  does, as ``encoder.conditioning_layer``, and hands the encoder its CTC module (one
  CTC shared by every tap and the final output). The conditioning acts in inference
  too: it is part of the encoder's function.

The tap output ``h`` is the block output passed through the encoder's final
LayerNorm (``after_norm``) for the conformer and the pre-LN transformer, and the raw
block output for the E-Branchformer, as in ESPnet2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from espnet_model.ctc import CTC
from espnet_model.packed import PackedFrames

Intermediates = list[tuple[int, torch.Tensor]]
"""``(block, output (B, T', D))`` of each intermediate CTC tap, in block order."""


def interctc_layers(layer_idx: Sequence[int] | None, num_blocks: int) -> tuple[int, ...]:
    """``interctc_layer_idx`` checked against ``num_blocks``: sorted, without repeats."""
    layers = tuple(sorted({int(i) for i in layer_idx or ()}))
    bad = [i for i in layers if not 0 < i < num_blocks]
    if bad:
        raise ValueError(
            f"encoder_conf.interctc_layer_idx={list(layer_idx or ())} has block(s) {bad} "
            f"outside 1..{num_blocks - 1}: taps are 1-based and sit after an inner block "
            f"(num_blocks={num_blocks}; the last block's output is the encoder output)"
        )
    return layers


class InterCTCMixin:
    """Intermediate-CTC taps for an encoder whose blocks run in a loop (see module doc).

    The encoder keeps its blocks in ``self.encoders``, calls :meth:`_init_interctc` in
    its ``__init__``, runs its blocks with :meth:`_run_blocks` (which taps after each)
    and defines ``forward_with_intermediates(xs, lengths, ctc=None)``, returning the
    output, the lengths and the taps' outputs (for the loss); :meth:`forward` is that
    without the taps. List the mixin before ``nn.Module`` so its ``forward`` is used.
    """

    interctc_layer_idx: tuple[int, ...]
    interctc_use_conditioning: bool
    conditioning_layer: nn.Module | None
    encoders: nn.ModuleList

    def forward_with_intermediates(
        self, xs: torch.Tensor, lengths: torch.Tensor, ctc: CTC | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, Intermediates]:
        """:meth:`forward` plus the intermediate CTC taps' outputs (``interctc_layer_idx``)."""
        raise NotImplementedError(f"{type(self).__name__} must define forward_with_intermediates")

    def forward(
        self, xs: torch.Tensor, lengths: torch.Tensor, ctc: CTC | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``xs`` ``(B, T, input_size)`` -> ``(B, T', output_size)`` and ``T'`` lengths.

        ``ctc``: the model's CTC, needed with ``interctc_use_conditioning``.
        """
        out, out_lengths, _ = self.forward_with_intermediates(xs, lengths, ctc)
        return out, out_lengths

    def _init_interctc(
        self, layer_idx: Sequence[int] | None, use_conditioning: bool, num_blocks: int
    ) -> None:
        self.interctc_layer_idx = interctc_layers(layer_idx, num_blocks)
        if use_conditioning and not self.interctc_layer_idx:
            raise ValueError(
                "encoder_conf.interctc_use_conditioning=True conditions on intermediate CTC "
                "outputs, but encoder_conf.interctc_layer_idx is empty: name the blocks to "
                "tap (e.g. [3] for a 6-block encoder) or set interctc_use_conditioning: false"
            )
        self.interctc_use_conditioning = bool(use_conditioning)
        self.conditioning_layer = None  # Linear(vocab_size, output_size), set by the model

    def _run_blocks(
        self,
        x: torch.Tensor,
        step: Callable[[nn.Module, torch.Tensor], torch.Tensor],
        ctc: CTC | None,
        norm: Callable[[torch.Tensor], torch.Tensor] | None = None,
        packed: PackedFrames | None = None,
    ) -> tuple[torch.Tensor, Intermediates]:
        """Run ``x`` through ``self.encoders`` (``step(block, x)`` each), tapping after each.

        Returns the last block's output and the taps' outputs; ``norm`` and ``packed`` as
        in :meth:`_tap`.
        """
        taps: Intermediates = []
        for i, block in enumerate(self.encoders, 1):
            x = step(block, x)
            x = self._tap(i, x, ctc, taps, norm, packed)
        return x, taps

    def _tap(
        self,
        block: int,
        x: torch.Tensor,
        ctc: CTC | None,
        outs: Intermediates,
        norm: Callable[[torch.Tensor], torch.Tensor] | None = None,
        packed: PackedFrames | None = None,
    ) -> torch.Tensor:
        """After 1-based ``block``: record its (normed) output, and condition ``x`` on it.

        ``x`` is ``(B, T, D)``, or ``(N, D)`` packed frames with ``packed`` (the recorded
        output is then unpacked to ``(B, T, D)``, zeros on padding).
        """
        if block not in self.interctc_layer_idx:
            return x
        h = x if norm is None else norm(x)
        outs.append((block, h if packed is None else packed.unpack(h)))
        if self.interctc_use_conditioning:
            if ctc is None or self.conditioning_layer is None:
                raise ValueError(
                    "self-conditioned CTC (encoder_conf.interctc_use_conditioning) needs the "
                    "model's CTC and conditioning_layer: run the encoder through ASRModel "
                    "(encode / forward), or pass ctc= and set encoder.conditioning_layer"
                )
            x = x + self.conditioning_layer(ctc.softmax(h))
        return x
