"""Per-epoch PNG plots of the training history (ESPnet2's ``exp/<tag>/images/``).

One image per statistic: ``loss.png`` (train and valid), ``acc.png``, ``loss_ctc.png``,
``loss_att.png``, ..., and ``lr.png``. Drawn with matplotlib's object API (no pyplot,
no global figure state) on the Agg canvas; each file is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from espnet_data.atomic import atomic_open

EpochRow = dict[str, Any]  # {"epoch": 1, "train/loss": ..., "valid/loss": ..., "lr": ...}


def plot_history(history: Sequence[EpochRow], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write one PNG per statistic of ``history`` into ``out_dir``; return the paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats: dict[str, list[str]] = {}
    for row in history:
        for key in row:
            if key == "epoch":
                continue
            stat = key.split("/", 1)[1] if key.startswith(("train/", "valid/")) else key
            if key not in stats.setdefault(stat, []):
                stats[stat].append(key)
    written = []
    for stat, keys in sorted(stats.items()):
        fig = Figure(figsize=(6, 4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for key in sorted(keys):
            points = [(row["epoch"], row[key]) for row in history if row.get(key) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=key.split("/", 1)[0] if "/" in key else key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(stat)
        ax.set_title(stat)
        ax.grid(True, alpha=0.3)
        if stat == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        ax.legend()
        path = out / f"{stat.replace('/', '_')}.png"
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png")
        written.append(path)
    return written
