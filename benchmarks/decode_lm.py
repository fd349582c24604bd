"""Beam search with LM shallow fusion: ``espnet_infer`` vs ESPnet2's ``Speech2Text``, same weights.

Usage::

    just bench decode_lm                                        # ~48 s of audio
    uv run --locked python benchmarks/run.py decode_lm --quick  # ~8 s of audio

The ASR side is ``benchmarks/decode.py``'s: the random model from the ``model:`` block
of ``egs/mini/asr/conf/training.yaml`` as a model folder (and, renamed, an ESPnet2
experiment folder for the peer), on the same synthetic utterances of 9-10 s. The LM is
a transformer LM (:data:`LM_BLOCK`: ESPnet2's ``TransformerLM`` defaults, 4 layers of
256, 3.2 M parameters) written as the LM folder espnet-train's LM task exports and
fused the way a recipe fuses it (``DecodeConfig(lm=..., lm_weight=...)`` into
``Speech2Text``). Its parameter names are ESPnet2's, so the peer loads the same weights
(``strict=True``) into ESPnet2's ``ESPnetLanguageModel``. Random weights give a
near-uniform next-token distribution (entropy ~4.7 nats over 128 tokens), which fusion
would barely notice, so the output layer is scaled by :data:`LM_LOGIT_SCALE` (entropy
~1.3-1.5 nats along the hypotheses, ``lm_entropy_nats``: a character LM's range);
``lm_changed_hyps`` counts the utterances whose best hypothesis the LM changes.

Both sides run beam 10, ``ctc_weight`` 0.3, ``lm_weight`` :data:`LM_WEIGHT`,
``maxlenratio`` 0 (ESPnet2's ``BatchBeamSearch``, whose pre-beam ranks
``(1 - ctc_weight) * att + lm_weight * lm``; ours follows the same rule). The method is
``decode.py``'s: one untimed warm-up pass, then ``PASSES`` timed passes over all
utterances, each after a ``SETTLE_S`` pause and followed by one of the peer's
(``PeerSession``), the median pass counts. That is done twice: at batch 1 (each
utterance alone) and batched (``DynamicBatcher``'s length-sorted batches of at most
``BATCH_SECONDS`` padded seconds, the recipe's CPU setting; ESPnet2 202611's
``Speech2Text.batch_decode`` decodes the same groups in one batched beam search).

``lm_hyps_identical`` compares the *searches*: our encoder output of every utterance is
handed to ESPnet2's ``Speech2Text.beam_search`` (its decoder, CTC and LM hold our
weights) and its best hypothesis must equal ours token for token. ``lm_profile``
splits one untimed batch-1 pass of our search into the LM (``batch_score`` and the
reorder of its cache after pruning, ``state.select``) and the rest.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from _harness import (
    SAMPLE_RATE,
    VOCAB_SIZE,
    PeerSession,
    metric,
    model_block,
    num_threads,
    peer_model_spec,
    peer_value,
    token_list,
)
from decode import (
    BATCH_SECONDS,
    CTC_WEIGHT,
    MAXLENRATIO,
    PASSES,
    SEED,
    SETTLE_S,
    synth_audio,
    write_model_folder,
)

BEAM_SIZE = 10
LM_WEIGHT = 0.6  # ESPnet2's LibriSpeech decoding (beam 60, ctc_weight 0.3, lm_weight 0.6)
# ESPnet2's TransformerLM defaults written out (dropout off: it decodes in eval mode).
LM_BLOCK: dict[str, Any] = {
    "lm": "transformer",
    "lm_conf": {"pos_enc": None, "embed_unit": 128, "att_unit": 256, "head": 2, "unit": 1024,
                "layer": 4, "dropout_rate": 0.0},
}  # fmt: skip
LM_LOGIT_SCALE = 8.0  # output layer x8: next-token entropy ~4.7 -> ~1.4 nats
# The peer's 12 passes (ESPnet2's RTF here is ~0.5-1 on this 2-core machine) take 10-20
# min on an idle machine and more than an hour on a busy one: more than PEER_TIMEOUT_S.
SESSION_TIMEOUT_S = 4 * 3600


def random_lm(vocab_size: int) -> Any:
    """The benchmark's LM (:data:`LM_BLOCK`, seed ``SEED + 1``): random weights, the output
    layer scaled by :data:`LM_LOGIT_SCALE` so that its next-token distribution is peaky."""
    from espnet_model.lm import build_lm

    torch.manual_seed(SEED + 1)
    lm = build_lm(LM_BLOCK, vocab_size=vocab_size)
    with torch.no_grad():
        lm.lm.decoder.weight.mul_(LM_LOGIT_SCALE)
        lm.lm.decoder.bias.mul_(LM_LOGIT_SCALE)
    return lm


def write_lm_folder(folder: Path, tokens: list[str]) -> Path:
    """An LM folder as espnet-train's LM task exports it (``task: lm``, ``model.pt``, the
    ASR model's tokenizer) holding :func:`random_lm`. Its weights file."""
    from espnet_data import CharTokenizer, save_tokenizer

    lm = random_lm(len(tokens))
    folder.mkdir(parents=True, exist_ok=True)
    spec = save_tokenizer(CharTokenizer(tokens), folder)
    config = {"task": "lm", "model": LM_BLOCK, "vocab_size": len(tokens), "tokenizer": spec}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    weights = folder / "model.pt"
    torch.save(lm.state_dict(), weights)
    return weights


