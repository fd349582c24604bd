from __future__ import annotations

import math

import torch
from espnet_model.attention import (
    MultiHeadedAttention,
    RelPositionalEncoding,
    RelPositionMultiHeadedAttention,
    rel_shift,
)


def _espnet_rel_shift(x: torch.Tensor) -> torch.Tensor:
    zero_pad = torch.zeros((*x.size()[:3], 1), dtype=x.dtype)
    padded = torch.cat([zero_pad, x], dim=-1).view(*x.size()[:2], x.size(3) + 1, x.size(2))
    return padded[:, :, 1:].view_as(x)[:, :, :, : x.size(-1) // 2 + 1]


def test_rel_shift_matches_espnet() -> None:
    x = torch.randn(2, 3, 7, 13)
    assert torch.equal(rel_shift(x), _espnet_rel_shift(x))


def test_rel_attention_matches_explicit_formula() -> None:
    torch.manual_seed(0)
    attn = RelPositionMultiHeadedAttention(2, 8, 0.0).eval()
    x = torch.randn(2, 5, 8)
    x_scaled, pos = RelPositionalEncoding(8, 0.0)(x)
    assert pos.shape == (1, 9, 8)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2]).unsqueeze(1)
    out = attn(x_scaled, x_scaled, x_scaled, pos, mask)

    h, dk = 2, 4
    q = attn.linear_q(x_scaled).view(2, 5, h, dk).transpose(1, 2)
    k = attn.linear_k(x_scaled).view(2, 5, h, dk).transpose(1, 2)
    v = attn.linear_v(x_scaled).view(2, 5, h, dk).transpose(1, 2)
    p = attn.linear_pos(pos).view(1, 9, h, dk).transpose(1, 2)
    ac = (q + attn.pos_bias_u[:, None]) @ k.transpose(-1, -2)
    bd = _espnet_rel_shift((q + attn.pos_bias_v[:, None]) @ p.transpose(-1, -2))
    scores = ((ac + bd) / math.sqrt(dk)).masked_fill(~mask[:, None], float("-inf"))
    ref = (scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 5, 8)
    torch.testing.assert_close(out, attn.linear_out(ref), atol=1e-5, rtol=1e-5)


def test_masked_keys_are_ignored() -> None:
    attn = MultiHeadedAttention(2, 8, 0.0).eval()
    q = torch.randn(1, 3, 8)
    kv = torch.randn(1, 6, 8)
    mask = torch.tensor([[[True] * 4 + [False] * 2]])
    full = attn(q, kv, kv, mask)
    kv2 = kv.clone()
    kv2[:, 4:] = 100.0
    torch.testing.assert_close(attn(q, kv2, kv2, mask), full)
    torch.testing.assert_close(attn(q, kv[:, :4], kv[:, :4], None), full, atol=1e-6, rtol=1e-5)
