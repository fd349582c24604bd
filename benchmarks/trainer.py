"""The trainer's own cost per step, and (on a GPU) how well it keeps the device fed.

Usage::

    just bench trainer                                   # CPU: overhead_ms_per_step, syncs_per_step
    BENCH_QUICK=1 just bench trainer                     # one round, fewer steps
    BENCH_DEVICE=cuda uv run --locked python benchmarks/run.py trainer   # the recipe run on a GPU
    # the recipe run by hand (any device; --tiny: a small model and corpus, minutes on a CPU)
    uv run --locked python benchmarks/trainer.py recipe --device cpu --tiny --out /tmp/t.json
    uv run --locked python benchmarks/trainer.py recipe --device cuda --shards data/train --valid data/dev

**CPU (default).** A tiny ASR model (conformer 1 x 64, transformer decoder 1 x 64) on one
fixed batch (4 utterances, 2-3 s). The *bare step*: zero_grad, forward, backward, clip
5.0 and the fused AdamW step, as plain PyTorch. The *trainer step*: the same model in
``espnet_train.LitESPnetModel`` inside ``lightning.Trainer`` with what ``espnet_train.train``
adds (TensorBoard and CSV loggers, ``log_every_n_steps: 20``, the NaN/Inf policy, the LR
schedule and monitor, the epoch history and epoch log, the data position, ``last.ckpt``
every 1000 steps, a 1-hour ``max_time``). Both are timed over whole runs of ``STEPS``
steps (after ``WARMUP``), alternating bare and trainer ``ROUNDS`` times in one process;
``overhead_ms_per_step`` is the median over rounds of (trainer - bare) ms per step.
``syncs_per_step`` counts, in a separate untimed run, the host reads of values that would
live on the accelerator (``SyncCounter``): ``item``/``bool``/``float``/``int`` of such a
tensor, ``tolist``, ``numpy``, ``cpu()``, and tensors made from host values with an
explicit ``device=`` (Lightning's ``self.log`` of a Python number). Each of these waits for
the device on a GPU. Which tensors would be on the device is tracked from the model's
parameters and the batch through every operation (a ``TorchDispatchMode``).

**GPU** (``BENCH_DEVICE=cuda``, or ``recipe --device cuda``): LibriSpeech's conformer
(egs/librispeech/asr/conf/training.yaml's model block, ``normalize: utterance_mvn`` in place
of the recipe's global MVN, whose statistics need the ``collect_stats`` stage) trained by
``espnet_train.train`` from WebDataset shards in ``precision: auto`` (bf16-mixed on an
H200), ``num_workers: auto``, the recipe's ``max_seconds``. Sustained audio s/s over
``--steps`` steps after ``--warmup``, against the bare step (same model, fused Adam, bf16
autocast) on 8 batches of the same stream (``fraction_of_bare``); the GPU busy fraction
(the union of kernel and copy intervals in a ``torch.profiler`` trace of ``--profile-steps``
steps after the timed ones, over their wall time); peak GPU memory. Without ``--shards`` it
writes a LibriSpeech-shaped split first (durations as ``espnet_data.synth.librispeech``
draws them for train-clean-100, noise audio, random text; training throughput does not
depend on what is said).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from espnet_data import Entry
from espnet_data.testing import ListCorpus

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

DEVICE = os.environ.get("BENCH_DEVICE", "cpu")
ROUNDS = 3
WARMUP = 10
STEPS = 100
QUICK_STEPS = 30
LOG_EVERY = 20
CLIP = 5.0
SEED = 0
LIBRISPEECH_CONFIG = ROOT / "egs" / "librispeech" / "asr" / "conf" / "training.yaml"

TINY_MODEL: dict[str, Any] = {
    "frontend": "default",
    "frontend_conf": {"n_mels": 40},
    "specaug": None,
    "normalize": "utterance_mvn",
    "encoder": "conformer",
    "encoder_conf": {"output_size": 64, "attention_heads": 2, "linear_units": 128, "num_blocks": 1,
                     "cnn_module_kernel": 7, "input_layer": "conv2d", "dropout_rate": 0.0},
    "decoder": "transformer",
    "decoder_conf": {"attention_heads": 2, "linear_units": 128, "num_blocks": 1, "dropout_rate": 0.0},
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1},
}
VOCAB = 32

log = logging.getLogger("bench.trainer")


# ------------------------------------------------------------------ counting syncs


class SyncCounter:
    """Count host reads of tensors that would live on the accelerator (see the module doc).

    ``with SyncCounter(model, batch) as c: ...; c.count`` (``c.kinds``: per kind).
    """

    def __init__(self, *roots: Any) -> None:
        from torch.utils.weak import WeakIdKeyDictionary

        self.device_tensors = WeakIdKeyDictionary()
        self.count = 0
        self.kinds: dict[str, int] = {}
        self.enabled = True
        for root in roots:
            self.mark(root)

    def mark(self, obj: Any) -> None:
        if isinstance(obj, torch.nn.Module):
            for t in [*obj.parameters(), *obj.buffers()]:
                self.device_tensors[t] = True
        elif isinstance(obj, torch.Tensor):
            self.device_tensors[obj] = True
        elif isinstance(obj, dict):
            for v in obj.values():
                self.mark(v)
        elif isinstance(obj, list | tuple):
            for v in obj:
                self.mark(v)

    def on_device(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t in self.device_tensors

    def hit(self, kind: str) -> None:
        if self.enabled:
            self.count += 1
            self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def __enter__(self) -> SyncCounter:
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves

        counter = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
                kwargs = kwargs or {}
                dev = any(counter.on_device(t) for t in tree_leaves((args, kwargs)))
                if dev and func is torch.ops.aten._local_scalar_dense.default:
                    counter.hit("item/bool/float")
                out = func(*args, **kwargs)
                if dev or kwargs.get("device") is not None:
                    for t in tree_leaves(out):
                        if isinstance(t, torch.Tensor):
                            counter.device_tensors[t] = True
                return out

        self._patches: list[tuple[Any, str, Any]] = []

        def patch(owner: Any, name: str, make: Any) -> None:
            original = getattr(owner, name)
            self._patches.append((owner, name, original))
            setattr(owner, name, make(original))

        def reading(kind: str) -> Any:
            def make(original: Any) -> Any:
                def wrapper(t: torch.Tensor, *a: Any, **k: Any) -> Any:
                    if counter.on_device(t):
                        counter.hit(kind)
                    return original(t, *a, **k)
                return wrapper
            return make

        patch(torch.Tensor, "tolist", reading("tolist"))
        patch(torch.Tensor, "numpy", reading("numpy"))
        patch(torch.Tensor, "cpu", reading("cpu"))

        def make_tensor(original: Any) -> Any:
            def wrapper(data: Any, *a: Any, **k: Any) -> Any:
                out = original(data, *a, **k)
                if k.get("device") is not None and not isinstance(data, torch.Tensor):
                    counter.hit("host value to device")
                    counter.device_tensors[out] = True
                return out
            return wrapper

        patch(torch, "tensor", make_tensor)
        self._mode = _Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._mode.__exit__(*exc)
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)


# ------------------------------------------------------------------ CPU: the trainer's overhead


def _tiny_batch(seed: int = SEED) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([48000, 44000, 40000, 36000])
    speech = torch.randn(4, 48000, generator=g) * 0.1
    for i, n in enumerate(lengths.tolist()):
        speech[i, n:] = 0
    text_lengths = torch.tensor([30, 27, 25, 22])
    text = torch.randint(1, VOCAB - 1, (4, 30), generator=g)
    for i, n in enumerate(text_lengths.tolist()):
        text[i, n:] = -1
    return {"keys": [f"utt{i}" for i in range(4)], "speech": speech, "speech_lengths": lengths,
            "text": text, "text_lengths": text_lengths}


def _bare_steps(model: torch.nn.Module, batch: dict[str, Any], steps: int) -> float:
    """Seconds for ``steps`` bare steps (forward, backward, clip, fused AdamW)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    inputs = {k: batch[k] for k in ("speech", "speech_lengths", "text", "text_lengths")}
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss, _, _ = model(**inputs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
    return time.perf_counter() - start


class _StepClock:
    """A Lightning callback: wall time from the end of batch ``warmup`` to the last batch's end."""

    def __new__(cls, warmup: int) -> Any:
        import lightning as L

        class Clock(L.Callback):
            def __init__(self) -> None:
                self.start: float | None = None
                self.end: float | None = None
                self.batches = 0

            def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                                   batch_idx: int) -> None:
                self.batches += 1
                if self.batches == warmup:
                    self.start = time.perf_counter()
                self.end = time.perf_counter()

        return Clock()


