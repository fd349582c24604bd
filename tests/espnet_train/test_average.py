"""average_checkpoints: the element-wise mean of the wrapped model's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from espnet_train import average_checkpoints
from espnet_train.average import best_checkpoints, model_state


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
    assert out["bn.num_batches_tracked"].item() == 9  # integer buffers: the last one's


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


def test_best_checkpoints_rank_by_mode(tmp_path: Path) -> None:
    paths = [tmp_path / f"e{i}.ckpt" for i in range(3)]
    for p in paths:
        p.touch()
    scores = {str(paths[0]): 3.0, str(paths[1]): 1.0, str(paths[2]): 2.0}
    assert best_checkpoints(tmp_path, scores, 2, "min") == [paths[1], paths[2]]
    assert best_checkpoints(tmp_path, scores, 2, "max") == [paths[0], paths[2]]
    # no scores (e.g. nothing monitored): every checkpoint in the folder
    assert best_checkpoints(tmp_path, {}, 2, "min") == sorted(paths)
