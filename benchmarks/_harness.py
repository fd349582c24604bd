"""Shared pieces of the benchmarks: settings, the model config, timing, the peer bridge.

A benchmark module ``benchmarks/NAME.py`` defines ``run(quick: bool) -> dict`` and
returns a :func:`result`; ``benchmarks/run.py`` prints it and writes it to
``benchmarks/out/NAME.json``. Peers (ESPnet2) run in their own venv,
``benchmarks/.peer``, through a script in ``benchmarks/peer/`` that reads a JSON
request file and prints one JSON object on its last stdout line.
"""

from __future__ import annotations

import inspect
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
PEER_DIR = BENCH_DIR / "peer"
PEER_PYTHON = BENCH_DIR / ".peer" / "bin" / "python"
TRAINING_CONFIG = ROOT / "egs" / "mini" / "asr" / "conf" / "training.yaml"
SETUP_COMMAND = "bash benchmarks/peer/setup.sh"

# Every benchmark pins torch to this many threads, here and in the peer.
DEFAULT_THREADS = 2
VOCAB_SIZE = 128
SAMPLE_RATE = 16000
PEER_TIMEOUT_S = 1800
MATMUL_N = 2048  # side of the square matmul that measures a CPU's peak FLOP/s

Seconds = float


def num_threads() -> int:
    """Torch threads for both sides: ``BENCH_THREADS`` or :data:`DEFAULT_THREADS`.

    On a machine whose cores are busy with other work, 2 OpenMP threads can make
    small ops tens of times slower on both sides alike (threads wait for a core at
    every barrier); ``BENCH_THREADS=1`` then gives steadier figures.
    """
    value = os.environ.get("BENCH_THREADS", str(DEFAULT_THREADS))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"BENCH_THREADS={value!r} must be a positive integer, e.g. BENCH_THREADS=2")
    return int(value)


def quick_requested(argv: list[str] | None = None) -> bool:
    """``--quick`` on the command line or ``BENCH_QUICK=1`` in the environment."""
    args = sys.argv[1:] if argv is None else argv
    return "--quick" in args or os.environ.get("BENCH_QUICK", "") not in ("", "0")


def model_block(config_file: Path = TRAINING_CONFIG) -> dict[str, Any]:
    """The recipe's ``model:`` block with ``global_mvn`` swapped for ``utterance_mvn``.

    Global MVN needs statistics from a corpus; utterance MVN costs about the same
    and needs none, so both sides can be built from nothing.
    """
    config = yaml.safe_load(config_file.read_text()) or {}
    if "model" not in config:
        raise KeyError(f"{config_file} has no 'model:' block; the benchmarks build their model from it")
    block = dict(config["model"])
    if block.get("normalize") == "global_mvn":
        block["normalize"] = "utterance_mvn"
        block.pop("normalize_conf", None)
    return block


def token_list(vocab_size: int = VOCAB_SIZE) -> list[str]:
    """``<blank>``, ``<unk>``, printable characters, ``<sos/eos>``: ``vocab_size`` tokens."""
    chars = [chr(c) for c in range(ord("!"), ord("~") + 1)]
    chars += [chr(c) for c in range(0xC0, 0xC0 + vocab_size)]  # more letters if needed
    body = ["<space>", *chars][: vocab_size - 3]
    return ["<blank>", "<unk>", *body, "<sos/eos>"]