def _trainer_run(model: torch.nn.Module, batch: dict[str, Any], steps: int, warmup: int, exp_dir: Path,
                 counter: SyncCounter | None = None) -> float:
    """Seconds for ``steps`` trainer steps after ``warmup``, with espnet_train.train's set-up."""
    import lightning as L
    from espnet_train import LitESPnetModel, OptimConfig
    from espnet_train import callbacks as cb
    from espnet_train.data import BatchStream
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    lit = LitESPnetModel(model, OptimConfig(lr=1e-3, scheduler="warmuplr", warmup_steps=25000),
                         gradient_clip_val=CLIP, total_steps=steps + warmup)
    history = cb.EpochHistory(exp_dir / "images")
    callbacks: list[Any] = [cb.RunConfig({"bench": True}), history]
    if hasattr(cb, "EpochLog"):  # this code; the same benchmark measures older commits too
        callbacks.append(cb.EpochLog(history, max_time_s=3600.0))
    callbacks.append(LearningRateMonitor())
    if hasattr(cb, "StepTimer"):
        callbacks.append(cb.StepTimer(duration="00:01:00:00", every=LOG_EVERY))
    clock = _StepClock(warmup)
    callbacks += [clock, cb.AtomicCheckpoint(dirpath=exp_dir / "checkpoints", every_n_train_steps=1000,
                                             save_top_k=0, save_last=True, enable_version_counter=False)]
    stream = BatchStream([batch] * (steps + warmup))
    callbacks.append(cb.DataPosition(stream))
    trainer = L.Trainer(
        default_root_dir=exp_dir, max_epochs=1, accelerator="cpu", devices=1, precision="32-true",
        log_every_n_steps=LOG_EVERY, callbacks=callbacks,
        max_time=None if hasattr(cb, "StepTimer") else "00:01:00:00",
        logger=[TensorBoardLogger(exp_dir, name="tensorboard", version=""),
                CSVLogger(exp_dir, name="csv", version="")],
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )
    with counter if counter is not None else contextlib.nullcontext():
        if counter is not None:
            counter.enabled = False

            class _Arm(L.Callback):
                def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
                    # whole steps only, hooks and logging included: from the start of batch
                    # `warmup` to the start of the last batch (steps - 1 steps; the epoch's
                    # end, its checkpoint and validation are not per-step work)
                    counter.enabled = warmup <= batch_idx < warmup + steps - 1

            trainer.callbacks.append(_Arm())
        trainer.fit(lit, stream)
    assert clock.start is not None and clock.end is not None
    return clock.end - clock.start


