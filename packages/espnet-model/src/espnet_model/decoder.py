"""Transformer attention decoder with incremental (cached) one-step scoring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from espnet_model._step import NodeStore, spare_nodes, stacked_affine_params
from espnet_model._step import affine as _affine
from espnet_model._step import affine_params as _affine_params
from espnet_model._step import norm_params as _norm_params
from espnet_model.attention import MultiHeadedAttention, PositionalEncoding
from espnet_model.dropout import Dropout
from espnet_model.feedforward import PositionwiseFeedForward, layer_norm
from espnet_model.mask import make_non_pad_mask, subsequent_mask, target_mask


class DecoderLayer(nn.Module):
    """Masked self-attention, source attention, feed-forward (pre- or post-LN).

    With ``cache`` (this layer's outputs for all but the last position) only the
    last position is computed and appended, as in ESPnet.
    """

    def __init__(
        self,
        size: int,
        attention_heads: int,
        linear_units: int,
        dropout_rate: float,
        self_attention_dropout_rate: float,
        src_attention_dropout_rate: float,
        normalize_before: bool,
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadedAttention(attention_heads, size, self_attention_dropout_rate)
        self.src_attn = MultiHeadedAttention(attention_heads, size, src_attention_dropout_rate)
        self.feed_forward = PositionwiseFeedForward(size, linear_units, dropout_rate)
        self.norm1 = layer_norm(size)
        self.norm2 = layer_norm(size)
        self.norm3 = layer_norm(size)
        self.dropout = Dropout(dropout_rate)
        self.normalize_before = normalize_before

    def _norm(self, norm: nn.Module, x: torch.Tensor, before: bool) -> torch.Tensor:
        return norm(x) if before == self.normalize_before else x

    def forward(
        self,
        tgt: torch.Tensor,
        tgt_mask: torch.Tensor | None,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None,
        cache: torch.Tensor | None = None,
        memory_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        residual = tgt
        tgt = self._norm(self.norm1, tgt, True)
        query = tgt
        if cache is not None:
            # The last position sees the whole prefix: no self-attention mask needed.
            query, residual, tgt_mask = tgt[:, -1:], residual[:, -1:], None
        x = self._norm(
            self.norm1, residual + self.dropout(self.self_attn(query, tgt, tgt, tgt_mask)), False
        )
        if memory_kv is None:
            memory_kv = self.src_attn.project_kv(memory, memory)
        x = self._source_and_feed_forward(x, memory_kv, memory_mask)
        if cache is not None:
            x = torch.cat([cache, x], dim=1)
        return x

    def _source_and_feed_forward(
        self,
        x: torch.Tensor,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        memory_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """The source-attention and feed-forward sub-blocks, after self-attention."""
        residual = x
        x = self._norm(self.norm2, x, True)
        src = self.src_attn.attend(x, *memory_kv, memory_mask)
        x = self._norm(self.norm2, residual + self.dropout(src), False)
        residual = x
        x = self._norm(self.norm3, x, True)
        return self._norm(self.norm3, residual + self.dropout(self.feed_forward(x)), False)


class TransformerDecoder(nn.Module):
    """Embedding + absolute positions, ``num_blocks`` decoder layers, output projection.

    Args (ESPnet2 ``decoder_conf`` names):
        vocab_size: output vocabulary (including ``<blank>``, ``<unk>``, ``<sos/eos>``).
        encoder_output_size: dimension of the encoder memory (derived by the builder).
        attention_heads: heads per attention.
        linear_units: feed-forward hidden size.
        num_blocks: number of decoder layers.
        dropout_rate: dropout on residual branches.
        positional_dropout_rate: dropout after the positional encoding.
        self_attention_dropout_rate: dropout on self-attention weights.
        src_attention_dropout_rate: dropout on source-attention weights.
        normalize_before: pre-LayerNorm (plus final LayerNorm) instead of post-LN.
    """

    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        self_attention_dropout_rate: float = 0.0,
        src_attention_dropout_rate: float = 0.0,
        normalize_before: bool = True,
    ) -> None:
        super().__init__()
        size = encoder_output_size
        self.vocab_size = vocab_size
        # ESPnet2's layout: ``embed.0`` is the token embedding, ``embed.1`` the positions.
        self.embed = nn.Sequential(
            nn.Embedding(vocab_size, size), PositionalEncoding(size, positional_dropout_rate)
        )
        self.decoders = nn.ModuleList(
            DecoderLayer(
                size,
                attention_heads,
                linear_units,
                dropout_rate,
                self_attention_dropout_rate,
                src_attention_dropout_rate,
                normalize_before,
            )
            for _ in range(num_blocks)
        )
        self.after_norm = layer_norm(size) if normalize_before else None
        self.output_layer = nn.Linear(size, vocab_size)

    def _embed(self, ys: torch.Tensor) -> torch.Tensor:
        return self.embed(ys.clamp(min=0))

    def forward(
        self,
        memory: torch.Tensor,
        memory_lengths: torch.Tensor,
        ys_in: torch.Tensor,
        ys_in_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """Teacher-forced logits ``(B, L, V)`` for inputs ``ys_in`` ``(B, L)``.

        Padding in ``ys_in`` may be any id (negative ids are clamped to 0).
        """
        tgt_mask = target_mask(ys_in_lengths.to(ys_in.device), ys_in.size(1))
        memory_mask = make_non_pad_mask(memory_lengths.to(memory.device), memory.size(1)).unsqueeze(
            1
        )
        x = self._embed(ys_in)
        for layer in self.decoders:
            x = layer(x, tgt_mask, memory, memory_mask)
        if self.after_norm is not None:
            x = self.after_norm(x)
        return self.output_layer(x)

    def memory_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's source-attention keys and values of ``memory`` ``(N, T, D)``.

        They do not change while decoding one utterance: a search computes them once
        and passes them to every :meth:`forward_one_step` (rows indexed like ``memory``).
        """
        return [layer.src_attn.project_kv(memory, memory) for layer in self.decoders]

    def forward_one_step(
        self,
        ys: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None,
        cache: list[torch.Tensor] | None = None,
        memory_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Log-probabilities ``(N, V)`` of the token after each prefix ``ys`` ``(N, L)``.

        ``memory_mask`` is a bool keep-mask ``(N, 1, T)`` (or ``None``). ``cache`` is
        the list returned by the previous call (prefix one shorter, same row order;
        reorder it with ``[c[idx] for c in cache]`` after beam pruning), or ``None``.
        ``memory_kv`` (from :meth:`memory_kv`, same rows as ``memory``) skips projecting
        the memory again at every step.
        """
        x = self._embed(ys)
        tgt_mask = subsequent_mask(ys.size(1), ys.device).unsqueeze(0)
        new_cache: list[torch.Tensor] = []
        for i, layer in enumerate(self.decoders):
            c = None if cache is None else cache[i]
            kv = None if memory_kv is None else memory_kv[i]
            x = layer(x, tgt_mask, memory, memory_mask, cache=c, memory_kv=kv)
            new_cache.append(x)
        y = x[:, -1]
        if self.after_norm is not None:
            y = self.after_norm(y)
        return torch.log_softmax(self.output_layer(y), dim=-1), new_cache

    def incremental(self) -> IncrementalDecoder:
        """This decoder's weights laid out for one-token steps (see :class:`IncrementalDecoder`).

        Build it once per search, after loading weights and calling ``eval()``.
        """
        return IncrementalDecoder(self)


@dataclass(frozen=True)
class StepCache:
    """The self-attention keys and values of ``n`` prefixes, for :class:`IncrementalDecoder`.

    A prefix tree, as the transformer LM's cache: each token a step feeds is a node whose
    keys and values (every layer) are appended once to ``store``, which the caches of one
    search share; ``paths`` (bool ``(m, nodes)``) says which nodes are on each prefix, and
    ``rows`` which of its rows, in which order, are this cache's prefixes (None: all, in
    order). :meth:`select` only records rows: reordering after beam pruning copies no keys
    or values. Never written in place, so a cache may be stepped from twice.
    """

    store: NodeStore
    paths: torch.Tensor
    rows: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.paths.size(0) if self.rows is None else self.rows.numel()

    def select(self, indices: torch.Tensor) -> StepCache:
        """The cache of rows ``indices`` (``(m,)`` long, repeats allowed), in that order."""
        index = indices.to(self.paths.device)
        return replace(self, rows=index if self.rows is None else self.rows.index_select(0, index))

    def gathered_paths(self) -> torch.Tensor:
        """``paths`` of this cache's rows, in its order ``(len(self), nodes)``."""
        return self.paths if self.rows is None else self.paths.index_select(0, self.rows)

    @staticmethod
    def join(caches: Sequence[StepCache | None], rows: Sequence[int]) -> StepCache | None:
        """The prefixes of several caches as one cache, in order (e.g. the beams of
        several streams, stepped together): ``caches[i]`` holds ``rows[i]`` prefixes, or
        is None for ``rows[i]`` prefixes that have no node yet (their next step feeds
        ``sos`` at position 0). None when every one is None.

        Caches over one store share it (nothing copied); caches over several stores, or
        over a store without room for one more node per row, are copied into a new one
        (only the nodes on their paths).
        """
        if len(caches) != len(rows):
            raise ValueError(f"got {len(caches)} caches but {len(rows)} row counts")
        present = [cache for cache in caches if cache is not None]
        if not present:
            return None
        for cache, count in zip(caches, rows, strict=True):
            if cache is not None and len(cache) != count:
                raise ValueError(f"a cache holds {len(cache)} prefixes, not the {count} given")
        store, joined = NodeStore.join(
            [(cache.store, cache.gathered_paths()) for cache in present], sum(rows)
        )
        parts = iter(joined)
        paths = [
            next(parts) if cache is not None else joined[0].new_zeros((count, store.size))
            for cache, count in zip(caches, rows, strict=True)
        ]
        return StepCache(store, torch.cat(paths))


class _StepLayer:
    """One decoder layer's weights for :class:`IncrementalDecoder`, matrices transposed.

    The step calls torch's functions directly (no module calls, no ``F`` wrappers):
    at 4 rows, a step is bound by per-call overhead, not arithmetic.
    """

    def __init__(self, layer: DecoderLayer) -> None:
        attn, src, ff = layer.self_attn, layer.src_attn, layer.feed_forward
        self.heads, self.d_k = attn.h, attn.d_k
        self.scale = self.d_k**-0.5
        self.pre_norm = layer.normalize_before
        self.norm1, self.norm2, self.norm3 = map(_norm_params, (layer.norm1, layer.norm2, layer.norm3))
        self.qkv = stacked_affine_params(attn.linear_q, attn.linear_k, attn.linear_v)
        self.self_out, self.src_q, self.src_out, self.w_1, self.w_2 = map(
            _affine_params, (attn.linear_out, src.linear_q, src.linear_out, ff.w_1, ff.w_2)
        )
        self.activation = torch.relu_ if isinstance(ff.activation, nn.ReLU) else ff.activation

    def _pre(self, x: torch.Tensor, norm: tuple) -> torch.Tensor:
        return torch.layer_norm(x, *norm) if self.pre_norm else x

    def _post(self, x: torch.Tensor, norm: tuple) -> torch.Tensor:
        return x if self.pre_norm else torch.layer_norm(x, *norm)

    def step(
        self,
        x: torch.Tensor,
        kv: torch.Tensor,
        start: int,
        bias: torch.Tensor,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        memory_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """``x`` ``(n, D)`` through the layer; this layer's node keys/values ``kv``
        ``(2, H, capacity, d_k)`` get the rows' new nodes at ``[start, start + n)``, and
        ``bias`` ``(n, start + n)`` is 0 on each row's path and -inf off it."""
        rows, heads, d_k = x.shape[0], self.heads, self.d_k
        end = start + rows
        # Self-attention over every node, heads as the batch, off-path nodes at -inf.
        qkv = _affine(self.qkv, self._pre(x, self.norm1)).view(rows, 3, heads, d_k)
        kv[:, :, start:end] = qkv[:, 1:].permute(1, 2, 0, 3)
        keys, values = kv[:, :, :end]
        scores = torch.baddbmm(
            bias, qkv[:, 0].transpose(0, 1), keys.transpose(1, 2), alpha=self.scale
        )
        attended = torch.bmm(torch.softmax(scores, dim=-1), values)  # (H, n, d_k)
        attended = attended.transpose(0, 1).reshape(rows, heads * d_k)
        x = self._post(x + _affine(self.self_out, attended), self.norm1)
        # Source attention over the encoder memory: the rows of one memory row (an
        # utterance's beam) are that memory's queries, (M, H, rows / M, d_k).
        groups = memory_kv[0].shape[0]
        q = _affine(self.src_q, self._pre(x, self.norm2)).view(groups, -1, heads, d_k)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2), *memory_kv, attn_mask=memory_mask
        )
        attended = attended.transpose(1, 2).reshape(rows, heads * d_k)
        x = self._post(x + _affine(self.src_out, attended), self.norm2)
        # Feed-forward.
        hidden = self.activation(_affine(self.w_1, self._pre(x, self.norm3)))
        return self._post(x + _affine(self.w_2, hidden), self.norm3)


