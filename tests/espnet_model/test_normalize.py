from __future__ import annotations

from pathlib import Path

import pytest
import torch
from espnet_model.normalize import GlobalMVN, UtteranceMVN, load_feats_stats

np = pytest.importorskip("numpy")


def _write_stats(path: Path, feats: torch.Tensor) -> None:
    x = feats.double().numpy()
    np.savez(path, count=np.array(x.shape[0]), sum=x.sum(0), sum_square=(x * x).sum(0))


def test_global_mvn_loads_espnet2_layout(tmp_path: Path) -> None:
    feats = torch.randn(500, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0]) + 5.0
    stats = tmp_path / "feats_stats.npz"
    _write_stats(stats, feats)
    assert set(load_feats_stats(stats)) == {"count", "sum", "sum_square"}
    mvn = GlobalMVN(stats, num_features=4)
    torch.testing.assert_close(mvn.mean, feats.mean(0), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mvn.std, feats.std(0, unbiased=False), atol=1e-4, rtol=1e-4)
    out, _ = mvn(feats.view(2, 250, 4), torch.tensor([250, 100]))
    assert (out[1, 100:] == 0).all()

    restored = GlobalMVN(None, num_features=4)
    restored.load_state_dict(mvn.state_dict())
    torch.testing.assert_close(restored.mean, mvn.mean)
    torch.testing.assert_close(restored.std, mvn.std)


def test_global_mvn_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="stats_file"):
        GlobalMVN(tmp_path / "missing.npz")
    stats = tmp_path / "s.npz"
    _write_stats(stats, torch.randn(10, 3))
    with pytest.raises(ValueError, match="num_features"):
        GlobalMVN(stats, num_features=80)
    np.savez(tmp_path / "bad.npz", mean=np.zeros(3))
    with pytest.raises(ValueError, match="sum"):
        GlobalMVN(tmp_path / "bad.npz", num_features=3)


def test_utterance_mvn_ignores_padding() -> None:
    x = torch.randn(2, 10, 3) + 4.0
    y, _ = UtteranceMVN(norm_vars=True)(x, torch.tensor([10, 6]))
    torch.testing.assert_close(y[1, :6].mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y[1, :6].std(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    assert (y[1, 6:] == 0).all()
