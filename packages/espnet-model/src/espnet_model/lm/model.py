"""The trainable language model: a network plus ESPnet2's ``<sos>``/``<eos>`` loss.

:class:`LanguageModel` is ESPnet2's ``ESPnetLanguageModel``: ``lm`` is the network
(state-dict keys ``lm.*``), ``<sos>`` = ``<eos>`` = ``vocab_size - 1``. A sentence
``w1 .. wN`` is scored as ``P(w1 | <sos>) ... P(<eos> | <sos> w1 .. wN)``: ``N + 1``
tokens, ``<eos>`` counted (as ESPnet2's ``lm_calc_perplexity`` counts them).
"""

from __future__ import annotations

import torch
from torch import nn

from espnet_model.lm.base import PADDING_ID, BaseLM, LMState
from espnet_model.mask import make_pad_mask


class LanguageModel(nn.Module):
    """Next-token loss around a :class:`BaseLM` network, under the training contract.

    Args:
        lm: the network (:class:`TransformerLM`, :class:`SequentialRNNLM`).
        vocab_size: number of tokens; the last is ``<sos/eos>``.
        ignore_id: ESPnet2's ``model_conf.ignore_id`` (its text padding id). Kept for
            configs; positions after ``text_lengths`` are ignored whatever they hold.

    Attributes: ``lm``, ``vocab_size``, ``sos``, ``eos``, ``ignore_id``.
    """

    def __init__(self, lm: BaseLM, vocab_size: int, ignore_id: int = 0) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size={vocab_size} must be >= 2 (tokens and <sos/eos>)")
        if lm.vocab_size != vocab_size:
            raise ValueError(f"lm has {lm.vocab_size} tokens but vocab_size={vocab_size}")
        self.lm = lm
        self.vocab_size = vocab_size
        self.sos = vocab_size - 1
        self.eos = vocab_size - 1
        self.ignore_id = ignore_id

    def token_nll(
        self, text: torch.Tensor, text_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token negative log-likelihoods ``(B, L + 1)`` (0 after each end) and counts.

        ``text`` ``(B, L)`` holds token ids without ``<sos>``/``<eos>``, padded with any
        id; the counts are ``text_lengths + 1`` (the ``<eos>`` is scored). ESPnet2's
        ``ESPnetLanguageModel.nll``.
        """
        if text.dim() != 2 or text.size(0) != text_lengths.size(0):
            raise ValueError(
                f"text must be (B, L) and text_lengths (B,); got {tuple(text.shape)} and "
                f"{tuple(text_lengths.shape)}"
            )
        text_lengths = text_lengths.to(text.device)
        text = text[:, : int(text_lengths.max())] if text.numel() else text
        batch, length = text.shape
        pad = make_pad_mask(text_lengths, length)
        body = text.masked_fill(pad, PADDING_ID)
        x = torch.cat([body.new_full((batch, 1), self.sos), body], dim=1)  # <sos> w1 .. wN
        target = torch.cat([body, body.new_full((batch, 1), PADDING_ID)], dim=1)
        target[torch.arange(batch, device=text.device), text_lengths] = self.eos  # w1 .. wN <eos>
        logp = torch.log_softmax(self.lm(x), dim=-1)
        nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        counts = text_lengths + 1
        return nll.masked_fill(make_pad_mask(counts, length + 1), 0.0), counts

    def nll(
        self, text: torch.Tensor, text_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed negative log-likelihood ``(B,)`` of each sentence and its token counts ``(B,)``.

        Perplexity over a corpus: ``exp(sum of nll / sum of counts)``.
        """
        nll, counts = self.token_nll(text, text_lengths)
        return nll.sum(dim=1), counts

    def forward(
        self, text: torch.Tensor, text_lengths: torch.Tensor, **kwargs: object
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        """``(loss, stats, weight)``: mean NLL per token, ``{"loss"}``, the token count.

        The weight is the number of scored tokens (ESPnet2's), so averaging ``loss`` over
        batches by weight gives the per-token mean. Extra batch keys are ignored.
        """
        nll, counts = self.token_nll(text, text_lengths)
        ntokens = counts.sum()
        loss = nll.sum() / ntokens
        return loss, {"loss": loss.detach()}, int(ntokens)

    def batch_score(
        self, ys: torch.Tensor, state: LMState | None = None
    ) -> tuple[torch.Tensor, LMState]:
        """The network's :meth:`BaseLM.batch_score`: ``(n, V)`` next-token log-probabilities."""
        return self.lm.batch_score(ys, state)
