"""Training throughput: this project's trainer vs ESPnet2's ``ESPnetASRModel`` step.

Usage::

    just bench train                                         # full run (~6 min on 2 cores)
    uv run --locked python benchmarks/run.py train --quick   # smoke run (or BENCH_QUICK=1)
    bash benchmarks/peer/setup.sh                            # once: the ESPnet2 peer venv

The model is issue 4's shape, built from an ESPnet2-style block on both sides:
conformer encoder (output 144, 4 heads, 576 linear units, 6 blocks, conv2d input),
transformer decoder (2 blocks, 576 units, 4 heads), CTC weight 0.3, label smoothing
0.1, 80-dim fbank, utterance MVN, vocabulary 100. One batch of 8 seeded random
utterances of 4-12 s (about 10 tokens per second of audio) is trained again and again.

* Ours runs ``espnet_train.LitESPnetModel`` inside ``lightning.Trainer`` (the real
  training step: rank-synchronised NaN check, backward, clip at 5.0, Adam step, logging);
  a step is timed from ``on_train_batch_start`` to ``on_train_batch_end``.
* The peer (``benchmarks/peer/train_step_peer.py`` in ``benchmarks/.peer``) runs
  forward, backward, clip at 5.0 and an Adam step on ESPnet2's model. The same bare
  step on our model (a copy, before the trainer runs) is reported as "model only", so
  the trainer's own cost shows as the difference.

Each side runs in a fresh process on ``BENCH_THREADS`` (default 2) threads, so peak RSS
(``ru_maxrss``) compares like with like. The fp32 figures come from ``ROUNDS`` (3)
alternating rounds, ours then the peer, each a fresh process with 3 warm-up and 7 timed
steps: this machine's speed drifts by 10-15% over minutes, and alternating lets the
drift reach both sides alike. The figure is the median of the pooled 21 timed steps
(bf16: one process each, 20 steps after 3 warm-up); throughput = audio seconds in the
batch / median step; peak RSS is the highest of the rounds.
``mfu`` = model FLOPs per step (forward + backward, counted by
``torch.utils.flop_counter``) / median step / the fp32 matmul peak (2048^3 on the same
threads) measured in the same process (``bf16_mfu``: over the bf16 matmul peak, measured
in the bf16 process). A bf16-autocast row (ours: ``precision: bf16-mixed``;
the peer: its forward under ``torch.autocast(dtype=torch.bfloat16)``) is reported too.
``ratio`` compares fp32 with fp32. ``bf16_ratio_vs_peer_fp32`` compares what each
trainer can do on a CPU: ESPnet2's trainer autocasts on CUDA only
(``autocast("cuda", enabled=use_amp)`` in ``espnet2/train/trainer.py``), so on a CPU it
trains at its fp32 figure, while ours trains in bf16 where the CPU has native bf16.
The peer's bf16 row is a bare step written for this benchmark, not something its
trainer runs. Both bf16 rows are skipped, with the reason in the JSON (``bf16_skipped``),
where ``espnet_train.train`` would train a ``bf16-mixed`` config in fp32: a CPU without
native bf16 (no ``avx512_bf16``/``amx_bf16`` flag), where oneDNN emulates bf16 and one
such row ran for over 17 minutes; or a CUDA device without bf16. ``BENCH_BF16=1`` runs
them anyway, ``BENCH_BF16=0`` skips them; either way each bf16 process is stopped after
``BENCH_BF16_TIMEOUT_S`` (default 900) seconds and its row marked skipped. Each finished
row (every process of either side) is written to ``benchmarks/out/train.json``
(atomically, ``"partial": true``) before the next starts, so a run stopped midway keeps
what it measured; the full record replaces it at the end. Our worker calls ``keep_freed_host_memory()`` as ``espnet_train.train``
does (``trainer.keep_host_memory``); the peer process keeps glibc's defaults, as
ESPnet2 does.

The batch is the issue's: ``BATCH`` utterances with lengths drawn from 4-12 s (29%
padding). ``BENCH_SECONDS=7.5,8.5`` draws them from another range, e.g. to see a
length-sorted batch's figures (there our conformer runs padded: ``espnet_model.packed``).

On a GPU (``BENCH_DEVICE=cuda``): the same model and batch (``BENCH_BATCH`` utterances,
default 8) on one CUDA device, fp32 and bf16-mixed; steps are timed between
``torch.cuda.synchronize()`` calls, peak memory is ``torch.cuda.max_memory_allocated``,
and the matmul peaks are 8192^3 products on that device. The ESPnet2 peer runs only
where its venv exists (on the CPU machine).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _harness import (
    SAMPLE_RATE,
    matmul_peak,
    metric,
    num_threads,
    peer_model_spec,
    peer_value,
    run_peer,
    sync,
    token_list,
)

VOCAB = 100
BATCH = int(os.environ.get("BENCH_BATCH", "8"))
DEVICE = os.environ.get("BENCH_DEVICE", "cpu")
BF16_TIMEOUT_S = float(os.environ.get("BENCH_BF16_TIMEOUT_S", "900"))


def _seconds_range(value: str) -> tuple[float, float]:
    """``BENCH_SECONDS`` ("MIN,MAX"): the range the utterance lengths are drawn from."""
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        raise ValueError(f"BENCH_SECONDS={value!r} must be MIN,MAX seconds, e.g. 4,12") from None
    if not 1.0 <= low <= high:
        raise ValueError(f"BENCH_SECONDS={value!r} needs 1 <= MIN <= MAX, e.g. 4,12")
    return low, high


MIN_S, MAX_S = _seconds_range(os.environ.get("BENCH_SECONDS", "4,12"))
TOKENS_PER_S = 10
ROUNDS = 3  # fp32: alternating processes of ours and the peer, their steps pooled
LR = 0.002
CLIP = 5.0
SEED = 0

MODEL: dict[str, Any] = {
    "frontend": "default",
    "frontend_conf": {"n_mels": 80},
    "specaug": None,
    "normalize": "utterance_mvn",
    "encoder": "conformer",
    "encoder_conf": {"output_size": 144, "attention_heads": 4, "linear_units": 576, "num_blocks": 6,
                     "input_layer": "conv2d"},
    "decoder": "transformer",
    "decoder_conf": {"attention_heads": 4, "linear_units": 576, "num_blocks": 2},
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1},
}


def make_batch(path: Path, seed: int = SEED) -> dict[str, np.ndarray]:
    """``BATCH`` utterances of MIN_S-MAX_S s of seeded noise, random transcripts; saved to ``path``."""
    rng = np.random.default_rng(seed)
    seconds = rng.uniform(MIN_S, MAX_S, size=BATCH)
    lengths = (seconds * SAMPLE_RATE).astype(np.int64)
    speech = np.zeros((BATCH, int(lengths.max())), dtype=np.float32)
    for i, n in enumerate(lengths):
        speech[i, :n] = 0.1 * rng.standard_normal(n)
    text_lengths = np.maximum(1, (seconds * TOKENS_PER_S).astype(np.int64))
    text = np.full((BATCH, int(text_lengths.max())), -1, dtype=np.int64)
    for i, n in enumerate(text_lengths):
        text[i, :n] = rng.integers(2, VOCAB - 1, size=n)
    arrays = {"speech": speech, "speech_lengths": lengths, "text": text, "text_lengths": text_lengths}
    np.savez(path, **arrays)
    return arrays


def measure_ours(request: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh process (``--worker``): our trainer on the batch; JSON-able figures."""
    import lightning as L
    from espnet_model import build_asr_model, count_parameters
    from espnet_model.host_memory import keep_freed_host_memory
    from espnet_train import LitESPnetModel, OptimConfig
    from espnet_train.data import BatchStream
    from torch.utils.flop_counter import FlopCounterMode

    keep_freed_host_memory()  # as espnet_train.train does (trainer.keep_host_memory: true)
    threads = int(request["threads"])
    device = request.get("device", "cpu")
    torch.set_num_threads(threads)
    peak = matmul_peak(threads, device=device)
    bf16_peak = (matmul_peak(threads, dtype=torch.bfloat16, device=device)
                 if request["precision"].startswith("bf16") else None)
    torch.manual_seed(SEED)
    arrays = np.load(request["batch_file"])
    batch = {k: torch.from_numpy(arrays[k]).to(device)
             for k in ("speech", "speech_lengths", "text", "text_lengths")}
    model = build_asr_model(MODEL, vocab_size=VOCAB).to(device)
    model.train()
    with FlopCounterMode(display=False) as counter:
        loss, _, _ = model(**batch)
        loss.backward()
    flops = counter.get_total_flops()
    model.zero_grad(set_to_none=True)

    warmup, iterations = int(request["warmup"]), int(request["iterations"])
    raw = _raw_step_times(model, batch, request["precision"], warmup, iterations, device)
    if device != "cpu":
        torch.cuda.reset_peak_memory_stats(device)
    times: list[float] = []

    class _Timer(L.Callback):
        def on_train_batch_start(self, *args: Any) -> None:
            sync(device)
            self.start = time.perf_counter()

        def on_train_batch_end(self, *args: Any) -> None:
            sync(device)
            times.append(time.perf_counter() - self.start)

    optim = OptimConfig(name="adam", lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, scheduler="constant")
    lit = LitESPnetModel(model, optim, gradient_clip_val=CLIP)
    trainer = L.Trainer(
        accelerator="cpu" if device == "cpu" else "gpu", devices=1, precision=request["precision"], max_epochs=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, callbacks=[_Timer()],
    )
    stream = BatchStream([{**batch, "keys": [f"utt{i}" for i in range(BATCH)]}] * (warmup + iterations))
    trainer.fit(lit, stream)
    timed = times[warmup:]
    timing = {
        "median_s": statistics.median(timed), "min_s": min(timed), "max_s": max(timed),
        "times_s": timed, "warmup": warmup, "iterations": iterations,
    }
    return {
        "raw_median_s": statistics.median(raw),
        "raw_times_s": raw,
        "parameters": count_parameters(model),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "precision": request["precision"],
        "flops_per_step": flops,
        "matmul_peak_flops": peak,
        "bf16_matmul_peak_flops": bf16_peak,
        "optimizer_steps": lit.optimizer_steps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": device if device == "cpu" else torch.cuda.get_device_name(device),
        "peak_gpu_memory_mb": (torch.cuda.max_memory_allocated(device) / 2**20
                               if device != "cpu" else None),
        **timing,
    }


