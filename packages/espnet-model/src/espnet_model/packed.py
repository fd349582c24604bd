"""The valid frames of a padded batch, packed one utterance after another.

On a CPU, work on padded frames costs as much as work on valid ones. A batch of
randomly drawn utterances (issue 4's benchmark: 8 of 4-12 s, 29% padding) spends
about that share of a training step on frames whose results are thrown away, and its
self-attention, quadratic in length, more. A *ragged* batch (more than
:data:`RAGGED_PADDING` of its frames padding, on a CPU) is therefore computed packed:
per-frame layers (feed-forward, projections, norms) run on the ``(N, C)`` valid frames
and attention and convolutions on each utterance alone. Valid outputs, the loss and
the gradients are those of the padded computation. Length-sorted batches (the
recipes' ``DynamicBatcher``) stay below the threshold and run padded.
"""

from __future__ import annotations

import torch

RAGGED_PADDING = 0.2
"""Fraction of padded frames above which a CPU batch is computed packed."""


def ragged_lengths(
    lengths: torch.Tensor, frames: int, device: torch.device
) -> list[int] | None:
    """The lengths (at most ``frames``) of a ragged batch on ``device``, else ``None``.

    Ragged: a CPU batch of more than one utterance with over RAGGED_PADDING padding.
    """
    if device.type != "cpu" or lengths.numel() < 2 or frames == 0:
        return None
    values = lengths.clamp(max=frames).tolist()
    return values if 1.0 - sum(values) / (len(values) * frames) > RAGGED_PADDING else None


class PackedFrames:
    """Moves ``(B, T, C)`` padded tensors to and from ``(N, C)`` packed valid frames.

    ``lengths`` are the valid frames per utterance (each at most ``frames``, the
    padded length). Packed rows are utterance 0's frames, then utterance 1's, ...;
    :meth:`split` cuts them back into utterances.
    """

    def __init__(self, lengths: list[int], frames: int, device: torch.device) -> None:
        self.lengths = [min(int(n), frames) for n in lengths]
        self.frames = frames
        self.index = torch.cat(
            [torch.arange(n, device=device) + i * frames for i, n in enumerate(self.lengths)]
        )

    @classmethod
    def if_ragged(cls, lengths: torch.Tensor, frames: int) -> PackedFrames | None:
        """A packing for a ragged batch (:func:`ragged_lengths`), else ``None``."""
        values = ragged_lengths(lengths, frames, lengths.device)
        return None if values is None else cls(values, frames, lengths.device)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C)`` -> ``(N, C)`` valid frames."""
        return x.reshape(-1, x.size(-1)).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C)`` -> ``(B, T, C)`` with zeros on padded frames."""
        out = x.new_zeros(len(self.lengths) * self.frames, x.size(-1))
        return out.index_copy(0, self.index, x).view(len(self.lengths), self.frames, x.size(-1))

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(N, ...)`` -> one ``(T_i, ...)`` view per utterance."""
        return x.split(self.lengths)
