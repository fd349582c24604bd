"""Tests for espnet_data.parallel: the worker pool of the data jobs."""

from __future__ import annotations

import os

import pytest
from espnet_data.parallel import _limit_blas_threads, map_unordered


def _square_plus(context: int, item: int) -> tuple[int, int]:
    return item * item + context, os.getpid()


def _fail_on_3(context: None, item: int) -> int:
    if item == 3:
        raise ValueError(f"item {item} is bad")
    return item


def _torch_threads(context: None, item: int) -> int:
    import torch

    return torch.get_num_threads()


def test_serial_runs_in_order_in_this_process() -> None:
    out = list(map_unordered(_square_plus, range(5), context=10, num_workers=1))
    assert [i for i, _ in out] == [0, 1, 2, 3, 4]
    assert [r[0] for _, r in out] == [10, 11, 14, 19, 26]
    assert {r[1] for _, r in out} == {os.getpid()}


def test_pool_gives_every_result_with_its_index() -> None:
    out = dict(map_unordered(_square_plus, iter(range(20)), context=1, num_workers=2, max_pending=3))
    assert {i: r[0] for i, r in out.items()} == {i: i * i + 1 for i in range(20)}
    assert os.getpid() not in {r[1] for r in out.values()}


def test_a_failing_item_raises_here() -> None:
    with pytest.raises(ValueError, match="item 3 is bad"):
        list(map_unordered(_fail_on_3, range(8), context=None, num_workers=2))


def test_pool_workers_compute_on_one_thread() -> None:
    out = dict(map_unordered(_torch_threads, range(4), context=None, num_workers=2))
    assert set(out.values()) == {1}


def test_limit_blas_threads_finds_numpys_openblas() -> None:
    import numpy as np

    np.ones((4, 4)) @ np.ones((4, 4))  # make sure numpy's BLAS is loaded
    # on Linux numpy's wheels bundle OpenBLAS; other platforms may have none to find
    if os.path.exists("/proc/self/maps"):
        assert any("blas" in path for path in _limit_blas_threads())