def batch_groups(utterances: list[np.ndarray]) -> list[list[int]]:
    """Utterance indices per batch, as espnet-infer's runner cuts them (``decode.py``'s)."""
    from espnet_data.batching import DynamicBatcher

    batcher = DynamicBatcher(max_seconds=BATCH_SECONDS, max_batch_size=64, shuffle=False)
    samples = [{"index": i, "duration": len(u) / SAMPLE_RATE} for i, u in enumerate(utterances)]
    return [[s["index"] for s in group] for group in batcher(samples)]


class _TimedState:
    """An LM state whose ``select`` (the rows' reorder after pruning) is timed."""

    def __init__(self, state: Any, owner: _TimedLM) -> None:
        self.state, self.owner = state, owner

    def select(self, indices: torch.Tensor) -> _TimedState:
        start = time.perf_counter()
        state = self.state.select(indices)
        self.owner.seconds += time.perf_counter() - start
        return _TimedState(state, self.owner)


class _TimedLM:
    """The LM with its ``batch_score`` calls and state reorders timed (for ``lm_profile``)."""

    def __init__(self, lm: Any) -> None:
        self.lm, self.vocab_size = lm, lm.vocab_size
        self.seconds, self.calls = 0.0, 0

    def batch_score(self, ys: torch.Tensor, state: _TimedState | None = None) -> Any:
        start = time.perf_counter()
        logp, new = self.lm.batch_score(ys, None if state is None else state.state)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return logp, _TimedState(new, self)


def _entropy(lm: Any, hyps: list[list[int]], sos: int) -> float:
    """Mean next-token entropy (nats) of ``lm`` along ``hyps`` (teacher forced)."""
    total, count = 0.0, 0
    with torch.inference_mode():
        for hyp in hyps:
            ys = torch.tensor([[sos, *hyp]])
            logp = torch.log_softmax(lm.lm(ys), dim=-1)[0]
            total += float(-(logp.exp() * logp).sum())
            count += logp.shape[0]
    return total / max(count, 1)


