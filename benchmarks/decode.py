"""Decoding real-time factor: ``espnet_infer.Speech2Text`` vs ESPnet2's ``Speech2Text``.

Usage::

    just bench decode                                       # ~48 s of audio
    uv run --locked python benchmarks/run.py decode --quick # ~8 s of audio

A randomly initialised model from the ``model:`` block of
``egs/mini/asr/conf/training.yaml`` (vocab 128 characters, ``utterance_mvn``) is
written as a model folder and loaded by ``Speech2Text``; the same weights, renamed
to ESPnet2's keys, go into an ESPnet2 experiment folder for the peer. The audio is
spoken synthetic speech from ``espnet_data.synth.make_tiny_corpus``, its sentences joined
into utterances of at least 8 s (``UTTERANCE_SECONDS``; 9-10 s), the length the issue's ESPnet2
figures were measured on. Each utterance
is decoded alone (batch 1) after one untimed warm-up pass (so every utterance length has
been seen once); each side makes ``PASSES`` (5) timed passes over all utterances and
reports the median pass. The
peer's process stays up (``PeerSession``) and its passes alternate with ours, because
this machine's speed drifts by 10-15% over minutes. Each pass starts after a
``SETTLE_S`` pause, so that the other side's OpenMP threads have stopped spinning. Ours is also timed in
the batches espnet-infer's runner decodes (``greedy_rtf_batched``,
``beam_rtf_batched``): ``DynamicBatcher`` cuts length-sorted batches of at most
``BATCH_SECONDS`` (20) padded seconds, the recipe's CPU setting. ESPnet2's
``Speech2Text`` decodes one utterance at a time, so its figures are batch 1;
``same_as_batch_1`` checks that batching changed no hypothesis. Our process calls
``keep_freed_host_memory()`` first, as espnet-infer's workers do; the peer keeps
glibc's defaults, as ESPnet2 does.
RTF = decoding wall time / audio seconds (lower is better). A random model emits
random tokens, so the token counts are reported beside the times: beam-search cost
grows with the hypothesis length.

``hyps_identical``: the two fbank front-ends differ (see docs/benchmarks.md), so the
two encoders see slightly different features. To compare the *searches* on the same
weights, our encoder output of every utterance is handed to ESPnet2's own
``Speech2Text.beam_search`` (its decoder and CTC hold the same weights) and its best
hypothesis is compared with ours, token for token. ``e2e_hyps_identical`` compares
the two full pipelines (front-end included).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from _harness import (
    SAMPLE_RATE,
    VOCAB_SIZE,
    PeerSession,
    matmul_peak,
    median_time,
    metric,
    model_block,
    num_threads,
    peer_model_spec,
    peer_value,
    token_list,
)

METHODS = ("ctc_greedy", "beam_search")
BEAM_SIZE = 4
CTC_WEIGHT = 0.3
MAXLENRATIO = 0.0
SEED = 0
PASSES = 5  # timed passes over all utterances, each side; the median pass is reported
SETTLE_S = 0.5  # pause before each timed pass, so the other side's OpenMP threads, which
# spin for a while after their last parallel region, have gone idle
UTTERANCE_SECONDS = 8.0  # the issue measured ESPnet2 on 8 s utterances
GAP_SECONDS = 0.2  # silence between the joined synthetic sentences
BATCH_SECONDS = 20.0  # padded seconds per batch, as egs/mini/asr/conf/inference.yaml decodes on a CPU


def synth_audio(work: Path, seconds: float) -> list[np.ndarray]:
    """At least ``seconds`` of spoken synthetic speech in utterances of >= 8 s (16 kHz float32).

    The synthetic corpus speaks short sentences (about 1-4 s), so consecutive ones are
    joined, with ``GAP_SECONDS`` of silence between, until each utterance lasts at least
    ``UTTERANCE_SECONDS``: the issue's ESPnet2 figures were taken on 8 s utterances.
    """
    from espnet_data import read_audio
    from espnet_data.synth import make_tiny_corpus

    wanted = seconds * SAMPLE_RATE
    target = int(UTTERANCE_SECONDS * SAMPLE_RATE)
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    count = 16
    while True:
        utterances: list[np.ndarray] = []
        pieces: list[np.ndarray] = []
        for path in make_tiny_corpus(work / f"corpus{count}", num_utterances=count, seed=SEED):
            audio, rate = read_audio(path)
            if rate != SAMPLE_RATE:
                raise ValueError(f"{path}: {rate} Hz, expected {SAMPLE_RATE}")
            pieces += [gap, audio.astype(np.float32)] if pieces else [audio.astype(np.float32)]
            if sum(len(p) for p in pieces) >= target:
                utterances.append(np.concatenate(pieces))
                pieces = []
                if sum(len(u) for u in utterances) >= wanted:
                    return utterances
        count *= 2


def write_model_folder(folder: Path, block: dict[str, Any], tokens: list[str]) -> Path:
    """A model folder as training exports it: ``config.yaml``, ``model.pt``, the tokenizer."""
    from espnet_data import CharTokenizer, save_tokenizer
    from espnet_model import build_asr_model

    torch.manual_seed(SEED)
    model = build_asr_model(block, vocab_size=len(tokens))
    folder.mkdir(parents=True, exist_ok=True)
    spec = save_tokenizer(CharTokenizer(tokens), folder)
    config = {"model": block, "vocab_size": len(tokens), "tokenizer": spec, "sample_rate": SAMPLE_RATE}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    weights = folder / "model.pt"
    torch.save(model.state_dict(), weights)
    return weights


def decode_in_batches(
    s2t: Any, utterances: list[np.ndarray], max_seconds: float = BATCH_SECONDS, max_batch_size: int = 64
) -> tuple[list[list[int]], list[int]]:
    """One pass in the batches espnet-infer's runner cuts (length-sorted, ``max_seconds``
    padded): the hypotheses in utterance order and the batch sizes."""
    from espnet_data.batching import DynamicBatcher, pad_sequences

    batcher = DynamicBatcher(max_seconds=max_seconds, max_batch_size=max_batch_size, shuffle=False)
    samples = [{"index": i, "duration": len(u) / SAMPLE_RATE} for i, u in enumerate(utterances)]
    hyps: dict[int, list[int]] = {}
    sizes: list[int] = []
    for group in batcher(samples):
        index = [s["index"] for s in group]
        speech = pad_sequences([utterances[i] for i in index], 0.0)
        lengths = torch.tensor([len(utterances[i]) for i in index])
        hyps.update(zip(index, s2t.token_ids(speech, lengths), strict=True))
        sizes.append(len(index))
    return [hyps[i] for i in range(len(utterances))], sizes


def decode_batched(s2t: Any, utterances: list[np.ndarray]) -> dict[str, Any]:
    """Decode in the batches espnet-infer's runner cuts: length-sorted, ``BATCH_SECONDS`` padded."""
    last: dict[str, Any] = {}

    def one_pass() -> None:
        last["hyps"], last["sizes"] = decode_in_batches(s2t, utterances)

    timing = median_time(one_pass, warmup=1, iterations=PASSES)
    ordered = last["hyps"]
    return {"decode_s": timing["median_s"], "pass_s": timing["times_s"],
            "tokens": sum(len(h) for h in ordered), "hyps": ordered, "batch_sizes": last["sizes"]}