def _raw_step_times(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], precision: str, warmup: int, iterations: int,
    device: str = "cpu",
) -> list[float]:
    """The model alone, as the peer runs it: forward, backward, clip, Adam (a throw-away copy)."""
    import copy

    model = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    bf16 = precision.startswith("bf16")

    def step() -> float:
        sync(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu" if device == "cpu" else "cuda", dtype=torch.bfloat16, enabled=bf16):
            loss, _, _ = model(**batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        sync(device)
        return time.perf_counter() - start

    return [step() for _ in range(warmup + iterations)][warmup:]


def bf16_skip_reason(device: str = DEVICE, cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """Why the bf16 rows are not measured here, or None to measure them.

    ``BENCH_BF16=1`` / ``0`` forces them on / off; otherwise they are skipped where
    ``espnet_train.train`` would train ``precision: bf16-mixed`` in fp32.
    """
    forced = os.environ.get("BENCH_BF16", "")
    if forced not in ("", "0", "1"):
        raise ValueError(f"BENCH_BF16={forced!r} must be 1 (measure the bf16 rows) or 0 (skip them)")
    if forced == "1":
        return None
    if forced == "0":
        return "BENCH_BF16=0"
    if device == "cpu":
        from espnet_train.train import cpu_has_native_bf16

        if not cpu_has_native_bf16(cpuinfo):
            return ("this CPU has no native bf16 (no avx512_bf16 or amx_bf16 in /proc/cpuinfo): "
                    "espnet_train.train trains a bf16-mixed config in fp32 here, and emulated bf16 "
                    "is many times slower than fp32 (BENCH_BF16=1 measures it anyway)")
        return None
    if not torch.cuda.is_bf16_supported():
        return f"{device}: this CUDA device does not support bf16 (BENCH_BF16=1 measures it anyway)"
    return None


def run_ours(
    work: str, batch_file: Path, precision: str, warmup: int, iterations: int, timeout_s: float = 1800,
) -> dict[str, Any]:
    request = Path(work) / f"ours-{precision}.request.json"
    request.write_text(json.dumps({
        "batch_file": str(batch_file), "threads": num_threads(), "precision": precision, "device": DEVICE,
        "warmup": warmup, "iterations": iterations,
    }))
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", str(request)], capture_output=True, text=True, timeout=timeout_s,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmarks/train.py --worker ({precision}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several processes' runs: all timed steps pooled, the worst RSS."""
    if len(runs) == 1 or any("unavailable" in r for r in runs):
        return runs[0] if len(runs) == 1 else next(r for r in runs if "unavailable" in r)
    result = {**runs[0], "rounds": len(runs), "iterations": sum(r["iterations"] for r in runs)}
    for prefix in ("", "raw_"):
        if f"{prefix}times_s" in result:
            times = [t for r in runs for t in r[f"{prefix}times_s"]]
            result[f"{prefix}times_s"] = times
            result[f"{prefix}median_s"] = statistics.median(times)
    result["min_s"], result["max_s"] = min(result["times_s"]), max(result["times_s"])
    result["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    for key in ("matmul_peak_flops", "bf16_matmul_peak_flops"):  # the best measurement
        values = [r[key] for r in runs if r.get(key)]
        result[key] = max(values) if values else None
    return result


class _Rows:
    """The rows finished so far, written to ``benchmarks/out/train.json`` after each one.

    A run stopped midway (a bf16 row emulated for many minutes, a kill) keeps every
    figure already measured; ``benchmarks/run.py`` replaces the file with the full record.
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        from run import machine_info, out_path  # the runner's own (imported here: it imports us)

        self.path = out_path("train")
        self.record: dict[str, Any] = {
            "benchmark": "train",
            "partial": True,
            "note": "rows finished so far; `just bench train` replaces this file when it ends",
            "machine": machine_info(),
            "settings": settings,
            "rows": {},
        }

    def add(self, name: str, row: dict[str, Any], **summary: Any) -> dict[str, Any]:
        from run import write_json_atomic

        self.record["rows"][name] = row
        self.record.update(summary)
        write_json_atomic(self.path, self.record)
        return row


def _bf16_row(skip: str | None, measure: Any) -> dict[str, Any]:
    """``measure()``, or ``{"skipped": why}`` when ``skip`` says so or it runs past the cap."""
    if skip:
        return {"skipped": skip}
    try:
        return measure()
    except subprocess.TimeoutExpired:
        return {"skipped": f"stopped after BENCH_BF16_TIMEOUT_S={BF16_TIMEOUT_S:.0f} s"}


def run(quick: bool = False) -> dict[str, Any]:
    warmup, iterations = (1, 3) if quick else (3, 20)
    rounds = 1 if quick else ROUNDS
    bf16_skip = bf16_skip_reason()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as work:
        batch_file = Path(work) / "batch.npz"
        arrays = make_batch(batch_file)
        audio_seconds = float(arrays["speech_lengths"].sum()) / SAMPLE_RATE
        rows = _Rows({"model_block": MODEL, "vocab_size": VOCAB, "batch": BATCH, "threads": num_threads(),
                      "warmup": warmup, "iterations": iterations, "fp32_rounds": rounds, "quick": quick,
                      "audio_seconds_per_step": audio_seconds, "bf16_skipped": bf16_skip})
        peer_request = {
            "work_dir": work, "batch_file": str(batch_file), "model": peer_model_spec(MODEL, token_list(VOCAB)),
            "threads": num_threads(), "lr": LR, "clip": CLIP, "seed": SEED,
            "warmup": warmup, "iterations": -(-iterations // rounds),
        }
        # fp32, the compared figure: rounds of ours then the peer, each a fresh process,
        # so that the machine's drift (10-15% over minutes) reaches both sides alike.
        ours_runs, peer_runs = [], []
        for i in range(rounds):
            ours_runs.append(rows.add(f"ours fp32 round {i + 1}",
                                      run_ours(work, batch_file, "32-true", warmup, -(-iterations // rounds))))
            if DEVICE == "cpu" and not any("unavailable" in r for r in peer_runs):
                peer_runs.append(rows.add(f"peer fp32 round {i + 1}", run_peer("train_step_peer.py", peer_request)))
        ours = pooled(ours_runs)
        rows.add("ours fp32", ours, audio_s_per_s=audio_seconds / ours["median_s"])
        peer = (pooled(peer_runs) if peer_runs else
                {"unavailable": f"BENCH_DEVICE={DEVICE}: the ESPnet2 peer is measured on the CPU only"})
        bf16 = rows.add("ours bf16-mixed", _bf16_row(
            bf16_skip, lambda: run_ours(work, batch_file, "bf16-mixed", warmup, iterations, BF16_TIMEOUT_S)))
        if "unavailable" in peer:
            peer_bf16 = peer
        elif bf16_skip:
            peer_bf16 = {"unavailable": f"bf16 rows skipped: {bf16_skip}"}
        else:
            peer_bf16 = rows.add("peer bf16", run_peer(
                "train_step_peer.py", {**peer_request, "autocast": "bf16", "iterations": iterations},
                timeout_s=BF16_TIMEOUT_S,
            ))
    if "unavailable" in peer:
        print(f"peer (ESPnet2) not measured: {peer['unavailable']}\n"
              "create it once with: bash benchmarks/peer/setup.sh   (then run `just bench train` again)")
    if "skipped" in bf16:
        print(f"bf16-mixed rows not measured: {bf16['skipped']}")
    tp = audio_seconds / ours["median_s"]
    tp_bf16 = audio_seconds / bf16["median_s"] if "median_s" in bf16 else None
    peer_median = peer_value(peer, "median_s")
    peer_tp = audio_seconds / peer_median if isinstance(peer_median, float) else None
    peer_rss = peer_value(peer, "peak_rss_mb")
    peer_bf16_median = peer_value(peer_bf16, "median_s")
    peer_tp_bf16 = audio_seconds / peer_bf16_median if isinstance(peer_bf16_median, float) else None
    mfu = ours["flops_per_step"] / ours["median_s"] / ours["matmul_peak_flops"]
    mfu_bf16 = (bf16["flops_per_step"] / bf16["median_s"] / bf16["bf16_matmul_peak_flops"]
                if tp_bf16 is not None else None)
    return {
        "description": "training step (trainer step: forward + backward + clip + Adam) on "
                       f"{BATCH} random {MIN_S:g}-{MAX_S:g} s utterances",
        "padding": 1.0 - float(arrays["speech_lengths"].sum()) / arrays["speech"].size,
        "audio_s_per_s": tp,
        "peer_audio_s_per_s": peer_tp,
        "ratio": tp / peer_tp if peer_tp else None,
        # ESPnet2's trainer autocasts on CUDA only (espnet2/train/trainer.py), so on a CPU
        # it trains at its fp32 figure whatever use_amp says; ours can train in bf16 there.
        "bf16_ratio_vs_peer_fp32": tp_bf16 / peer_tp if peer_tp and tp_bf16 else None,
        "bf16_ratio": tp_bf16 / peer_tp_bf16 if peer_tp_bf16 and tp_bf16 else None,
        "bf16_skipped": bf16.get("skipped"),
        "peak_rss_mb": ours["peak_rss_mb"],
        "peer_peak_rss_mb": peer_rss if isinstance(peer_rss, float) else None,
        "mfu": mfu,
        "bf16_audio_s_per_s": tp_bf16,
        "bf16_peak_rss_mb": bf16.get("peak_rss_mb"),
        "peer_bf16_audio_s_per_s": peer_tp_bf16,
        "bf16_mfu": mfu_bf16,
        "device": ours["device"],
        "peak_gpu_memory_mb": ours["peak_gpu_memory_mb"],
        "bf16_peak_gpu_memory_mb": bf16.get("peak_gpu_memory_mb"),
        "settings": {
            "model_block": MODEL,
            "vocab_size": VOCAB,
            "batch": BATCH,
            "utterance_seconds": [round(float(n) / SAMPLE_RATE, 2) for n in arrays["speech_lengths"]],
            "audio_seconds_per_step": audio_seconds,
            "tokens_per_second": TOKENS_PER_S,
            "threads": num_threads(),
            "warmup": warmup,
            "iterations": iterations,
            "fp32_rounds": rounds,
            "quick": quick,
        },
        "metrics": [
            metric("throughput fp32", "audio s / wall s", tp,
                   peer_tp if peer_tp is not None else peer_median, higher_is_better=True),
            metric("throughput bf16-mixed", "audio s / wall s", tp_bf16,
                   peer_tp_bf16 if peer_tp_bf16 is not None else peer_bf16_median, higher_is_better=True),
            metric("median step fp32", "s", ours["median_s"], peer_median, higher_is_better=False),
            metric("median step fp32, model only", "s", ours["raw_median_s"], peer_median, higher_is_better=False),
            metric("fastest step fp32", "s", ours["min_s"], peer_value(peer, "min_s"), higher_is_better=False),
            metric("fastest step bf16-mixed", "s", bf16.get("min_s"), peer_value(peer_bf16, "min_s"),
                   higher_is_better=False),
            metric("throughput ours bf16-mixed vs ESPnet2's CPU trainer (fp32)", "audio s / wall s",
                   tp_bf16, peer_tp, higher_is_better=True),
            metric("peak RSS fp32", "MB", ours["peak_rss_mb"], peer_rss, higher_is_better=False),
            metric("peak RSS bf16-mixed vs peer fp32", "MB", bf16.get("peak_rss_mb"), peer_rss,
                   higher_is_better=False),
            metric("MFU fp32", "fraction", mfu, None, higher_is_better=True),
            metric("MFU bf16-mixed", "fraction", mfu_bf16, None, higher_is_better=True),
            metric("model FLOPs / step", "GFLOP", ours["flops_per_step"] / 1e9, None),
            metric("fp32 matmul peak", "GFLOP/s", ours["matmul_peak_flops"] / 1e9, None),
            metric("bf16 matmul peak", "GFLOP/s",
                   bf16["bf16_matmul_peak_flops"] / 1e9 if bf16.get("bf16_matmul_peak_flops") else None, None),
            metric("parameters", "count", ours["parameters"], peer_value(peer, "parameters")),
        ],
        "ours": ours,
        "ours_bf16": bf16,
        "peer": peer,
        "peer_bf16": peer_bf16,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(measure_ours(json.loads(Path(sys.argv[2]).read_text()))))
    else:
        sys.exit("run through the runner: uv run --locked python benchmarks/run.py train [--quick]")