def measure_ours(
    folder: Path, lm_folder: Path, utterances: list[np.ndarray], groups: list[list[int]],
    enc_file: Path, peer: PeerSession,
) -> dict[str, Any]:
    """Time batch 1 and batched, each pass followed by the peer's; save the encoder outputs."""
    from espnet_data.batching import pad_sequences
    from espnet_infer import DecodeConfig, Speech2Text
    from espnet_infer.decode import BeamSearch
    from espnet_model import count_parameters
    from espnet_model.host_memory import keep_freed_host_memory

    keep_freed_host_memory()  # as espnet-infer's workers do (keep_host_memory: true)
    torch.set_num_threads(num_threads())
    s2t = Speech2Text(
        folder,
        decode=DecodeConfig(method="beam_search", beam_size=BEAM_SIZE, ctc_weight=CTC_WEIGHT,
                            maxlenratio=MAXLENRATIO, lm=str(lm_folder), lm_weight=LM_WEIGHT),
    )
    lm = s2t.lm_model
    assert s2t.uses_lm and lm is not None

    def search(lm_model: Any, lm_weight: float) -> BeamSearch:
        """Speech2Text's search with another LM (the timed one, or none)."""
        return BeamSearch(s2t.model, beam_size=BEAM_SIZE, ctc_weight=CTC_WEIGHT,
                          maxlenratio=MAXLENRATIO, lm=lm_model, lm_weight=lm_weight)

    def batch_1() -> list[list[int]]:
        return [s2t.token_ids(torch.from_numpy(u)[None], torch.tensor([len(u)]))[0]
                for u in utterances]

    def batched() -> list[list[int]]:
        hyps: dict[int, list[int]] = {}
        for group in groups:
            speech = pad_sequences([utterances[i] for i in group], 0.0)
            lengths = torch.tensor([len(utterances[i]) for i in group])
            hyps.update(zip(group, s2t.token_ids(speech, lengths), strict=True))
        return [hyps[i] for i in range(len(utterances))]

    modes: dict[str, Callable[[], list[list[int]]]] = {"batch_1": batch_1, "batched": batched}
    results: dict[str, Any] = {}
    for mode, decode in modes.items():
        decode()  # warm-up pass, not timed: every length (and batch shape) seen once
        pass_s: list[float] = []
        for _ in range(PASSES):
            time.sleep(SETTLE_S)
            start = time.perf_counter()
            hyps = decode()
            pass_s.append(time.perf_counter() - start)
            peer.ask({"pass": mode, "settle_s": SETTLE_S})
        results[mode] = {"decode_s": statistics.median(pass_s), "pass_s": pass_s,
                         "tokens": sum(len(h) for h in hyps), "hyps": hyps}
    results["batched"]["same_as_batch_1"] = results["batched"]["hyps"] == results["batch_1"]["hyps"]

    # What the searches above decoded (the frozen encoder's output), for the peer's search.
    encs = [s2t.encode(torch.from_numpy(u)[None], torch.tensor([len(u)])) for u in utterances]
    np.savez(enc_file, **{f"u{i}": e[0].numpy() for i, (e, _) in enumerate(encs)})
    # Untimed: where one batch-1 pass of the search goes, and what the LM changes.
    timed_lm = _TimedLM(lm)
    profiled = search(timed_lm, LM_WEIGHT)
    start = time.perf_counter()
    for enc, lengths in encs:
        profiled(enc, lengths)
    search_s = time.perf_counter() - start
    encode_start = time.perf_counter()
    for u in utterances:
        s2t.encode(torch.from_numpy(u)[None], torch.tensor([len(u)]))
    encode_s = time.perf_counter() - encode_start
    plain = search(None, 0.0)
    start = time.perf_counter()
    no_lm = [plain(enc, lengths)[0][0].tokens for enc, lengths in encs]
    no_lm_search_s = time.perf_counter() - start
    with_lm = results["batch_1"]["hyps"]
    sos = int(s2t.model.sos_eos_id)
    return {
        "modes": results,
        "lm_profile": {"encode_s": encode_s, "search_s": search_s, "lm_s": timed_lm.seconds,
                       "no_lm_search_s": no_lm_search_s, "steps": timed_lm.calls,
                       "search_ms_per_step": 1e3 * search_s / max(timed_lm.calls, 1),
                       "lm_ms_per_step": 1e3 * timed_lm.seconds / max(timed_lm.calls, 1),
                       "lm_share_of_search": timed_lm.seconds / search_s},
        "lm_changed_hyps": sum(a != b for a, b in zip(no_lm, with_lm, strict=True)),
        "no_lm_tokens": sum(len(h) for h in no_lm),
        "lm_entropy_nats": _entropy(lm, with_lm, sos),
        "parameters": count_parameters(s2t.model),
        "lm_parameters": count_parameters(lm),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def _headline(ours: dict[str, Any], peer: dict[str, Any], audio_s: float) -> dict[str, Any]:
    """The figures the issue asks for, at the top of ``decode_lm.json``."""
    def rtf(seconds: Any) -> float | None:
        return seconds / audio_s if isinstance(seconds, float) else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def spread(mode: str) -> dict[str, float | None]:
        """The speedup pass by pass (each of our passes with the peer's that followed it,
        median) and best pass against best pass: how much of a run's ratio is noise."""
        mine, theirs = ours["modes"][mode]["pass_s"], peer_value(peer, "modes", mode, "pass_s")
        if not isinstance(theirs, list) or len(theirs) != len(mine):
            return {"paired_median": None, "best_pass": None}
        paired = [t / o for o, t in zip(mine, theirs, strict=True)]
        return {"paired_median": statistics.median(paired), "best_pass": min(theirs) / min(mine),
                "paired_min": min(paired), "paired_max": max(paired)}

    ours_1, ours_b = rtf(ours["modes"]["batch_1"]["decode_s"]), rtf(ours["modes"]["batched"]["decode_s"])
    peer_1 = rtf(peer_value(peer, "modes", "batch_1", "decode_s"))
    peer_b = rtf(peer_value(peer, "modes", "batched", "decode_s"))
    search_hyps = peer_value(peer, "search_hyps")
    e2e = peer_value(peer, "modes", "batch_1", "hyps")
    return {
        "lm_beam_rtf": ours_1,
        "peer_lm_beam_rtf": peer_1,
        "lm_beam_speedup": ratio(peer_1, ours_1),
        "lm_beam_speedup_spread": spread("batch_1"),
        "lm_beam_rtf_batched": ours_b,
        "peer_lm_beam_rtf_batched": peer_b,
        "lm_beam_speedup_batched": ratio(peer_b, ours_b),
        "lm_beam_speedup_batched_spread": spread("batched"),
        "lm_beam_speedup_batched_vs_peer_batch_1": ratio(peer_1, ours_b),
        "lm_hyps_identical": (search_hyps == ours["modes"]["batch_1"]["hyps"])
        if isinstance(search_hyps, list) else None,
        "lm_e2e_hyps_identical": (e2e == ours["modes"]["batch_1"]["hyps"])
        if isinstance(e2e, list) else None,
        "same_as_batch_1": ours["modes"]["batched"]["same_as_batch_1"],
        "peer_same_as_batch_1": (peer_value(peer, "modes", "batched", "hyps") == e2e)
        if isinstance(e2e, list) else None,
        "lm_changed_hyps": ours["lm_changed_hyps"],
        "lm_share_of_search": ours["lm_profile"]["lm_share_of_search"],
    }


def run(quick: bool = False) -> dict[str, Any]:
    seconds = 8.0 if quick else 48.0
    block = model_block()
    tokens = token_list()
    with tempfile.TemporaryDirectory(prefix="bench-decode-lm-") as tmp:
        work = Path(tmp)
        utterances = synth_audio(work, seconds)
        audio_s = sum(len(u) for u in utterances) / SAMPLE_RATE
        audio_file = work / "audio.npz"
        np.savez(audio_file, **{f"u{i}": u for i, u in enumerate(utterances)})
        weights = write_model_folder(work / "model", block, tokens)
        lm_weights = write_lm_folder(work / "lm", tokens)
        groups = batch_groups(utterances)
        enc_file = work / "enc.npz"
        session = PeerSession(
            "decode_lm_peer.py",
            {
                "work_dir": tmp,
                "audio_file": str(audio_file),
                "enc_file": str(enc_file),
                "weights_file": str(weights),
                "lm_weights_file": str(lm_weights),
                "model": peer_model_spec(block, tokens),
                "lm": LM_BLOCK,
                "groups": groups,
                "beam_size": BEAM_SIZE,
                "ctc_weight": CTC_WEIGHT,
                "lm_weight": LM_WEIGHT,
                "maxlenratio": MAXLENRATIO,
                "threads": num_threads(),
                "seed": SEED,
            },
            timeout_s=SESSION_TIMEOUT_S,
        )
        ours = measure_ours(work / "model", work / "lm", utterances, groups, enc_file, session)
        peer = session.finish()
    headline = _headline(ours, peer, audio_s)
    label = f"beam {BEAM_SIZE} + LM {LM_WEIGHT}"
    metrics = []
    for mode, name in (("batch_1", "batch 1"), ("batched", f"{BATCH_SECONDS:g} s batches")):
        peer_s = peer_value(peer, "modes", mode, "decode_s")
        metrics.append(metric(f"RTF {label}, {name}", "wall s / audio s",
                              ours["modes"][mode]["decode_s"] / audio_s,
                              peer_s / audio_s if isinstance(peer_s, float) else peer_s,
                              higher_is_better=False))
        metrics.append(metric(f"tokens {label}, {name}", "count", ours["modes"][mode]["tokens"],
                              peer_value(peer, "modes", mode, "tokens")))
    metrics.append(metric("RTF batched (ours) vs batch 1 (peer)", "wall s / audio s",
                          headline["lm_beam_rtf_batched"], headline["peer_lm_beam_rtf"],
                          higher_is_better=False))
    metrics.append(metric("ASR parameters", "count", ours["parameters"],
                          peer_value(peer, "parameters")))
    metrics.append(metric("LM parameters", "count", ours["lm_parameters"],
                          peer_value(peer, "lm_parameters")))
    metrics.append(metric("LM share of our search (batch 1)", "fraction",
                          headline["lm_share_of_search"], None))
    metrics.append(metric("utterances the LM changes", "count", ours["lm_changed_hyps"], None))
    return {
        **headline,
        "description": f"beam {BEAM_SIZE} with transformer LM shallow fusion, random weights, "
                       "synthetic speech",
        "settings": {
            "model_block": block,
            "lm_block": LM_BLOCK,
            "lm_logit_scale": LM_LOGIT_SCALE,
            "vocab_size": VOCAB_SIZE,
            "utterances": len(utterances),
            "audio_seconds": audio_s,
            "beam_size": BEAM_SIZE,
            "ctc_weight": CTC_WEIGHT,
            "lm_weight": LM_WEIGHT,
            "maxlenratio": MAXLENRATIO,
            "batch_seconds": BATCH_SECONDS,
            "groups": groups,
            "passes": PASSES,
            "threads": num_threads(),
            "quick": quick,
            "peer_weights": peer_value(peer, "weights"),
            "peer_lm_weights": peer_value(peer, "lm_weights"),
            "peer_search": peer_value(peer, "search"),
        },
        "metrics": metrics,
        "ours": ours,
        "peer": peer,
    }