def measure_ours(
    folder: Path, utterances: list[np.ndarray], enc_file: Path, peer: PeerSession
) -> dict[str, Any]:
    """Time both methods at batch 1 and in the runner's batches; save the encoder outputs.

    Each of our batch-1 passes is followed by one of the peer's over the same audio.
    """
    from espnet_infer import DecodeConfig, Speech2Text
    from espnet_model import count_parameters
    from espnet_model.host_memory import keep_freed_host_memory
    from torch.utils.flop_counter import FlopCounterMode

    keep_freed_host_memory()  # as espnet-infer's workers do (keep_host_memory: true)
    torch.set_num_threads(num_threads())
    results: dict[str, Any] = {}
    parameters = 0
    s2t: Speech2Text | None = None
    for method in METHODS:
        s2t = Speech2Text(
            folder,
            decode=DecodeConfig(
                method=method, beam_size=BEAM_SIZE, ctc_weight=CTC_WEIGHT, maxlenratio=MAXLENRATIO
            ),
        )
        parameters = count_parameters(s2t.model)

        def decode(audio: np.ndarray, s2t: Speech2Text = s2t) -> list[int]:
            speech = torch.from_numpy(audio).unsqueeze(0)
            return s2t.token_ids(speech, torch.tensor([len(audio)]))[0]

        for audio in utterances:  # warm-up pass, not timed: every length seen once
            decode(audio)
        pass_s: list[float] = []
        for _ in range(PASSES):
            time.sleep(SETTLE_S)
            start = time.perf_counter()
            hyps = [decode(audio) for audio in utterances]
            pass_s.append(time.perf_counter() - start)
            peer.ask({"pass": method, "settle_s": SETTLE_S})
        results[method] = {"decode_s": statistics.median(pass_s), "pass_s": pass_s,
                           "tokens": sum(len(h) for h in hyps), "hyps": hyps}
        batched = decode_batched(s2t, utterances)
        results[f"{method}_batched"] = {**batched, "same_as_batch_1": batched["hyps"] == hyps}
    assert s2t is not None and s2t.search is not None  # the last method is beam_search
    encs = [s2t.encode(torch.from_numpy(u)[None], torch.tensor([len(u)]))[0][0]
            for u in utterances]  # what the searches above decoded (the frozen encoder's)
    # FLOPs of the module's encode, with autograd on so that every convolution is an
    # aten op the counter sees (at inference the subsampling's are fused oneDNN calls)
    with FlopCounterMode(display=False) as counter:
        for u in utterances:
            s2t.model.encode(torch.from_numpy(u)[None], torch.tensor([len(u)]))
    np.savez(enc_file, **{f"u{i}": e.numpy() for i, e in enumerate(encs)})
    return {"methods": results, "parameters": parameters, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "encode_flops": counter.get_total_flops(),
            "matmul_peak_flops": matmul_peak(num_threads())}


