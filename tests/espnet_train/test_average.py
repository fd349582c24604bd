"""average_checkpoints: the element-wise mean of the wrapped model's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from espnet_train import average_checkpoints
from espnet_train.average import best_checkpoints, model_state
from espnet_train.checkpoints import write_ranking


def _ckpt(path: Path, w: torch.Tensor, steps: int) -> Path:
    torch.save(
        {
            "state_dict": {
                "model.layer.weight": w,
                "model.bn.num_batches_tracked": torch.tensor(steps),
                "other.thing": torch.zeros(1),
            },
            "epoch": 0,
        },
        path,
    )
    return path


def test_two_checkpoints_average_to_their_mean(tmp_path: Path) -> None:
    a = torch.randn(3, 4)
    b = torch.randn(3, 4)
    out = average_checkpoints([_ckpt(tmp_path / "a.ckpt", a, 5), _ckpt(tmp_path / "b.ckpt", b, 9)])
    assert set(out) == {"layer.weight", "bn.num_batches_tracked"}  # "model." stripped, rest dropped
    torch.testing.assert_close(out["layer.weight"], (a + b) / 2)
    assert out["layer.weight"].dtype == torch.float32
    assert out["bn.num_batches_tracked"].item() == 5  # integer buffers: the first (best) one's


def test_one_checkpoint_is_itself(tmp_path: Path) -> None:
    a = torch.randn(2, 2)
    out = average_checkpoints([_ckpt(tmp_path / "a.ckpt", a, 1)])
    torch.testing.assert_close(out["layer.weight"], a)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        average_checkpoints([])
    bad = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="plain.pt"):
        model_state(bad)


def test_integer_buffers_come_from_the_best_in_ranking_order(tmp_path: Path) -> None:
    """Averaged in ranking order (best first), the integer buffers are the best checkpoint's."""
    worse = _ckpt(tmp_path / "epoch000.ckpt", torch.zeros(2), 3)
    best = _ckpt(tmp_path / "epoch001.ckpt", torch.ones(2), 7)
    write_ranking(tmp_path, {str(worse): 2.0, str(best): 1.0}, monitor="valid/loss", mode="min")
    ranked = best_checkpoints(tmp_path, 2, monitor="valid/loss", mode="min")
    assert ranked == [best, worse]
    assert average_checkpoints(ranked)["bn.num_batches_tracked"].item() == 7


def test_checkpoints_of_different_models_are_not_averaged(tmp_path: Path) -> None:
    a = _ckpt(tmp_path / "a.ckpt", torch.zeros(2), 1)
    torch.save({"state_dict": {"model.other.weight": torch.zeros(2)}}, tmp_path / "b.ckpt")
    with pytest.raises(ValueError, match=r"b\.ckpt holds other weights than .*a\.ckpt"):
        average_checkpoints([a, tmp_path / "b.ckpt"])


def test_best_checkpoints_rank_by_mode(tmp_path: Path) -> None:
    paths = [tmp_path / f"e{i}.ckpt" for i in range(3)]
    for p in paths:
        p.touch()
    scores = {str(paths[0]): 3.0, str(paths[1]): 1.0, str(paths[2]): 2.0}
    write_ranking(tmp_path, scores, monitor="valid/loss", mode="min")
    assert best_checkpoints(tmp_path, 2, monitor="valid/loss", mode="min") == [paths[1], paths[2]]
    write_ranking(tmp_path, scores, monitor="valid/acc", mode="max")
    assert best_checkpoints(tmp_path, 2, monitor="valid/acc", mode="max") == [paths[0], paths[2]]
