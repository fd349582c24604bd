"""Run benchmarks, print a table, write ``benchmarks/out/NAME.json``.

Usage::

    just bench train                                           # one benchmark
    just bench all                                             # every benchmark
    uv run --locked python benchmarks/run.py decode --quick    # smoke run (or BENCH_QUICK=1)
    uv run --locked python benchmarks/run.py --list            # what there is

A benchmark is ``benchmarks/NAME.py`` (NAME not starting with ``_``) with a
``run(quick: bool) -> dict``. The JSON holds the machine (CPUs, load average,
torch and its threads, date, and ``core_scaling`` before and after the run: how
many cores' worth of work two single-thread processes got done at once, see
``_harness.core_scaling``), the settings, and this project's and the peer's
figures from the same run side by side. Peers run in ``benchmarks/.peer``; make it
with ``bash benchmarks/peer/setup.sh``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
sys.path.insert(0, str(BENCH_DIR))


def available() -> list[str]:
    return sorted(
        p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_") and p.stem != "run"
    )


def machine_info() -> dict[str, Any]:
    import torch
    from _harness import PEER_PYTHON, num_threads

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
            cwd=BENCH_DIR, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "bench_threads": num_threads(),
        "git_commit": commit,
        "peer_venv": str(PEER_PYTHON.parent.parent) if PEER_PYTHON.exists() else None,
    }


def out_path(name: str) -> Path:
    """``benchmarks/out/NAME.json`` (``NAME.DEVICE.json`` when ``BENCH_DEVICE`` is not cpu)."""
    device = os.environ.get("BENCH_DEVICE", "cpu")
    return OUT_DIR / (f"{name}.json" if device == "cpu" else f"{name}.{device}.json")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(name: str, result: dict[str, Any]) -> str:
    rows = [("metric", "unit", "ours", "peer (ESPnet2)", "ours/peer")]
    for m in result["metrics"]:
        ratio = "-"
        if isinstance(m["ours"], int | float) and isinstance(m["peer"], int | float) and m["peer"]:
            ratio = f"{m['ours'] / m['peer']:.2f}x"
        rows.append((m["name"], m["unit"], _fmt(m["ours"]), _fmt(m["peer"]), ratio))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"== {name}: {result.get('description', '')}"]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_one(name: str, quick: bool) -> dict[str, Any]:
    module = importlib.import_module(name)
    if not callable(getattr(module, "run", None)):
        raise SystemExit(f"benchmarks/{name}.py has no run(quick: bool) -> dict; add one")
    from _harness import core_scaling

    machine = {**machine_info(), "core_scaling": core_scaling()}
    start = time.perf_counter()
    result = module.run(quick=quick)
    wall_s = round(time.perf_counter() - start, 2)
    record = {
        "benchmark": name,
        "machine": machine,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "core_scaling_after": core_scaling(),
        "wall_s": wall_s,
        **result,
    }
    out = out_path(name)
    write_json_atomic(out, record)
    print(format_table(name, result))
    print(
        f"(cpus {machine['cpu_count']}, load {machine['load_average']} -> "
        f"{record['load_average_after']}, {record['wall_s']} s; written {out.relative_to(BENCH_DIR.parent)})"
    )
    before, after = machine["core_scaling"], record["core_scaling_after"]
    print(
        f"(cores: {before['processes']} single-thread matmul processes did "
        f"{before['scaling']}x the work of one before the run, {after['scaling']}x after; "
        f"~{before['processes']} on idle, independent cores)"
    )
    return record


def main(argv: list[str] | None = None) -> int:
    from _harness import quick_requested

    names = available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", nargs="?", default="all", help=f"one of: all, {', '.join(names)}")
    parser.add_argument("--quick", action="store_true", help="few iterations (also BENCH_QUICK=1)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(names))
        return 0
    if args.name != "all" and args.name not in names:
        parser.error(
            f"unknown benchmark {args.name!r}: no benchmarks/{args.name}.py. "
            f"Available: all, {', '.join(names)}"
        )
    quick = args.quick or quick_requested([])
    for name in names if args.name == "all" else [args.name]:
        run_one(name, quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