def _headline(ours: dict[str, Any], peer: dict[str, Any], audio_s: float) -> dict[str, Any]:
    """The figures the issue asks for, at the top of ``decode.json``."""
    def rtf(seconds: Any) -> float | None:
        return seconds / audio_s if isinstance(seconds, float) else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    m = ours["methods"]
    greedy, beam = rtf(m["ctc_greedy"]["decode_s"]), rtf(m["beam_search"]["decode_s"])
    greedy_batched = rtf(m["ctc_greedy_batched"]["decode_s"])
    batched = rtf(m["beam_search_batched"]["decode_s"])
    peer_greedy = rtf(peer_value(peer, "methods", "ctc_greedy", "decode_s"))
    peer_beam = rtf(peer_value(peer, "methods", "beam_search", "decode_s"))
    # Roofline: the greedy RTF if every FLOP of ``encode`` ran at the fp32 matmul peak.
    bound = ours["encode_flops"] / audio_s / ours["matmul_peak_flops"]
    search_hyps = peer_value(peer, "search_hyps")
    e2e_hyps = peer_value(peer, "methods", "beam_search", "hyps")

    def spread(method: str) -> dict[str, float | None]:
        """The speedup pass by pass (each of our passes with the peer's that followed it,
        median) and best pass against best pass: how much of a run's ratio is noise."""
        mine, theirs = m[method]["pass_s"], peer_value(peer, "methods", method, "pass_s")
        if not isinstance(theirs, list) or len(theirs) != len(mine):
            return {"paired_median": None, "best_pass": None}
        paired = [t / o for o, t in zip(mine, theirs, strict=True)]
        return {"paired_median": statistics.median(paired), "best_pass": min(theirs) / min(mine)}

    return {
        "greedy_rtf": greedy,
        "peer_greedy_rtf": peer_greedy,
        "greedy_speedup": ratio(peer_greedy, greedy),
        "greedy_rtf_batched": greedy_batched,
        "greedy_speedup_batched": ratio(peer_greedy, greedy_batched),
        "encode_gflop_per_audio_s": ours["encode_flops"] / audio_s / 1e9,
        "matmul_peak_gflops": ours["matmul_peak_flops"] / 1e9,
        "greedy_rtf_bound": bound,
        "greedy_mfu": ratio(bound, greedy),
        "greedy_2x_needs_mfu": ratio(2 * bound, peer_greedy),
        "beam_rtf": beam,
        "peer_beam_rtf": peer_beam,
        "beam_speedup": ratio(peer_beam, beam),
        "beam_rtf_batched": batched,
        "beam_speedup_batched": ratio(peer_beam, batched),
        "greedy_speedup_spread": spread("ctc_greedy"),
        "beam_speedup_spread": spread("beam_search"),
        "hyps_identical": (search_hyps == m["beam_search"]["hyps"])
        if isinstance(search_hyps, list) else None,
        "e2e_hyps_identical": (e2e_hyps == m["beam_search"]["hyps"])
        if isinstance(e2e_hyps, list) else None,
    }


