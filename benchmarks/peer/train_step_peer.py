"""Peer side of ``benchmarks/train.py``: ESPnet2's ``ESPnetASRModel`` training step.

Usage (in the peer venv; ``benchmarks/train.py`` writes the request)::

    benchmarks/.peer/bin/python benchmarks/peer/train_step_peer.py REQUEST.json

``"autocast": "bf16"`` in the request runs the forward under bf16 autocast.
Prints one JSON object: parameters, threads, torch/espnet versions, peak RSS of this
process (``peak_rss_mb``, from ``ru_maxrss``), and the step times (median_s, min_s, max_s, times_s) over ``iterations`` steps after ``warmup``.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from espnet2_model import build_espnet2_model


def main(request_file: str) -> None:
    request = json.loads(Path(request_file).read_text())
    torch.set_num_threads(int(request["threads"]))
    torch.manual_seed(int(request["seed"]))
    model = build_espnet2_model(request["model"])
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=float(request["lr"]))
    arrays = np.load(request["batch_file"])
    batch = {k: torch.from_numpy(arrays[k]) for k in ("speech", "speech_lengths", "text", "text_lengths")}

    # "bf16": CPU/GPU autocast around the forward, as Lightning's bf16-mixed does
    bf16 = request.get("autocast") == "bf16"
    device_type = "cuda" if next(model.parameters()).is_cuda else "cpu"

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            loss, _, _ = model(**batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(request["clip"]))
        optimizer.step()

    for _ in range(int(request["warmup"])):
        step()
    times = []
    for _ in range(int(request["iterations"])):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)

    import espnet

    print(json.dumps({
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "espnet": espnet.__version__,
        "autocast": "bf16" if bf16 else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
        "warmup": int(request["warmup"]),
        "iterations": int(request["iterations"]),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
