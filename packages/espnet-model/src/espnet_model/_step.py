"""Weights laid out for one-token steps (:class:`~espnet_model.IncrementalDecoder`, the
transformer LM's cached scoring): arguments for torch's functions, called directly; and
:class:`NodeStore`, the prefix-tree key/value cache both steps share between rows.

At a handful of rows a step is bound by per-call overhead and by reading the weights,
not by arithmetic: module calls and ``F`` wrappers cost more than the matrix products.
And MKL multiplies a few rows by a matrix on one thread: on a CPU with two or more torch
threads, a weight of at least :data:`SPLIT_MIN_ELEMENTS` is laid out as two column halves
and multiplied as a batch of two (one half per thread, each reading half the weights).
On the 2-core development machine (10 rows, fp32, 2 threads, weights not in cache):
256 x 1024 took 150 us as one matrix and 79 us split, 1024 x 256 137 / 79, 512 x 2048
694 / 419; at 40 and 100 rows split was no slower; below ~0.5 MB (e.g. 144 x 576, in L2)
it gained nothing, so those stay whole. A beam-10 transformer-LM search ran 1.16x faster
(paired passes, identical hypotheses).
"""

from __future__ import annotations

import torch
from torch import nn


def norm_params(norm: nn.LayerNorm) -> tuple:
    """The arguments after the input of ``torch.layer_norm`` for ``norm``."""
    return norm.normalized_shape, norm.weight, norm.bias, norm.eps


SPLIT_MIN_ELEMENTS = 1 << 17  # 512 KB of float32: larger weights are split in columns


def _column_parts(weight: torch.Tensor) -> int:
    """How many column blocks :func:`affine` multiplies ``weight`` ``(K, N)`` in: 2 for a
    large weight on a CPU with two or more torch threads (N even), else 1."""
    rows, columns = weight.shape
    if (
        weight.device.type != "cpu"
        or torch.get_num_threads() < 2
        or rows * columns < SPLIT_MIN_ELEMENTS
        or columns % 2
    ):
        return 1
    return 2


def _laid_out(bias: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bias, weight)`` for :func:`affine` from ``weight`` ``(K, N)`` (transposed already):
    as they are, or as ``parts`` column blocks ``(parts, 1, N / parts)`` and
    ``(parts, K, N / parts)``."""
    parts = _column_parts(weight)
    if parts == 1:
        return bias, weight.contiguous()
    rows, columns = weight.shape
    width = columns // parts
    return (
        bias.reshape(parts, 1, width).contiguous(),
        weight.reshape(rows, parts, width).permute(1, 0, 2).contiguous(),
    )


def affine_params(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bias, weight transposed)`` of ``linear`` (perhaps in column blocks), for
    :func:`affine`."""
    return _laid_out(linear.bias, linear.weight.t())


