"""CTC greedy (best-path) decoding: arg-max per frame, collapse repeats, drop blanks."""

from __future__ import annotations

import torch

__all__ = ["ctc_greedy_search"]


def ctc_greedy_search(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    *,
    blank_id: int = 0,
) -> list[list[int]]:
    """Best-path CTC decoding of a padded batch.

    Args:
        log_probs: ``(B, T, V)`` frame log-posteriors (any monotone score works).
        lengths: ``(B,)`` number of valid frames per utterance (``<= T``).
        blank_id: index of the CTC blank symbol.

    Returns:
        One token-id list per utterance, repeats collapsed and blanks removed.
    """
    if log_probs.dim() != 3:
        raise ValueError(
            f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}; "
            "add a batch dimension with log_probs.unsqueeze(0) for one utterance"
        )
    batch, frames, vocab = log_probs.shape
    if lengths.shape != (batch,):
        raise ValueError(
            f"lengths must have shape ({batch},) to match log_probs, got {tuple(lengths.shape)}"
        )
    if not 0 <= blank_id < vocab:
        raise ValueError(f"blank_id={blank_id} is outside the vocabulary [0, {vocab})")
    lengths = lengths.to(device=log_probs.device, dtype=torch.long)
    if batch and int(lengths.max()) > frames:
        raise ValueError(
            f"lengths contain {int(lengths.max())} frames but log_probs has only T={frames}; "
            "pass the encoder output lengths, not the input sample lengths"
        )

    best = log_probs.argmax(dim=-1)  # (B, T)
    valid = torch.arange(frames, device=best.device)[None, :] < lengths[:, None]
    changed = torch.ones_like(valid)
    changed[:, 1:] = best[:, 1:] != best[:, :-1]
    keep = valid & changed & (best != blank_id)

    best_cpu = best.cpu()
    keep_cpu = keep.cpu()
    return [best_cpu[b][keep_cpu[b]].tolist() for b in range(batch)]