def run(quick: bool = False) -> dict[str, Any]:
    seconds = 8.0 if quick else 48.0
    block = model_block()
    tokens = token_list()
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        work = Path(tmp)
        utterances = synth_audio(work, seconds)
        audio_s = sum(len(u) for u in utterances) / SAMPLE_RATE
        audio_file = work / "audio.npz"
        np.savez(audio_file, **{f"u{i}": u for i, u in enumerate(utterances)})
        weights = write_model_folder(work / "model", block, tokens)
        enc_file = work / "enc.npz"
        session = PeerSession(
            "decode_peer.py",
            {
                "work_dir": tmp,
                "audio_file": str(audio_file),
                "enc_file": str(enc_file),
                "weights_file": str(weights),
                "model": peer_model_spec(block, tokens),
                "methods": list(METHODS),
                "beam_size": BEAM_SIZE,
                "ctc_weight": CTC_WEIGHT,
                "maxlenratio": MAXLENRATIO,
                "threads": num_threads(),
                "seed": SEED,
            },
        )
        ours = measure_ours(work / "model", utterances, enc_file, session)
        peer = session.finish()
    metrics = []
    for method in METHODS:
        ours_m = ours["methods"][method]
        peer_s = peer_value(peer, "methods", method, "decode_s")
        peer_rtf = peer_s / audio_s if isinstance(peer_s, float) else peer_s
        label = "ctc_greedy" if method == "ctc_greedy" else f"beam_search (beam {BEAM_SIZE})"
        metrics.append(metric(f"RTF {label}", "wall s / audio s", ours_m["decode_s"] / audio_s,
                              peer_rtf, higher_is_better=False))
        metrics.append(metric(f"tokens {label}", "count", ours_m["tokens"],
                              peer_value(peer, "methods", method, "tokens")))
    metrics.append(metric("parameters", "count", ours["parameters"], peer_value(peer, "parameters")))
    headline = _headline(ours, peer, audio_s)
    metrics.append(metric("RTF ctc_greedy batched (ours) vs batch 1 (peer)", "wall s / audio s",
                          headline["greedy_rtf_batched"], headline["peer_greedy_rtf"],
                          higher_is_better=False))
    metrics.append(metric("RTF beam_search batched (ours) vs batch 1 (peer)", "wall s / audio s",
                          headline["beam_rtf_batched"], headline["peer_beam_rtf"],
                          higher_is_better=False))
    metrics.append(metric("encode FLOPs per audio second", "GFLOP",
                          headline["encode_gflop_per_audio_s"], None))
    metrics.append(metric("fp32 matmul peak", "GFLOP/s", headline["matmul_peak_gflops"], None))
    metrics.append(metric("greedy RTF if encode ran at that peak", "wall s / audio s",
                          headline["greedy_rtf_bound"], None))
    metrics.append(metric("greedy MFU (bound / RTF, batch 1)", "fraction",
                          headline["greedy_mfu"], None))
    metrics.append(metric("MFU that 2x the peer's greedy RTF needs", "fraction",
                          headline["greedy_2x_needs_mfu"], None))
    return {
        **headline,
        "description": "decoding real-time factor, batch 1, random weights, synthetic speech",
        "settings": {
            "model_block": block,
            "vocab_size": VOCAB_SIZE,
            "utterances": len(utterances),
            "audio_seconds": audio_s,
            "beam_size": BEAM_SIZE,
            "ctc_weight": CTC_WEIGHT,
            "maxlenratio": MAXLENRATIO,
            "batch_seconds": BATCH_SECONDS,
            "passes": PASSES,
            "threads": num_threads(),
            "quick": quick,
            "peer_weights": peer_value(peer, "weights"),
        },
        "metrics": metrics,
        "ours": ours,
        "peer": peer,
    }
