"""Batched decoding on a GPU, beside the same decoding on the machine's CPU cores.

Usage (on a machine with a GPU; the device check runs it)::

    uv run --locked python benchmarks/decode_gpu.py --device cuda --out benchmarks/out/decode_gpu.json
    uv run --locked python benchmarks/decode_gpu.py --device cpu --seconds 60 --out /tmp/d.json  # a CPU check

The model is ``decode``'s: the random model of ``egs/mini/asr/conf/training.yaml``'s
``model:`` block (``utterance_mvn``, 128 characters), as a model folder loaded by
``Speech2Text``; the audio is ``decode``'s spoken synthetic speech joined into utterances
of 8-10 s, ``--seconds`` of it in all. Each method (greedy CTC; beam search, beam
``--beam``, ``ctc_weight`` 0.3) decodes all utterances in the batches espnet-infer's
runner cuts (``DynamicBatcher``: length-sorted, at most ``max_seconds`` padded seconds and
``MAX_BATCH`` utterances) for each ``max_seconds`` of :data:`GPU_BATCH_SECONDS` on the
GPU and of :data:`CPU_BATCH_SECONDS` on the CPU (``torch.get_num_threads()`` threads,
all cores by default); one untimed pass, then ``--passes`` timed ones, the median counts.
RTF = wall time / audio seconds. A random model emits random tokens, so the token count
of each run is reported beside its time. ``same_as_cpu`` compares each GPU run's
hypotheses with the CPU's at its smallest batch (float rounding differs between the two, so a
random model's near-ties may flip: the fraction of equal utterances is given). The GPU
runs first and the JSON is rewritten after each device, so a time limit costs only the CPU part.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _harness import model_block, token_list
from decode import CTC_WEIGHT, MAXLENRATIO, decode_in_batches, synth_audio, write_model_folder

GPU_BATCH_SECONDS = (10.0, 60.0, 240.0)
CPU_BATCH_SECONDS = (10.0, 60.0)
MAX_BATCH = 256
METHODS = ("ctc_greedy", "beam_search")


def measure(folder: Path, utterances: list[Any], device: str, batch_seconds: tuple[float, ...],
            beam: int, passes: int) -> dict[str, Any]:
    from espnet_infer import DecodeConfig, Speech2Text

    audio_s = sum(len(u) for u in utterances) / 16000
    out: dict[str, Any] = {}
    for method in METHODS:
        s2t = Speech2Text(folder, device=device, decode=DecodeConfig(
            method=method, beam_size=beam, ctc_weight=CTC_WEIGHT, maxlenratio=MAXLENRATIO))
        for seconds in batch_seconds:
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            decode_in_batches(s2t, utterances, seconds, MAX_BATCH)  # untimed: every shape seen once
            times = []
            for _ in range(passes):
                start = time.perf_counter()
                hyps, sizes = decode_in_batches(s2t, utterances, seconds, MAX_BATCH)
                times.append(time.perf_counter() - start)
            run = {"rtf": statistics.median(times) / audio_s, "pass_s": times,
                   "batches": len(sizes), "max_batch": max(sizes),
                   "tokens": sum(len(h) for h in hyps), "hyps": hyps}
            if device.startswith("cuda"):
                run["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            out[f"{method}@{seconds:g}s"] = run
            print(f"{device} {method} max_seconds {seconds:g}: RTF {run['rtf']:.5f} "
                  f"({len(sizes)} batches, up to {max(sizes)} utts, {run['tokens']} tokens)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="the accelerator (the CPU is measured too)")
    parser.add_argument("--seconds", type=float, default=600.0, help="audio seconds decoded per pass")
    parser.add_argument("--beam", type=int, default=10)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--cpu-passes", type=int, default=1, help="timed CPU passes (slow)")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tokens = token_list()
        folder = work / "model"
        write_model_folder(folder, model_block(), tokens)
        utterances = synth_audio(work, args.seconds)
        audio_s = sum(len(u) for u in utterances) / 16000
        result: dict[str, Any] = {
            "benchmark": "decode_gpu", "audio_seconds": round(audio_s, 1), "utterances": len(utterances),
            "beam": args.beam, "ctc_weight": CTC_WEIGHT, "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "gpu_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        hyps: dict[str, list[list[int]]] = {}

        def save(device: str, runs: dict[str, Any]) -> None:
            for name, run in runs.items():
                hyps[f"{device}:{name}"] = run.pop("hyps")
            result[device] = runs
            out.write_text(json.dumps(result, indent=2))

        # the GPU first: the CPU's passes are the slow part and may meet the time limit
        if args.device != "cpu":
            save("gpu", measure(folder, utterances, args.device, GPU_BATCH_SECONDS, args.beam, args.passes))
        save("cpu", measure(folder, utterances, "cpu", CPU_BATCH_SECONDS, args.beam, args.cpu_passes))
        if args.device != "cpu":
            for name, run in result["gpu"].items():
                ref = hyps[f"cpu:{name.split('@')[0]}@{CPU_BATCH_SECONDS[0]:g}s"]
                mine = hyps[f"gpu:{name}"]
                run["same_as_cpu"] = sum(a == b for a, b in zip(mine, ref, strict=True)) / len(ref)
            for method in METHODS:
                best_gpu = min(r["rtf"] for k, r in result["gpu"].items() if k.startswith(method))
                best_cpu = min(r["rtf"] for k, r in result["cpu"].items() if k.startswith(method))
                result[f"{method}_gpu_rtf_best"] = best_gpu
                result[f"{method}_cpu_rtf_best"] = best_cpu
                result[f"{method}_gpu_speedup_vs_cpu"] = best_cpu / best_gpu
        out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))


if __name__ == "__main__":
    main()
