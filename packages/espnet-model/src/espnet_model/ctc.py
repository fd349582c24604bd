"""CTC output layer and loss (blank id 0)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from espnet_model.dropout import dropout
from espnet_model.mask import make_pad_mask


class CTC(nn.Module):
    """Linear projection to the vocabulary with CTC loss.

    The loss is ``ctc_loss(reduction="sum", zero_infinity=True) / batch_size``
    (ESPnet2's ``builtin`` CTC), computed in float32.

    Args:
        vocab_size: output vocabulary size (id 0 is ``<blank>``).
        encoder_output_size: encoder dimension.
        dropout_rate: dropout on the encoder output before the projection.
    """

    def __init__(
        self, vocab_size: int, encoder_output_size: int, dropout_rate: float = 0.0
    ) -> None:
        super().__init__()
        self.ctc_lo = nn.Linear(encoder_output_size, vocab_size)
        self.dropout_rate = dropout_rate
        self.blank_id = 0

    def forward(
        self,
        hs: torch.Tensor,
        hlens: torch.Tensor,
        ys_pad: torch.Tensor,
        ys_lens: torch.Tensor,
    ) -> torch.Tensor:
        """Mean-over-batch CTC loss; ``ys_pad`` ``(B, L)`` may be padded with any id."""
        logits = self.ctc_lo(dropout(hs, self.dropout_rate, self.training))
        log_probs = logits.float().log_softmax(dim=-1).transpose(0, 1)  # (T, B, V)
        targets = ys_pad.masked_fill(make_pad_mask(ys_lens, ys_pad.size(1)), 0)
        loss = F.ctc_loss(
            log_probs,
            targets,
            hlens.long(),
            ys_lens.long(),
            blank=self.blank_id,
            reduction="sum",
            zero_infinity=True,
        )
        return loss / hs.size(0)

    def softmax(self, hs: torch.Tensor) -> torch.Tensor:
        """Frame posteriors ``(..., V)`` (no dropout; self-conditioned CTC feeds them back)."""
        return F.softmax(self.ctc_lo(hs), dim=-1)

    def log_softmax(self, hs: torch.Tensor) -> torch.Tensor:
        """Frame log-probabilities ``(B, T, V)``."""
        return F.log_softmax(self.ctc_lo(hs), dim=-1)

    def argmax(self, hs: torch.Tensor) -> torch.Tensor:
        """Best id per frame ``(B, T)``."""
        return torch.argmax(self.ctc_lo(hs), dim=-1)