def peer_model_spec(block: dict[str, Any], tokens: list[str]) -> dict[str, Any]:
    """The keyword arguments ESPnet2's classes need to build the architecture of ``block``.

    ``encoder_conf``/``decoder_conf``/``model_conf`` keys are passed through; where
    ESPnet2's defaults differ from this project's, this project's value is written
    out (macaron FFN, latest rel-pos, the frontend's window/hop, SpecAug widths) so
    the two models have the same layers and the same parameter count.
    """
    from espnet_model import ConformerEncoder, Fbank, SpecAug

    if block.get("encoder") != "conformer" or block.get("decoder") != "transformer":
        raise ValueError(
            f"{TRAINING_CONFIG}: the peer is built for encoder: conformer and decoder: transformer, "
            f"got {block.get('encoder')!r} and {block.get('decoder')!r}"
        )
    fbank = Fbank(**dict(block.get("frontend_conf") or {}))
    frontend_conf = {
        "fs": fbank.sample_rate,
        "n_fft": fbank.n_fft,
        "win_length": fbank.win_length,
        "hop_length": fbank.hop_length,
        "n_mels": fbank.n_mels,
    }
    specaug_conf = None
    if block.get("specaug"):
        aug = SpecAug(**dict(block.get("specaug_conf") or {}))
        specaug_conf = {
            "apply_time_warp": aug.apply_time_warp,
            "time_warp_window": aug.time_warp_window,
            "time_warp_mode": aug.time_warp_mode,
            "apply_freq_mask": aug.apply_freq_mask,
            "freq_mask_width_range": [int(v) for v in aug.freq_mask_width_range],
            "num_freq_mask": aug.num_freq_mask,
            "apply_time_mask": aug.apply_time_mask,
            "num_time_mask": aug.num_time_mask,
        }
        if aug.time_mask_width_ratio_range is not None:
            specaug_conf["time_mask_width_ratio_range"] = list(aug.time_mask_width_ratio_range)
        else:
            assert aug.time_mask_width_range is not None
            specaug_conf["time_mask_width_range"] = [int(v) for v in aug.time_mask_width_range]
    encoder_defaults = {
        name: param.default
        for name, param in inspect.signature(ConformerEncoder).parameters.items()
        if name in ("macaron_style", "rel_pos_type", "pos_enc_layer_type", "selfattention_layer_type",
                    "activation_type", "use_cnn_module", "cnn_module_kernel", "attention_dropout_rate",
                    "positional_dropout_rate", "normalize_before")
    }
    return {
        "token_list": tokens,
        "frontend_conf": frontend_conf,
        "specaug_conf": specaug_conf,
        "encoder_conf": {**encoder_defaults, **dict(block.get("encoder_conf") or {})},
        "decoder_conf": dict(block.get("decoder_conf") or {}),
        "model_conf": {
            "ctc_weight": 0.3,
            "lsm_weight": 0.1,
            "length_normalized_loss": False,
            **dict(block.get("model_conf") or {}),
        },
    }


def sync(device: str) -> None:
    """Wait for the work queued on ``device`` (nothing to wait for on the CPU)."""
    if device != "cpu":
        import torch

        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: str = "cpu") -> Seconds:
    """Wall time of ``fn()``, with ``device``'s queued work finished before and after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def matmul_peak(threads: int, n: int = MATMUL_N, repeats: int = 5, dtype: Any = None,
                device: str = "cpu") -> float:
    """FLOP/s of an ``n``^3 matmul in ``dtype`` (fp32 when None), best of ``repeats``.

    One untimed product first; on a GPU ``n`` is at least 8192.
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    torch.set_num_threads(threads)
    if device != "cpu":
        n = max(n, 8192)
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    torch.mm(a, b)
    return 2 * n**3 / min(timed(lambda: torch.mm(a, b), device) for _ in range(repeats))


_CORE_PROBE = """
import sys, time, torch
torch.set_num_threads(1)
n = int(sys.argv[1])
a, b = torch.randn(n, n), torch.randn(n, n)
torch.mm(a, b)
print("ready", flush=True)
for line in sys.stdin:  # each line: seconds to multiply for; prints FLOP/s
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < float(line):
        torch.mm(a, b)
        count += 1
    print(2 * n**3 * count / (time.perf_counter() - start), flush=True)
"""


def core_scaling(processes: int = 2, n: int = 384, seconds: float = 1.0) -> dict[str, float]:
    """How many cores' worth of work this machine does right now, with ``processes`` at once.

    ``processes`` single-threaded processes multiply ``n`` x ``n`` fp32 matrices: first
    one alone for ``seconds``, then all of them together, then another one alone.
    ``scaling`` is their total FLOP/s over the mean of the two single ones: ~``processes``
    on idle, independent cores. This 2-vCPU VM gave 1.05-2.05 within one hour (the host's
    other tenants, or vCPUs sharing a physical core): no parallel speedup measured in such
    a minute can exceed it, and compute-dense code loses more there than code bound by
    per-call overhead.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", _CORE_PROBE, str(n)], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]

    def flops(workers: list[subprocess.Popen[str]]) -> float:
        for p in workers:  # all start at one instant
            assert p.stdin is not None
            p.stdin.write(f"{seconds}\n")
            p.stdin.flush()
        lines = [p.stdout.readline().strip() if p.stdout is not None else "" for p in workers]
        if not all(lines):
            raise RuntimeError(f"a core probe process ({sys.executable} -c ...) exited early")
        return sum(float(line) for line in lines)

    try:
        for p in procs:  # every process has imported torch and warmed up
            if p.stdout is None or p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the core probe ({sys.executable} -c ...) did not start")
        first = flops(procs[:1])
        together = flops(procs)
        single = (first + flops(procs[-1:])) / 2
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return {"processes": processes, "single_gflops": round(single / 1e9, 1),
            "together_gflops": round(together / 1e9, 1), "scaling": round(together / single, 2)}


def median_time(
    step: Callable[[], object], warmup: int, iterations: int
) -> dict[str, Any]:
    """Run ``step`` ``warmup`` times untimed, then ``iterations`` times timed."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
        "warmup": warmup,
        "iterations": iterations,
    }


