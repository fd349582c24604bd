"""images/*.png: one PNG per statistic of the per-epoch history."""

from __future__ import annotations

from pathlib import Path

from espnet_train.plots import plot_history

PNG = b"\x89PNG\r\n\x1a\n"


def test_one_png_per_stat(tmp_path: Path) -> None:
    history = [
        {"epoch": 1, "train/loss": 3.0, "valid/loss": 3.5, "train/acc": 0.1, "valid/acc": 0.2, "lr": 1e-3},
        {"epoch": 2, "train/loss": 2.0, "valid/loss": 2.5, "train/acc": 0.3, "valid/acc": None, "lr": 5e-4},
    ]
    written = plot_history(history, tmp_path / "images")
    assert sorted(p.name for p in written) == ["acc.png", "loss.png", "lr.png"]
    for path in written:
        assert path.read_bytes()[:8] == PNG
    assert not [p for p in (tmp_path / "images").iterdir() if p.name.startswith(".")]  # no temp files left


def test_multi_optimizer_stats_get_flat_names(tmp_path: Path) -> None:
    written = plot_history([{"epoch": 1, "train/generator/loss": 1.0, "lr_0": 0.1}], tmp_path)
    assert sorted(p.name for p in written) == ["generator_loss.png", "lr_0.png"]
