"""collect_stats: frame count, sum and sum of squares of the frontend's features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from espnet_model import Fbank
from espnet_train import collect_stats

from tests._fixtures import Pipeline, read_samples


def test_matches_a_direct_computation(pipeline: Pipeline, tmp_path: Path) -> None:
    frontend = Fbank(n_mels=40)
    out = tmp_path / "stats" / "feats_stats.npz"
    out.parent.mkdir()
    info = collect_stats(pipeline.data / "train", frontend, out, max_seconds=7.0)
    count, total, total_sq, utts = 0, 0.0, 0.0, 0
    with torch.inference_mode():
        for sample in read_samples(pipeline.data / "train"):
            audio = torch.as_tensor(sample["audio"])[None]
            feats, lengths = frontend(audio, torch.tensor([audio.shape[1]]))
            valid = feats[0, : lengths[0]].double()
            count += valid.shape[0]
            total = total + valid.sum(0)
            total_sq = total_sq + (valid**2).sum(0)
            utts += 1
    stats = np.load(out)
    assert int(stats["count"]) == count == info["frames"]
    assert info["utterances"] == utts == 24
    np.testing.assert_allclose(stats["sum"], total.numpy(), rtol=1e-4)
    np.testing.assert_allclose(stats["sum_square"], total_sq.numpy(), rtol=1e-4)
    np.testing.assert_allclose(info["mean"], (total / count).numpy(), rtol=1e-4)
    assert not list(out.parent.glob(".*.tmp"))  # written atomically


def test_no_shards_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="create_dataset"):
        collect_stats(tmp_path, Fbank(n_mels=40), tmp_path / "x.npz")