def _peer_venv_missing() -> str | None:
    """Why the peer cannot run (its venv is missing), or None."""
    if PEER_PYTHON.exists():
        return None
    return f"no peer venv at {PEER_PYTHON.parent.parent}; run `{SETUP_COMMAND}`"


def _peer_command(script: str, request: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Command line and environment that run ``benchmarks/peer/<script>`` on ``request``.

    The request is written as JSON into its ``work_dir``.
    """
    request_file = Path(request["work_dir"]) / f"{Path(script).stem}.request.json"
    request_file.write_text(json.dumps(request))
    env = {**os.environ, "OMP_NUM_THREADS": str(num_threads()), "PYTHONWARNINGS": "ignore"}
    env.pop("VIRTUAL_ENV", None)
    return [str(PEER_PYTHON), str(PEER_DIR / script), str(request_file)], env


def _exit_reason(script: str, code: int, stderr: str) -> str:
    tail = (stderr.strip().splitlines() or ["(no output)"])[-1]
    return f"peer script {script} exited {code}: {tail}"


def run_peer(script: str, request: dict[str, Any], timeout_s: float = PEER_TIMEOUT_S) -> dict[str, Any]:
    """Run ``benchmarks/peer/<script>`` in the peer venv; its JSON, or ``{"unavailable": why}``."""
    missing = _peer_venv_missing()
    if missing:
        return {"unavailable": missing}
    command, env = _peer_command(script, request)
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            cwd=str(ROOT),
        )
    except subprocess.TimeoutExpired:
        return {"unavailable": f"peer script {script} ran past {timeout_s:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        return {"unavailable": _exit_reason(script, proc.returncode, proc.stderr)}
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"unavailable": f"peer script {script} printed no JSON: {lines[-1][:200]}"}


class PeerSession:
    """A peer script kept running, so that its timed passes interleave with ours.

    This machine's speed drifts by 10-15% over minutes; timing the two toolkits in
    alternating passes, rather than one after the other, keeps the drift out of their
    ratio. The script prints ``{"ready": true}``, answers each command line on its
    stdin with one JSON line, and prints its result after ``{"finish": true}``.
    Everything is answered with ``{"unavailable": why}`` once the peer cannot run.
    """

    def __init__(self, script: str, request: dict[str, Any],
                 timeout_s: float = PEER_TIMEOUT_S) -> None:
        self.script = script
        self.unavailable: str | None = None
        self.proc: subprocess.Popen[str] | None = None
        self.unavailable = _peer_venv_missing()
        if self.unavailable:
            return
        command, env = _peer_command(script, request)
        self.stderr = (Path(request["work_dir"]) / f"{Path(script).stem}.stderr").open("w+")
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            text=True, env=env, cwd=str(ROOT),
        )
        self.timer = threading.Timer(timeout_s, self._expire, args=(timeout_s,))
        self.timer.start()
        self._read()  # {"ready": true}

    def _expire(self, timeout_s: float) -> None:
        self.unavailable = f"peer script {self.script} ran past {timeout_s:.0f} s"
        if self.proc is not None:
            self.proc.kill()

    def _read(self) -> dict[str, Any]:
        """The peer's next JSON line (other output is skipped)."""
        assert self.proc is not None and self.proc.stdout is not None
        while self.unavailable is None:
            line = self.proc.stdout.readline()
            if not line:  # the peer exited
                code = self.proc.wait()
                self.stderr.seek(0)
                self.unavailable = self.unavailable or _exit_reason(
                    self.script, code, self.stderr.read())
                break
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
        return {"unavailable": self.unavailable}

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send one command; the peer's answer."""
        if self.unavailable is not None or self.proc is None or self.proc.stdin is None:
            return {"unavailable": self.unavailable}
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # _read reports how the peer ended
        return self._read()

    def finish(self) -> dict[str, Any]:
        """Tell the peer to finish; its result, or ``{"unavailable": why}``."""
        result = self.ask({"finish": True})
        if self.proc is not None:
            self.timer.cancel()
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait()
            self.stderr.close()
        return result


def metric(
    name: str, unit: str, ours: float | int | None, peer: float | int | None | str,
    higher_is_better: bool | None = None,
) -> dict[str, Any]:
    """One row of the table: this project's figure and the peer's (or why it is missing)."""
    return {"name": name, "unit": unit, "ours": ours, "peer": peer, "higher_is_better": higher_is_better}


def peer_value(peer: dict[str, Any], *keys: str) -> float | int | str | None:
    """``peer[k1][k2]...`` or ``"unavailable: <reason>"`` when the peer did not run."""
    if "unavailable" in peer:
        return f"unavailable: {peer['unavailable']}"
    value: Any = peer
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value
