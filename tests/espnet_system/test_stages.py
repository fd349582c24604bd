"""resolve_stages: what the user typed, in the order stages must run."""

from __future__ import annotations

import pytest
from espnet_system import ASRSystem, StageError, resolve_stages

CANON = ("a", "b", "c", "upload")


def test_canonical_order_whatever_was_typed() -> None:
    assert resolve_stages(["c", "a"], CANON) == ["a", "c"]
    assert resolve_stages(["infer", "train"], ASRSystem.stages) == ["train", "infer"]


def test_duplicates_run_once() -> None:
    assert resolve_stages(["b", "b", "a", "b"], CANON) == ["a", "b"]


def test_all_leaves_out_explicit_only_stages_unless_named() -> None:
    assert resolve_stages(["all"], CANON, skip_in_all={"upload"}) == ["a", "b", "c"]
    assert resolve_stages(["upload", "all"], CANON, skip_in_all={"upload"}) == list(CANON)
    assert "upload_model" not in resolve_stages(["all"], ASRSystem.stages,
                                                skip_in_all=ASRSystem.explicit_only)


def test_unknown_stage_lists_the_valid_ones() -> None:
    with pytest.raises(StageError, match=r"unknown stage 'trian'.*a, b, c, upload"):
        resolve_stages(["a", "trian"], CANON)


def test_nothing_requested_is_an_error() -> None:
    with pytest.raises(StageError, match="no stage given"):
        resolve_stages([], CANON)


def test_stage_error_is_a_value_error() -> None:
    assert issubclass(StageError, ValueError)
