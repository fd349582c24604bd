"""Multi-head attention (absolute and relative-position) and positional encodings.

All attention goes through :func:`torch.nn.functional.scaled_dot_product_attention`.
The relative-position variant (Transformer-XL style, ESPnet's ``rel_selfattn`` with
``rel_pos_type: latest``) passes its position term ``matrix_bd`` to SDPA as an
additive float mask, with padded keys set to ``-inf``.

Masks are *keep* masks (``True`` = may attend) that broadcast to ``(B, Tq, Tk)``;
build them once per forward with :mod:`espnet_model.mask`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from espnet_model._checks import check_choice, check_divisible
from espnet_model.dropout import Dropout


def _sinusoid(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """``(len(positions), d_model)`` sinusoidal table for (possibly negative) positions."""
    div = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / d_model)
    )
    angle = positions.float().unsqueeze(1) * div
    pe = torch.zeros(positions.numel(), d_model)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe


def relative_sinusoids(length: int, d_model: int) -> torch.Tensor:
    """``(2 * length - 1, d_model)`` table for relative positions ``length-1, ..., -(length-1)``."""
    return _sinusoid(torch.arange(length - 1, -length, -1), d_model)


class PositionalEncoding(nn.Module):
    """Absolute sinusoidal encoding: ``dropout(x * sqrt(d_model) + pe[:T])``."""

    def __init__(self, d_model: int, dropout_rate: float, max_len: int = 5000) -> None:
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.dropout = Dropout(dropout_rate)
        self.register_buffer("pe", _sinusoid(torch.arange(max_len), d_model), persistent=False)

    def _table(self, length: int, like: torch.Tensor) -> torch.Tensor:
        if length > self.pe.size(0):
            self.pe = _sinusoid(torch.arange(length), self.d_model).to(like.device)
        return self.pe[:length].to(like.dtype)

    def encoding(self, position: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The ``(d_model,)`` encoding of one ``position``, or ``(n, d_model)`` of a long
        tensor of ``n`` positions (device and dtype of ``like``)."""
        if isinstance(position, torch.Tensor):
            length = int(position.max()) + 1 if position.numel() else 1
            return self._table(length, like)[position]
        return self._table(position + 1, like)[position]

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        pe = self._table(offset + x.size(1), x)[offset:]
        return self.dropout(x * self.xscale + pe)


