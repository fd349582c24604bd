"""Decoding real-time factor: ``espnet_infer.Speech2Text`` vs ESPnet2's ``Speech2Text``.

Usage::

    just bench decode                                       # ~30 s of audio
    uv run --locked python benchmarks/run.py decode --quick # ~8 s of audio

A randomly initialised model from the ``model:`` block of
``egs/mini/asr/conf/training.yaml`` (vocab 128 characters, ``utterance_mvn``) is
written as a model folder and loaded by ``Speech2Text``; the same weights, renamed
to ESPnet2's keys, go into an ESPnet2 experiment folder for the peer. The audio is
spoken synthetic speech from ``espnet_data.synth.make_tiny_corpus``. Each utterance
is decoded alone (batch 1) after one untimed warm-up decode.
RTF = decoding wall time / audio seconds (lower is better). A random model emits
random tokens, so the token counts are reported beside the times: beam-search cost
grows with the hypothesis length.
"""

from __future__ import annotations

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
    metric,
    model_block,
    num_threads,
    peer_model_spec,
    peer_value,
    run_peer,
    token_list,
)

METHODS = ("ctc_greedy", "beam_search")
BEAM_SIZE = 5
CTC_WEIGHT = 0.3
MAXLENRATIO = 0.0
SEED = 0


def synth_audio(work: Path, seconds: float) -> list[np.ndarray]:
    """At least ``seconds`` of spoken synthetic utterances (16 kHz float32)."""
    from espnet_data import read_audio
    from espnet_data.synth import make_tiny_corpus

    utterances: list[np.ndarray] = []
    count = 8
    while sum(len(u) for u in utterances) < seconds * SAMPLE_RATE:
        utterances = []
        for path in make_tiny_corpus(work / f"corpus{count}", num_utterances=count, seed=SEED):
            audio, rate = read_audio(path)
            if rate != SAMPLE_RATE:
                raise ValueError(f"{path}: {rate} Hz, expected {SAMPLE_RATE}")
            utterances.append(audio)
            if sum(len(u) for u in utterances) >= seconds * SAMPLE_RATE:
                break
        count *= 2
    return utterances


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


def measure_ours(folder: Path, utterances: list[np.ndarray]) -> dict[str, Any]:
    from espnet_infer import DecodeConfig, Speech2Text
    from espnet_model import count_parameters

    torch.set_num_threads(num_threads())
    results: dict[str, Any] = {}
    parameters = 0
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

        decode(utterances[0])  # warm-up, not timed
        tokens = 0
        start = time.perf_counter()
        for audio in utterances:
            tokens += len(decode(audio))
        results[method] = {"decode_s": time.perf_counter() - start, "tokens": tokens}
    return {"methods": results, "parameters": parameters, "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def run(quick: bool = False) -> dict[str, Any]:
    seconds = 8.0 if quick else 30.0
    block = model_block()
    tokens = token_list()
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        work = Path(tmp)
        utterances = synth_audio(work, seconds)
        audio_s = sum(len(u) for u in utterances) / SAMPLE_RATE
        audio_file = work / "audio.npz"
        np.savez(audio_file, **{f"u{i}": u for i, u in enumerate(utterances)})
        weights = write_model_folder(work / "model", block, tokens)
        ours = measure_ours(work / "model", utterances)
        peer = run_peer(
            "decode_peer.py",
            {
                "work_dir": tmp,
                "audio_file": str(audio_file),
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
    return {
        "description": "decoding real-time factor, batch 1, random weights, synthetic speech",
        "settings": {
            "model_block": block,
            "vocab_size": VOCAB_SIZE,
            "utterances": len(utterances),
            "audio_seconds": audio_s,
            "beam_size": BEAM_SIZE,
            "ctc_weight": CTC_WEIGHT,
            "maxlenratio": MAXLENRATIO,
            "threads": num_threads(),
            "quick": quick,
            "peer_weights": peer_value(peer, "weights"),
        },
        "metrics": metrics,
        "ours": ours,
        "peer": peer,
    }