def stacked_affine_params(*linears: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`affine_params` of the linears stacked along their outputs (e.g. q, k, v)."""
    return _laid_out(
        torch.cat([linear.bias for linear in linears]),
        torch.cat([linear.weight for linear in linears]).t(),
    )


def affine(params: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``bias + x @ weight`` ``(n, N)`` for ``x`` ``(n, K)`` and ``params`` from
    :func:`affine_params`: one ``addmm``, or one ``baddbmm`` over the column blocks."""
    bias, weight = params
    if weight.dim() == 2:
        return torch.addmm(bias, x, weight)
    parts = weight.shape[0]
    out = torch.baddbmm(bias, x.expand(parts, *x.shape), weight)  # (parts, n, N / parts)
    return out.transpose(0, 1).reshape(x.shape[0], -1)


def spare_nodes(rows: int, live: int = 0) -> int:
    """Free nodes a new :class:`NodeStore` gets beyond its ``live`` ones: as many as are
    live, and at least a few steps of ``rows`` rows.

    A step attends over every node of the store, the dead ones (pruned prefixes) at
    -inf, so the spare room bounds that waste: a store is compacted when full, and so
    holds at most about twice its live nodes. (With a fixed 32 steps of room, a beam of
    10 attended over 355 nodes on average, of which 134 were live.)"""
    return max(4 * rows + 32, live)


class NodeStore:
    """Keys and values of prefix-tree nodes, ``kv`` ``(layers, 2, heads, capacity, d_k)``,
    and ``keep`` ``(capacity,)`` (a transformer LM's mask of padding tokens).

    Every token a step feeds is a node; a step's state says per row which nodes are on
    its prefix (``paths``, bool ``(n, nodes)``), so reordering rows reorders ``paths``,
    never the keys and values. Nodes ``[0, size)`` are written. A step appends its rows'
    nodes at ``size`` only if ``size`` is still the width of its state's ``paths`` (no
    other step appended since); otherwise, or when full, it copies the nodes its rows use
    into a new store (:meth:`for_step`). So written nodes never change, and every state
    stays valid.
    """

    def __init__(self, kv: torch.Tensor, keep: torch.Tensor) -> None:
        self.kv, self.keep, self.size = kv, keep, 0

    @classmethod
    def empty(cls, layers: int, heads: int, d_k: int, capacity: int, like: torch.Tensor):
        kv = like.new_empty(layers, 2, heads, capacity, d_k)
        return cls(kv, torch.empty(capacity, dtype=torch.bool, device=like.device))

    @property
    def capacity(self) -> int:
        return self.kv.size(3)

    def compacted(self, paths: torch.Tensor, room: int) -> tuple[NodeStore, torch.Tensor]:
        """A new store with only the nodes on ``paths`` ``(n, size)`` (in order) and space
        for ``room`` more; and ``paths`` over it."""
        used = paths.any(0).nonzero().view(-1)
        count = used.numel()
        layers, _, heads, _, d_k = self.kv.shape
        new = NodeStore.empty(
            layers, heads, d_k, count + room + spare_nodes(paths.size(0), count), self.kv
        )
        new.kv[:, :, :, :count] = self.kv.index_select(3, used)
        new.keep[:count] = self.keep.index_select(0, used)
        new.size = count
        return new, paths.index_select(1, used)

    @staticmethod
    def join(
        parts: list[tuple[NodeStore, torch.Tensor]], room: int
    ) -> tuple[NodeStore, list[torch.Tensor]]:
        """One store for the rows of several stores: ``parts`` are ``(store, paths)`` with
        ``paths`` ``(n_i, nodes_i)`` over that store (``nodes_i <= store.size``). Returns
        the store and each part's paths over it, all as wide as its ``size``.

        Parts that all use one store that has ``room`` free nodes keep it (their paths
        are widened with False: the nodes appended since are not on them); otherwise
        the nodes on some path are copied into a new store, one store after another,
        with space for ``room`` more.
        """
        stores: dict[int, NodeStore] = {}
        for store, _ in parts:
            stores.setdefault(id(store), store)
        if len(stores) == 1:
            store = parts[0][0]
            if store.size + room <= store.capacity:
                return store, [_widened(paths, store.size) for _, paths in parts]
        used: dict[int, torch.Tensor] = {}
        for key, store in stores.items():
            on = [_widened(paths, store.size).any(0) for s, paths in parts if id(s) == key]
            used[key] = torch.stack(on).any(0).nonzero().view(-1)
        count = sum(index.numel() for index in used.values())
        rows = sum(paths.size(0) for _, paths in parts)
        first = parts[0][0]
        layers, _, heads, _, d_k = first.kv.shape
        new = NodeStore.empty(layers, heads, d_k, count + room + spare_nodes(rows, count), first.kv)
        offsets: dict[int, int] = {}
        for key, store in stores.items():
            index, start = used[key], new.size
            new.kv[:, :, :, start : start + index.numel()] = store.kv.index_select(3, index)
            new.keep[start : start + index.numel()] = store.keep.index_select(0, index)
            offsets[key] = start
            new.size = start + index.numel()
        joined = []
        for store, paths in parts:
            index, start = used[id(store)], offsets[id(store)]
            wide = paths.new_zeros((paths.size(0), new.size))
            wide[:, start : start + index.numel()] = _widened(paths, store.size)[:, index]
            joined.append(wide)
        return new, joined

    def for_step(self, paths: torch.Tensor) -> tuple[NodeStore, torch.Tensor]:
        """The store a step of ``paths.size(0)`` rows over ``paths`` ``(n, nodes)`` appends
        to (this one, or a compacted copy), and ``paths`` over it."""
        rows = paths.size(0)
        if self.size != paths.size(1) or self.size + rows > self.capacity:
            return self.compacted(paths, rows)
        return self, paths


def _widened(paths: torch.Tensor, width: int) -> torch.Tensor:
    """``paths`` ``(n, nodes)`` with False columns appended up to ``width`` nodes."""
    if paths.size(1) == width:
        return paths
    return torch.cat([paths, paths.new_zeros((paths.size(0), width - paths.size(1)))], dim=1)