class RelPositionalEncoding(nn.Module):
    """Relative encoding: returns ``(dropout(x * sqrt(d)), dropout(pos_emb))``.

    ``pos_emb`` is ``(1, 2T - 1, d_model)`` for relative positions ``T-1, ..., -(T-1)``.
    """

    def __init__(self, d_model: int, dropout_rate: float, max_len: int = 5000) -> None:
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.dropout = Dropout(dropout_rate)
        self.max_len = max_len
        self.register_buffer("pe", relative_sinusoids(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = x.size(1)
        if length > self.max_len:
            self.max_len = length
            self.pe = relative_sinusoids(length, self.d_model).to(x.device)
        centre = self.max_len - 1  # index of relative position 0
        pos_emb = self.pe[centre - length + 1 : centre + length].unsqueeze(0).to(x.dtype)
        return self.dropout(x * self.xscale), self.dropout(pos_emb)


class LegacyRelPositionalEncoding(nn.Module):
    """ESPnet's ``legacy_rel_pos``: ``(dropout(x * sqrt(d)), dropout(pos_emb))``.

    ``pos_emb`` is ``(1, T, d_model)``: the first ``T`` rows of a table for positions
    ``L-1, ..., 0`` with ``L = max(max_len, T)``, i.e. positions ``L-1 ... L-T`` (ESPnet's
    quirk, kept so that ESPnet2 conformers trained with ``rel_pos_type: legacy`` load).
    """

    def __init__(self, d_model: int, dropout_rate: float, max_len: int = 5000) -> None:
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.xscale = math.sqrt(d_model)
        self.dropout = Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = x.size(1)
        top = max(self.max_len, length)
        positions = torch.arange(top - 1, top - 1 - length, -1)
        pos_emb = _sinusoid(positions, self.d_model).unsqueeze(0).to(x.device, x.dtype)
        return self.dropout(x * self.xscale), self.dropout(pos_emb)


def is_legacy_rel_pos(
    rel_pos_type: str, pos_enc_layer_type: str, attention_type: str, attention_key: str
) -> bool:
    """Check ESPnet2's three relative-position keys; ``True`` for the legacy variant.

    As in ESPnet2, ``rel_pos_type: legacy`` turns ``rel_pos`` / ``rel_selfattn`` into
    ``legacy_rel_pos`` / ``legacy_rel_selfattn``; ``latest`` allows only the new ones.
    """
    check_choice("encoder_conf.rel_pos_type", rel_pos_type, ("latest", "legacy"))
    legacy = rel_pos_type == "legacy"
    pos_options = ("rel_pos", "legacy_rel_pos") if legacy else ("rel_pos",)
    attn_options = ("rel_selfattn", "legacy_rel_selfattn") if legacy else ("rel_selfattn",)
    check_choice("encoder_conf.pos_enc_layer_type", pos_enc_layer_type, pos_options)
    check_choice(f"encoder_conf.{attention_key}", attention_type, attn_options)
    return legacy


class MultiHeadedAttention(nn.Module):
    """Standard multi-head attention (ESPnet parameter names ``linear_q/k/v/out``)."""

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float) -> None:
        super().__init__()
        check_divisible("output_size", n_feat, "attention_heads", n_head)
        self.h = n_head
        self.d_k = n_feat // n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.dropout_rate = dropout_rate

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1, self.h, self.d_k).transpose(1, 2)  # (B, H, T, d_k)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_out(x.transpose(1, 2).reshape(x.size(0), -1, self.h * self.d_k))

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """``mask``: bool keep-mask broadcastable to ``(B, Tq, Tk)`` or ``None``."""
        k, v = self.project_kv(key, value)
        return self.attend(query, k, v, mask)

    def project_kv(
        self, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values split into heads, ``(B, H, Tk, d_k)`` each.

        A decoder computes them once for a fixed memory and passes them to
        :meth:`attend` at every output step.
        """
        return self._heads(self.linear_k(key)), self._heads(self.linear_v(value))

    def attend(
        self,
        query: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Attention of ``query`` ``(B, Tq, D)`` over keys/values from :meth:`project_kv`."""
        return self.attend_heads(self._heads(self.linear_q(query)), k, v, mask)

    def attend_heads(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Attention of projected queries ``(B, H, Tq, d_k)``; output ``(B, Tq, D)``."""
        attn_mask = None if mask is None else mask.unsqueeze(1)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout_rate if self.training else 0.0
        )
        return self._merge(out)


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, 2T-1)`` scores over relative positions -> ``(B, H, T, T)``.

    Output ``[i, j]`` is input ``[i, T - 1 - i + j]`` (relative position ``i - j``).
    A strided view, no copy.
    """
    x = x.contiguous()
    b, h, t, n = x.shape
    s0, s1, s2, s3 = x.stride()
    return x.as_strided((b, h, t, t), (s0, s1, s2 - s3, s3), x.storage_offset() + (t - 1) * s3)


def legacy_rel_shift(x: torch.Tensor) -> torch.Tensor:
    """ESPnet's ``legacy_rel_selfattn`` shift of ``(B, H, T, T)`` scores (``zero_triu=False``).

    Output ``[i, j]`` is input ``[i, T - 1 - i + j]`` for ``j <= i``; above the diagonal
    it keeps the values the pad-and-reshape trick leaves there, exactly as ESPnet does.
    """
    b, h, t, n = x.shape
    padded = torch.cat([x.new_zeros(b, h, t, 1), x], dim=-1).view(b, h, n + 1, t)
    return padded[:, :, 1:].reshape(b, h, t, n)


class RelPositionMultiHeadedAttention(MultiHeadedAttention):
    """Self-attention with relative positions and learned biases ``pos_bias_u/v``.

    ``score = (q + u) k^T / sqrt(d_k) + rel_shift((q + v) p^T) / sqrt(d_k)``;
    ``legacy=True`` is ESPnet's ``legacy_rel_selfattn`` (use with
    :class:`LegacyRelPositionalEncoding`).
    """

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float, legacy: bool = False) -> None:
        super().__init__(n_head, n_feat, dropout_rate)
        self.shift = legacy_rel_shift if legacy else rel_shift
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(self.h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(self.h, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def forward(  # type: ignore[override]
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        pos_emb: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """``pos_emb``: ``(1, 2T-1, D)``; ``mask``: bool keep-mask ``(B, 1, T)`` or ``None``."""
        q = self._heads(self.linear_q(query))
        k = self._heads(self.linear_k(key))
        v = self._heads(self.linear_v(value))
        return self._merge(self._attend_relative(q, k, v, self._positions(pos_emb), mask))

    def forward_packed(
        self, x: torch.Tensor, pos_emb: torch.Tensor, lengths: list[int]
    ) -> torch.Tensor:
        """Self-attention within each utterance of packed frames (``espnet_model.packed``).

        ``x`` ``(N, D)`` holds utterances of ``lengths`` frames one after another;
        ``pos_emb`` ``(1, 2T-1, D)`` is the padded batch's (``T >= max(lengths)``).
        Equals :meth:`forward` on the padded batch with its padding masked, on valid
        frames. Projections run once over all ``N`` frames; scores per utterance.
        """
        if self.shift is not rel_shift:
            raise ValueError("forward_packed needs rel_pos_type: latest (not legacy)")
        n_frames = x.size(0)
        q, k, v = (
            layer(x).view(n_frames, self.h, self.d_k)
            for layer in (self.linear_q, self.linear_k, self.linear_v)
        )
        p = self._positions(pos_emb)
        centre = (p.size(-1) - 1) // 2  # column of relative position 0
        outs = []
        for q_i, k_i, v_i in zip(q.split(lengths), k.split(lengths), v.split(lengths), strict=True):
            n = q_i.size(0)
            q_i, k_i, v_i = (t.unsqueeze(0).transpose(1, 2) for t in (q_i, k_i, v_i))
            out = self._attend_relative(q_i, k_i, v_i, p[..., centre - n + 1 : centre + n], None)
            outs.append(out[0].transpose(0, 1).reshape(n, self.h * self.d_k))
        return self.linear_out(torch.cat(outs))

    def _positions(self, pos_emb: torch.Tensor) -> torch.Tensor:
        """``(1, P, D)`` position embeddings -> per-head keys ``(1, H, d_k, P)``."""
        return self.linear_pos(pos_emb).view(1, -1, self.h, self.d_k).permute(0, 2, 3, 1)

    def _attend_relative(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        p: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Heads ``(B, H, T, d_k)`` with position keys ``p`` -> ``(B, H, T, d_k)``."""
        scale = 1.0 / math.sqrt(self.d_k)
        q_v = (q + self.pos_bias_v.unsqueeze(1)) * scale
        bias = self.shift(torch.matmul(q_v, p))  # (B, H, T, T)
        if mask is not None:
            bias = bias.masked_fill(~mask.unsqueeze(1), float("-inf"))
        return F.scaled_dot_product_attention(
            q + self.pos_bias_u.unsqueeze(1),
            k,
            v,
            attn_mask=bias,
            dropout_p=self.dropout_rate if self.training else 0.0,
        )