def run_cpu(quick: bool) -> dict[str, Any]:
    from _harness import metric, num_threads
    from espnet_model import build_asr_model, count_parameters

    threads = num_threads()
    torch.set_num_threads(threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    steps, rounds = (QUICK_STEPS, 1) if quick else (STEPS, ROUNDS)
    batch = _tiny_batch()
    torch.manual_seed(SEED)
    model = build_asr_model(TINY_MODEL, vocab_size=VOCAB)
    model.train()
    bare_ms, trainer_ms, overhead_ms = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        for r in range(rounds):
            m = copy.deepcopy(model)
            _bare_steps(m, batch, WARMUP)
            bare = _bare_steps(m, batch, steps) / steps * 1000
            t = _trainer_run(copy.deepcopy(model), batch, steps, WARMUP, Path(tmp) / f"r{r}") / steps * 1000
            bare_ms.append(bare)
            trainer_ms.append(t)
            overhead_ms.append(t - bare)
        # counting: untimed, the same steps
        m = copy.deepcopy(model)
        bare_counter = SyncCounter(m, batch)
        with bare_counter:
            _bare_steps(m, batch, steps)
        m = copy.deepcopy(model)
        trainer_counter = SyncCounter(m, batch)
        _trainer_run(m, batch, steps, WARMUP, Path(tmp) / "count", counter=trainer_counter)
    model_syncs = bare_counter.count / steps
    trainer_syncs = trainer_counter.count / (steps - 1)
    syncs = trainer_syncs - model_syncs
    overhead = statistics.median(overhead_ms)
    return {
        "description": "the trainer's own cost per step around a fixed tiny-model step (CPU)",
        "settings": {"model": TINY_MODEL, "vocab": VOCAB, "batch": "4 utterances, 2.25-3.0 s",
                     "steps": steps, "warmup": WARMUP, "rounds": rounds, "threads": threads,
                     "log_every_n_steps": LOG_EVERY, "quick": quick},
        "overhead_ms_per_step": round(overhead, 3),
        "overhead_ms_per_step_spread": [round(min(overhead_ms), 3), round(max(overhead_ms), 3)],
        "overhead_fraction": round(overhead / statistics.median(bare_ms), 4),
        "syncs_per_step": round(syncs, 3),
        "trainer_syncs_per_step": round(trainer_syncs, 3),
        "model_syncs_per_step": round(model_syncs, 3),
        "trainer_sync_kinds": trainer_counter.kinds,
        "model_sync_kinds": bare_counter.kinds,
        "metrics": [
            metric("bare step", "ms", round(statistics.median(bare_ms), 3), None, False),
            metric("trainer step", "ms", round(statistics.median(trainer_ms), 3), None, False),
            metric("overhead_ms_per_step", "ms", round(overhead, 3), None, False),
            metric("syncs_per_step (trainer's own)", "count", round(syncs, 3), None, False),
        ],
        "ours": {"bare_ms": bare_ms, "trainer_ms": trainer_ms, "overhead_ms": overhead_ms,
                 "parameters": count_parameters(model), "torch": torch.__version__},
        "peer": {"unavailable": "the trainer's own cost has no ESPnet2 counterpart here"},
    }


# ------------------------------------------------------------------ recipe run (GPU)


def librispeech_model(tiny: bool) -> dict[str, Any]:
    import yaml

    block = yaml.safe_load(LIBRISPEECH_CONFIG.read_text())["model"]
    block["normalize"] = "utterance_mvn"
    block.pop("normalize_conf", None)
    if tiny:
        block["encoder_conf"].update(output_size=64, linear_units=128, num_blocks=1, cnn_module_kernel=7)
        block["decoder_conf"].update(linear_units=128, num_blocks=1)
        block["specaug"] = None
        block.pop("specaug_conf", None)
    return block


def _durations(n: int, tiny: bool, seed: int) -> list[float]:
    rng = random.Random(seed)
    if tiny:
        return [rng.uniform(2.0, 4.0) for _ in range(n)]
    try:
        from espnet_data.synth.librispeech import draw_duration

        return [draw_duration(rng, "train-clean-100") for _ in range(n)]
    except ImportError:  # before the synthetic LibriSpeech corpus: its train range and mean
        return [rng.uniform(2.0, 23.4) for _ in range(n)]


class NoiseCorpus(ListCorpus):
    """A corpus whose sources read ``noise:<seconds>:<seed>``: the audio is made in the writer's workers."""

    def load_audio(self, entry: Entry) -> tuple[np.ndarray, int]:
        if isinstance(entry.source, str) and entry.source.startswith("noise:"):
            _, seconds, seed = entry.source.split(":")
            rng = np.random.default_rng(int(seed))
            return (rng.standard_normal(int(float(seconds) * 16000)) * 0.05).astype(np.float32), 16000
        return super().load_audio(entry)


def write_synthetic_split(out: Path, n: int, *, tiny: bool, seed: int, workers: int) -> Path:
    """A split of ``n`` noise utterances with LibriSpeech-shaped durations and random text."""
    from espnet_data import ShardOptions, write_split

    if (out / "index.jsonl").exists():
        return out
    rng = np.random.default_rng(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    entries = []
    for i, seconds in enumerate(_durations(n, tiny, seed)):
        words = ["".join(letters[j] for j in rng.integers(0, 26, rng.integers(2, 9)))
                 for _ in range(max(1, int(seconds * 2.7)))]
        entries.append(Entry(f"synth{seed}-{i:05d}", " ".join(words).upper(), f"spk{i % 40}",
                             source=f"noise:{seconds:.3f}:{seed * 1_000_003 + i}"))
    corpus = NoiseCorpus({out.name: entries})
    write_split(corpus, out.name, out, options=ShardOptions(), utterances_per_shard=200 if not tiny else 20,
                num_workers=workers, backend="processes" if workers > 1 else "auto")
    return out


def _tokenizer_dir(split: Path, out: Path) -> Path:
    from espnet_data import CharTokenizer, read_index, save_tokenizer

    if not (out / "tokenizer.yaml").exists():
        texts = [r.get("text", "") for r in read_index(split)]
        save_tokenizer(CharTokenizer.from_texts(texts), out)
    return out


def _bare_recipe_step(block: dict[str, Any], vocab: int, batches: list[dict[str, Any]], device: str,
                      precision: str, iterations: int) -> dict[str, Any]:
    """The bare step of the same model on ``batches`` (cycled): audio s / s and ms per step."""
    from espnet_model import build_asr_model

    model = build_asr_model(block, vocab_size=vocab).to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    bf16 = precision.startswith("bf16")
    inputs = [{k: b[k].to(device) for k in ("speech", "speech_lengths", "text", "text_lengths")} for b in batches]
    audio = [float(b["speech_lengths"].sum()) / 16000 for b in batches]

    def sync() -> None:
        if device != "cpu":
            torch.cuda.synchronize()

    def step(i: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda" if device != "cpu" else "cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _, _ = model(**inputs[i % len(inputs)])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()

    for i in range(len(inputs)):  # every shape once
        step(i)
    sync()
    start = time.perf_counter()
    for i in range(iterations):
        step(i)
    sync()
    seconds = time.perf_counter() - start
    total_audio = sum(audio[i % len(audio)] for i in range(iterations))
    return {"audio_s_per_s": total_audio / seconds, "ms_per_step": seconds / iterations * 1000,
            "batches": len(inputs), "iterations": iterations,
            "audio_s_per_batch": [round(a, 1) for a in audio]}


def _busy_fraction(prof: Any, wall_s: float) -> float:
    """The union of GPU kernel and copy intervals in ``prof`` over ``wall_s``."""
    spans = []
    for e in prof.events():
        if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA and e.time_range.elapsed_us() > 0:
            spans.append((e.time_range.start, e.time_range.end))
    spans.sort()
    busy, end = 0.0, -1.0
    for s, e in spans:
        if s > end:
            busy += e - s
            end = e
        elif e > end:
            busy += e - end
            end = e
    return busy / 1e6 / wall_s if wall_s > 0 else 0.0


def _recipe(device: str, *, tiny: bool, shards: str | None, valid: str | None, tokenizer: str | None,
            steps: int, warmup: int, profile_steps: int, work: Path, max_seconds: float | None,
            workers: int) -> dict[str, Any]:
    import lightning as L
    from espnet_data import load_tokenizer_dir, read_index
    from espnet_train import TrainingConfig
    from espnet_train.config import DataConfig, OptimConfig, TrainerConfig
    from espnet_train.data import make_stream
    from espnet_train.devices import resolve
    from espnet_train.train import train

    cuda = device != "cpu"
    block = librispeech_model(tiny)
    max_seconds = max_seconds or (30.0 if tiny else 1000.0)
    # the data
    if shards:
        train_dir = Path(shards)
        valid_dir = Path(valid) if valid else train_dir
        data_note = f"shards in {train_dir}"
    else:
        need_s = (steps + warmup + profile_steps) * max_seconds * 0.9 * (0.5 if not tiny else 1.0)
        mean_s = 3.0 if tiny else 12.7
        n = int(need_s / mean_s) + 1
        train_dir = write_synthetic_split(work / "data" / "train", n, tiny=tiny, seed=0, workers=workers)
        valid_dir = write_synthetic_split(work / "data" / "dev", 16, tiny=tiny, seed=1, workers=workers)
        data_note = (f"synthetic split: {n} noise utterances, durations drawn as LibriSpeech train-clean-100's "
                     "(espnet_data.synth.librispeech.draw_duration), random text")
    index = read_index(train_dir)
    durations = {r["key"]: float(r["duration"]) for r in index}
    tok_dir = Path(tokenizer) if tokenizer else _tokenizer_dir(train_dir, work / "tokenizer")
    vocab = load_tokenizer_dir(tok_dir).vocab_size
    total = warmup + steps + profile_steps
    config = TrainingConfig(
        exp_dir=str(work / "exp"),
        tokenizer=str(tok_dir),
        data=DataConfig(train=str(train_dir), valid=str(valid_dir), max_seconds=max_seconds,
                        max_batch_size=512, buffer_size=2000 if tiny else 5000, num_workers="auto"),
        model=block,
        optim=OptimConfig(name="adam", lr=0.002, betas=(0.9, 0.999), eps=1e-8, scheduler="warmuplr",
                          warmup_steps=15000),
        trainer=TrainerConfig(max_epochs=1000, accelerator="gpu" if cuda else "cpu", devices=1,
                              precision="auto", log_every_n_steps=LOG_EVERY, enable_progress_bar=False),
        best_n=1, resume=False,
    )
    resolved = resolve(config)

    class Meter(L.Callback):
        """Times steps [warmup, warmup + steps), profiles the next ``profile_steps``, then stops."""

        def __init__(self) -> None:
            self.n = 0
            self.audio = 0.0
            self.start: float | None = None
            self.seconds: float | None = None
            self.prof: Any = None
            self.prof_start = 0.0
            self.busy: float | None = None
            self.epochs_seen: set[int] = set()

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            self.epochs_seen.add(trainer.current_epoch)
            if self.n == warmup:
                if cuda:
                    torch.cuda.synchronize()
                self.start = time.perf_counter()
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
            if self.n == warmup + steps and profile_steps:
                if cuda:
                    torch.cuda.synchronize()
                activities = [torch.profiler.ProfilerActivity.CUDA] if cuda else [torch.profiler.ProfilerActivity.CPU]
                self.prof = torch.profiler.profile(activities=activities)
                self.prof.__enter__()
                self.prof_start = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            if warmup <= self.n < warmup + steps:
                self.audio += sum(durations.get(k, 0.0) for k in batch["keys"])
            self.n += 1
            if self.n == warmup + steps:
                if cuda:
                    torch.cuda.synchronize()
                self.seconds = time.perf_counter() - (self.start or 0.0)
            if self.n == total:
                if self.prof is not None:
                    if cuda:
                        torch.cuda.synchronize()
                    wall = time.perf_counter() - self.prof_start
                    self.prof.__exit__(None, None, None)
                    self.busy = _busy_fraction(self.prof, wall) if cuda else None
                trainer.should_stop = True

    meter = Meter()
    train_start = time.perf_counter()
    try:
        train(config, callbacks=[meter])
    except FileNotFoundError as err:  # stopped before the first epoch's validation: nothing to average
        if "no epoch checkpoint" not in str(err):
            raise
    train_wall = time.perf_counter() - train_start
    if meter.seconds is None:
        raise RuntimeError(f"training stopped after {meter.n} of {warmup + steps} steps: give more data")
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    # the bare step on 8 batches of the same stream
    stream = make_stream(str(train_dir), resolved.data, load_tokenizer_dir(tok_dir).encode, train=True, seed=1)
    stream.set_epoch(0)
    batches = []
    for b in stream:
        batches.append(b)
        if len(batches) == 8:
            break
    bare = _bare_recipe_step(block, vocab, batches, "cuda" if cuda else "cpu", resolved.trainer.precision,
                             iterations=max(20, min(steps, 60)))
    sustained = meter.audio / meter.seconds
    from espnet_model import build_asr_model, count_parameters

    return {
        "description": "LibriSpeech conformer trained by espnet-train from shards, against its bare step",
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "settings": {"tiny": tiny, "data": data_note, "max_seconds": max_seconds,
                     "precision": resolved.trainer.precision, "num_workers": resolved.data.num_workers,
                     "steps": steps, "warmup": warmup, "profile_steps": profile_steps,
                     "train_utterances": len(index), "train_hours": round(sum(durations.values()) / 3600, 2),
                     "model": block},
        "parameters": count_parameters(build_asr_model(block, vocab_size=vocab)),
        "audio_s_per_s": round(sustained, 1),
        "bare_audio_s_per_s": round(bare["audio_s_per_s"], 1),
        "fraction_of_bare": round(sustained / bare["audio_s_per_s"], 3),
        "ms_per_step": round(meter.seconds / steps * 1000, 2),
        "bare_ms_per_step": round(bare["ms_per_step"], 2),
        "audio_s_per_step": round(meter.audio / steps, 1),
        "gpu_busy_fraction": round(meter.busy, 3) if meter.busy is not None else None,
        "peak_gpu_memory_mb": round(peak_mb, 1) if peak_mb is not None else None,
        "epochs_touched": sorted(meter.epochs_seen),
        "train_wall_s": round(train_wall, 1),
        "bare": bare,
        "torch": torch.__version__,
    }


def run_gpu(quick: bool) -> dict[str, Any]:
    from _harness import metric

    work = Path(os.environ.get("BENCH_WORK") or tempfile.mkdtemp(prefix="bench-trainer-"))
    result = _recipe("cuda", tiny=os.environ.get("BENCH_TINY") == "1", shards=os.environ.get("BENCH_SHARDS"),
                     valid=os.environ.get("BENCH_VALID"), tokenizer=os.environ.get("BENCH_TOKENIZER"),
                     steps=50 if quick else int(os.environ.get("BENCH_STEPS", "200")), warmup=20,
                     profile_steps=10 if quick else 20, work=work, max_seconds=None,
                     workers=os.cpu_count() or 1)
    result["metrics"] = [
        metric("sustained audio s/s", "audio s/s", result["audio_s_per_s"], None, True),
        metric("bare step audio s/s", "audio s/s", result["bare_audio_s_per_s"], None, True),
        metric("fraction_of_bare", "ratio", result["fraction_of_bare"], None, True),
        metric("gpu_busy_fraction", "ratio", result["gpu_busy_fraction"], None, True),
        metric("peak GPU memory", "MB", result["peak_gpu_memory_mb"], None, False),
    ]
    result["peer"] = {"unavailable": "ESPnet2's trainer needs its own CUDA torch venv (~5 GB), which cannot "
                                     "be carried to the GPU machine (64 MiB per call, no network there)"}
    return result


def run(quick: bool = False) -> dict[str, Any]:
    return run_cpu(quick) if DEVICE == "cpu" else run_gpu(quick)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the recipe run of benchmarks/trainer.py on any device")
    parser.add_argument("mode", choices=["recipe"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a small model and corpus (a CPU check)")
    parser.add_argument("--shards", help="a training split made by create_dataset (default: write one)")
    parser.add_argument("--valid", help="its validation split (default: the training split)")
    parser.add_argument("--tokenizer", help="a tokenizer folder (default: characters of the transcripts)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--profile-steps", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, help="data.max_seconds (default: the recipe's 1000; tiny 30)")
    parser.add_argument("--work", help="working folder (default: a temporary one)")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    result = _recipe(args.device, tiny=args.tiny, shards=args.shards, valid=args.valid, tokenizer=args.tokenizer,
                     steps=args.steps, warmup=args.warmup, profile_steps=args.profile_steps, work=work,
                     max_seconds=args.max_seconds, workers=os.cpu_count() or 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".partial")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    os.replace(tmp, args.out)
    print(json.dumps({k: v for k, v in result.items() if k not in ("settings", "bare")}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