class IncrementalDecoder:
    """A :class:`TransformerDecoder` that scores one new token per prefix and step.

    The self-attention keys and values of the prefixes are a prefix tree
    (:class:`StepCache`): a step appends one node per row and attends over the nodes on
    each row's path, so it neither copies the prefix's keys and values into a longer
    cache nor gathers them after pruning. The weights are copied once into the layout a
    step needs (query/key/value projections stacked into one matrix, every matrix
    transposed for ``addmm``). Inference only: no dropout. Build a new one after the
    weights change.
    """

    def __init__(self, decoder: TransformerDecoder) -> None:
        with torch.no_grad():
            self.layers = [_StepLayer(layer) for layer in decoder.decoders]
            self.output = _affine_params(decoder.output_layer)
        self.embedding, self.positions = decoder.embed[0].weight, decoder.embed[1]
        norm = decoder.after_norm
        self.after_norm = None if norm is None else _norm_params(norm)

    def step(
        self,
        tokens: torch.Tensor,
        position: int | torch.Tensor,
        memory_kv: list[tuple[torch.Tensor, torch.Tensor]],
        memory_mask: torch.Tensor | None,
        cache: StepCache | None = None,
    ) -> tuple[torch.Tensor, StepCache]:
        """Log-probabilities ``(N, V)`` of the next token, feeding only the last one.

        ``tokens`` ``(N,)`` are the last tokens of each prefix (``sos`` first), at
        ``position`` (0 for ``sos``): one for all rows, or a long tensor ``(N,)`` of
        each row's (prefixes of different lengths stepped together). ``cache`` is what
        the previous step returned (None at position 0), its rows reordered like the
        prefixes with :meth:`StepCache.select`, or several caches joined with
        :meth:`StepCache.join`. ``memory_kv`` comes from
        :meth:`TransformerDecoder.memory_kv` for ``M`` memories and ``memory_mask`` is
        their bool keep-mask ``(M, 1, T)`` or None: one memory per prefix (``M = N``),
        or one per group of ``N / M`` consecutive prefixes (an utterance's beam, whose
        queries then attend to its memory together). Gives what
        :meth:`TransformerDecoder.forward_one_step` gives for the whole prefix.
        """
        rows = tokens.shape[0]
        if cache is None:
            first = self.layers[0]
            store = NodeStore.empty(
                len(self.layers), first.heads, first.d_k, spare_nodes(rows), self.embedding
            )
            old = tokens.new_zeros((rows, 0), dtype=torch.bool)
        else:
            store, old = cache.store.for_step(cache.gathered_paths())
        start = store.size
        store.size = start + rows  # this step's nodes, one per row
        paths = torch.cat([old, torch.eye(rows, dtype=torch.bool, device=tokens.device)], dim=1)
        bias = paths.to(self.embedding.dtype).log_()  # 0 on a row's path, -inf off it
        x = torch.embedding(self.embedding, tokens.clamp(min=0))
        x = x * self.positions.xscale + self.positions.encoding(position, x)
        mask = None if memory_mask is None else memory_mask.unsqueeze(1)
        for i, layer in enumerate(self.layers):
            x = layer.step(x, store.kv[i], start, bias, memory_kv[i], mask)
        if self.after_norm is not None:
            x = torch.layer_norm(x, *self.after_norm)
        logp = torch.log_softmax(_affine(self.output, x), dim=-1)
        return logp, StepCache(store, paths)
