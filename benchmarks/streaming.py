"""Streaming recognition: ``espnet_infer.Speech2TextStreaming`` vs ESPnet2's ``Speech2TextStreaming``.

Usage::

    flock /tmp/bench.lock just bench streaming                  # ~8 min on 2 cores
    uv run --locked python benchmarks/run.py streaming --quick  # smoke run, ~1 min
    BENCH_RECIPE_DIR=/path/to/egs/mini/asr just bench streaming # another copy of the recipe
    BENCH_OFFLINE_SCORES=/path/to/exp/infer/scores.json just bench streaming

Issue 16's figures: the compute time of one feed call per chunk (p50 / p95) at chunks of
160, 320 and 640 ms, the delay from the end of speech to the final hypothesis, and the
real-time factor, for 1 and for 8 concurrent streams, on ``BENCH_THREADS`` (2) torch
threads; the same for ESPnet2 on the same weights, in the same run, passes alternating.

Model: the mini recipe's streaming model ``<recipe>/exp/train_streaming/model`` when it
exists, else a random one (seed 0) from the ``model:`` block of
``<recipe>/conf_streaming/training.yaml`` (global MVN statistics from the benchmark's
own audio); ``model`` in the JSON says which. The search settings (joint, beam, CTC
weight, penalty) and the headline chunk size are ``conf_streaming/inference.yaml``'s.
Audio: the first ``UTTERANCES`` utterances of ``<recipe>/data/test`` (synthetic speech
from ``espnet_data.synth`` when the split is missing).

Schedule (``_stream_schedule``): ``streams`` slots each hold one utterance; per tick one
chunk call feeds every occupied slot its next chunk (ours: one batched ``feed``; ESPnet2,
which holds one stream per object: the objects called one after another), then the
streams whose audio is all fed get their final call (an empty chunk, ``final=True``),
and freed slots take the next utterance. Per-chunk time = one chunk call; final delay =
the final call (ESPnet2: from the start of the tick's final calls to the end of that
stream's own); RTF = all calls / audio seconds. Each setting gets an untimed warm-up per side
(all utterances at 1 stream, ``WARMUP_UTTERANCES`` per slot with 8), then ``PASSES``
timed passes, ours and the peer's alternating; each figure is the median over passes,
with the spread (min, max) beside it.

Hypotheses (see ``docs/benchmarks.md``): ``hyps_identical`` compares the *searches*:
ESPnet2's ``BatchBeamSearchOnline``, given the encoder's block sizes, runs on our
encoder output (fed in the pieces our streaming encoder emitted) with CTC weight 0, where
our documented CTC difference vanishes, against our joint search at CTC weight 0. The
recipe's settings (CTC weight 0.5) are compared the same way, and with ESPnet2's own
40/16/16 search blocks, and the two full pipelines end to end; each comparison gives the
count identical and the differing utterances. With a language model fused (``lm_*``): a
random transformer LM (``decode_lm``'s :data:`~decode_lm.LM_BLOCK`, output layer scaled
as there so that it changes hypotheses), weight :data:`~decode_lm.LM_WEIGHT`, our fused
joint search against ESPnet2's ``BatchBeamSearchOnline`` with that LM as a scorer, at CTC
weight 0 and at the recipe's; ``lm_changed`` counts our utterances the LM changes.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from _harness import ROOT, SAMPLE_RATE, PeerSession, metric, num_threads, peer_value, token_list
from _stream_schedule import ticks

CHUNKS_MS = (160, 320, 640)
STREAMS = (1, 8)
PASSES = 3  # timed passes per setting and side; the median pass is reported
UTTERANCES = 32  # test utterances (~2.5 s each): ~80 s of audio per pass
WARMUP_UTTERANCES = 2  # per slot, untimed, before each setting's passes; all at 1 stream
SETTLE_S = 0.5  # pause before each timed pass (the other side's OpenMP threads go idle)
SEED = 0
VOCAB_SIZE = 128


def recipe_dir() -> Path:
    """``BENCH_RECIPE_DIR`` or ``egs/mini/asr``."""
    path = Path(os.environ.get("BENCH_RECIPE_DIR", ROOT / "egs" / "mini" / "asr"))
    if not (path / "conf_streaming" / "training.yaml").is_file():
        raise FileNotFoundError(
            f"{path}/conf_streaming/training.yaml is missing; set BENCH_RECIPE_DIR to the "
            "mini ASR recipe's folder (egs/mini/asr)"
        )
    return path


def decode_settings(recipe: Path) -> dict[str, Any]:
    """Beam, CTC weight, penalty, mode and chunk of ``conf_streaming/inference.yaml``."""
    path = recipe / "conf_streaming" / "inference.yaml"
    decode = (yaml.safe_load(path.read_text()) or {}).get("decode") or {}
    streaming = decode.get("streaming") or {}
    try:
        return {
            "beam_size": int(decode["beam_size"]),
            "ctc_weight": float(decode["ctc_weight"]),
            "penalty": float(decode.get("penalty", 0.0)),
            "mode": str(streaming["mode"]),
            "chunk_ms": float(streaming["chunk_ms"]),
        }
    except KeyError as err:
        raise KeyError(
            f"{path}: decode.{err.args[0]} is missing (the benchmark decodes with "
            "decode.beam_size, decode.ctc_weight and decode.streaming.mode/chunk_ms)"
        ) from err


def read_audio_set(recipe: Path, count: int, work: Path) -> tuple[list[str], list[np.ndarray], str]:
    """The first ``count`` utterances of ``<recipe>/data/test`` (keys, 16 kHz float32
    waves, a description), or synthetic sentences when that split was never made."""
    split = recipe / "data" / "test"
    if list(split.glob("shard-*.tar")):
        from espnet_data import ShardDataset, shard_paths

        keys, waves = [], []
        for sample in ShardDataset(shard_paths(split), rank=0, world_size=1):
            if sample["sample_rate"] != SAMPLE_RATE:
                raise ValueError(
                    f"{split}: {sample['key']} is at {sample['sample_rate']} Hz, "
                    f"expected {SAMPLE_RATE}"
                )
            keys.append(sample["key"])
            waves.append(np.asarray(sample["audio"], dtype=np.float32))
            if len(waves) == count:
                break
        return keys, waves, f"{split} (first {len(waves)} utterances)"
    from espnet_data import read_audio
    from espnet_data.synth import make_tiny_corpus

    paths = make_tiny_corpus(work / "synth", num_utterances=count, seed=SEED)
    waves = [read_audio(p)[0].astype(np.float32) for p in paths]
    return [p.stem for p in paths], waves, f"synthetic speech ({split} is missing)"


def random_model_folder(recipe: Path, folder: Path, waves: list[np.ndarray]) -> Path:
    """A model folder with random weights from ``conf_streaming/training.yaml``'s model block;
    global MVN statistics of ``waves`` (the block's ``global_mvn`` has no corpus here)."""
    from espnet_data import CharTokenizer, save_tokenizer
    from espnet_model import build_asr_model

    config = yaml.safe_load((recipe / "conf_streaming" / "training.yaml").read_text())
    block = dict(config["model"])
    tokens = token_list(VOCAB_SIZE)
    torch.manual_seed(SEED)
    model = build_asr_model(block, vocab_size=len(tokens)).eval()
    with torch.no_grad():
        feats = torch.cat(
            [model.frontend(torch.from_numpy(w)[None], torch.tensor([len(w)]))[0][0] for w in waves]
        )
    if block.get("normalize") == "global_mvn":
        model.normalize.mean.copy_(feats.mean(0))
        model.normalize.std.copy_(feats.std(0).clamp(min=1e-5))
    folder.mkdir(parents=True, exist_ok=True)
    spec = save_tokenizer(CharTokenizer(tokens), folder)
    (folder / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "model": block,
                "vocab_size": len(tokens),
                "tokenizer": spec,
                "sample_rate": SAMPLE_RATE,
            }
        )
    )
    torch.save(model.state_dict(), folder / "model.pt")
    return folder


def peer_spec(block: dict[str, Any], vocab_size: int) -> dict[str, Any]:
    """What ``streaming_peer.py`` builds ESPnet2's model from (see its docstring)."""
    from espnet_model import Fbank

    frontend = block.get("frontend", "default")
    conf = dict(block.get("frontend_conf") or {})
    if frontend == "default":  # our Fbank: ESPnet2's front-end with HTK mel bands
        fbank = Fbank(**conf)
        bands = {k: conf[k] for k in ("fmin", "fmax") if conf.get(k) is not None}
        if any(v != int(v) for v in bands.values()):
            raise ValueError(f"frontend_conf {bands}: ESPnet2 takes fmin/fmax in whole Hz")
        bands = {k: int(v) for k, v in bands.items()}
        conf = {
            "fs": fbank.sample_rate,
            "n_fft": fbank.n_fft,
            "win_length": fbank.win_length,
            "hop_length": fbank.hop_length,
            "n_mels": fbank.n_mels,
            "htk": True,
            **bands,  # ESPnet2 takes whole Hz (None: 0 and fs / 2, as ours)
        }
    elif frontend != "stft":  # stft is ESPnet2's own front-end, same arguments
        raise ValueError(f"model.frontend={frontend!r}: the peer is built for default or stft")
    if (
        block.get("normalize") != "global_mvn"
        or block.get("encoder") != "contextual_block_conformer"
        or block.get("decoder") != "transformer"
    ):
        raise ValueError(
            "the streaming peer is built for normalize: global_mvn, encoder: "
            "contextual_block_conformer and decoder: transformer; got "
            f"{block.get('normalize')!r}, {block.get('encoder')!r}, {block.get('decoder')!r}"
        )
    encoder_conf = {
        k: v for k, v in (block.get("encoder_conf") or {}).items() if k != "dynamic_blocks"
    }  # ours only: blocks drawn per training batch
    tokens = ["<blank>", "<unk>", *(f"t{i}" for i in range(2, vocab_size - 1)), "<sos/eos>"]
    return {
        "token_list": tokens,
        "frontend_conf": conf,
        "mel_norm_offset": frontend == "default",
        "encoder_conf": encoder_conf,
        "decoder_conf": dict(block.get("decoder_conf") or {}),
        "model_conf": dict(block.get("model_conf") or {}),
    }


@torch.inference_mode()
def run_pass(
    s2t: Any, waves: list[torch.Tensor], chunk_ms: float, streams: int, limit: int | None = None
) -> dict[str, Any]:
    """Our side of one pass (the peer's ``run_pass`` mirrors it): chunk and final call
    times, final hypotheses and encoder frame counts."""
    waves = waves[:limit] if limit else waves
    step = int(round(chunk_ms * SAMPLE_RATE / 1000))
    live: dict[int, Any] = {}
    chunk_s: list[float] = []
    final_s: list[float] = []
    hyps: dict[int, list[int]] = {}
    frames: dict[int, int] = {}
    empty = torch.zeros(0)
    for tick in ticks([w.numel() for w in waves], step, streams):
        for utt in tick.starts:
            live[utt] = s2t.start()
        group = [live[u] for u, _, _ in tick.feeds]
        chunks = [waves[u][a:b] for u, a, b in tick.feeds]
        start = time.perf_counter()
        s2t.feed(group, chunks)
        chunk_s.append(time.perf_counter() - start)
        if tick.finals:
            start = time.perf_counter()
            results = s2t.feed(
                [live[u] for u in tick.finals], [empty] * len(tick.finals), final=True
            )
            final_s += [time.perf_counter() - start] * len(tick.finals)
            for utt, result in zip(tick.finals, results, strict=True):
                hyps[utt], frames[utt] = list(result.tokens), result.frames
                del live[utt]
    return {
        "chunk_s": chunk_s,
        "final_s": final_s,
        "hyps": [hyps[i] for i in range(len(waves))],
        "frames": [frames[i] for i in range(len(waves))],
    }


def summarize(passes: list[dict[str, Any]], audio_s: float) -> dict[str, Any]:
    """Per pass p50/p95 chunk call, p50/p95 final call (ms) and RTF; their medians and spread."""
    rows = []
    for p in passes:
        chunk, final = np.array(p["chunk_s"]) * 1e3, np.array(p["final_s"]) * 1e3
        rows.append(
            {
                "p50_chunk_ms": float(np.percentile(chunk, 50)),
                "p95_chunk_ms": float(np.percentile(chunk, 95)),
                "final_delay_ms": float(np.percentile(final, 50)),
                "final_delay_p95_ms": float(np.percentile(final, 95)),
                "rtf": float((chunk.sum() + final.sum()) / 1e3 / audio_s),
                "chunk_calls": int(chunk.size),
                "final_calls": int(final.size),
            }
        )
    out: dict[str, Any] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    out["spread"] = {
        k: [min(r[k] for r in rows), max(r[k] for r in rows)]
        for k in ("p50_chunk_ms", "p95_chunk_ms", "final_delay_ms", "rtf")
    }
    out["passes"] = rows
    return out


@torch.inference_mode()
def encoder_pieces(s2t: Any, waves: list[torch.Tensor], chunk_ms: float) -> dict[str, np.ndarray]:
    """Each utterance's streaming encoder output fed ``chunk_ms`` at a time, alone, as
    ``Speech2TextStreaming`` computes it (``u{i}``), and the frame count after each call
    (``b{i}``, the final call last): what the peer's search-only comparison is fed."""
    from espnet_model.encoders.block_stream import BlockStreamState, stream_step
    from espnet_model.frontend_stream import FeatureStreamState, StreamingFeatures

    model = s2t.model
    features = StreamingFeatures(model.frontend, model.normalize)
    step = int(round(chunk_ms * SAMPLE_RATE / 1000))
    out: dict[str, np.ndarray] = {}
    for i, wave in enumerate(waves):
        feat_state, enc_state = FeatureStreamState(), BlockStreamState()
        pieces, bounds = [], []
        calls = [(wave[a : a + step], False) for a in range(0, wave.numel(), step)]
        for chunk, final in [*calls, (torch.zeros(0), True)]:
            feats = features.step(feat_state, chunk, final)
            pieces.append(stream_step(model.encoder, [enc_state], [feats], [final])[0])
            bounds.append(sum(p.size(0) for p in pieces))
        out[f"u{i}"], out[f"b{i}"] = torch.cat(pieces).numpy(), np.array(bounds)
    return out


def compare(ours: list[list[int]], theirs: Any, keys: list[str]) -> dict[str, Any]:
    """How many final hypotheses are identical token for token, and which differ."""
    if not isinstance(theirs, list):
        return {
            "identical": None,
            "of": len(ours),
            "fraction": None,
            "differing": None,
            "all": None,
            "note": theirs,
        }
    differing = [k for k, a, b in zip(keys, ours, theirs, strict=True) if a != b]
    same = len(ours) - len(differing)
    return {
        "identical": same,
        "of": len(ours),
        "fraction": same / len(ours),
        "differing": differing,
        "all": not differing,
    }


def read_wer(path: Path, key: str) -> tuple[float | None, str]:
    """``scores.json``'s test ``key`` (WER in %), or None and why."""
    if not path.is_file():
        return None, f"{path} is missing"
    value = (json.loads(path.read_text()).get("test") or {}).get(key)
    if not isinstance(value, int | float):
        return None, f"{path} has no test.{key}"
    return float(value), str(path)


def measure(
    s2t: dict[str, Any],
    peer: PeerSession,
    waves: list[torch.Tensor],
    chunks: tuple[int, ...],
    streams: tuple[int, ...],
    passes: int,
) -> dict[str, Any]:
    """Every setting: warm-up, then ``passes`` rounds of ours (joint), the peer, ours (ctc_prefix)."""
    audio_s = sum(w.numel() for w in waves) / SAMPLE_RATE
    settings: dict[str, Any] = {}
    for chunk_ms in chunks:
        for count in streams:
            # every utterance once at 1 stream (each final call's length is new to oneDNN
            # once), a few per slot with more streams (the batch shapes)
            limit = len(waves) if count == 1 else min(len(waves), WARMUP_UTTERANCES * count)
            for decoder in s2t.values():
                run_pass(decoder, waves, chunk_ms, count, limit)
            peer.ask({"pass": {"chunk_ms": chunk_ms, "streams": count, "limit": limit}})
            runs: dict[str, list[dict[str, Any]]] = {"joint": [], "peer": [], "ctc_prefix": []}
            for _ in range(passes):
                time.sleep(SETTLE_S)
                runs["joint"].append(run_pass(s2t["joint"], waves, chunk_ms, count))
                runs["peer"].append(
                    peer.ask(
                        {"pass": {"chunk_ms": chunk_ms, "streams": count}, "settle_s": SETTLE_S}
                    )
                )
                time.sleep(SETTLE_S)
                runs["ctc_prefix"].append(run_pass(s2t["ctc_prefix"], waves, chunk_ms, count))
            entry: dict[str, Any] = {"chunk_ms": chunk_ms, "streams": count}
            for side, results in runs.items():
                if any("unavailable" in r for r in results):
                    entry[side] = {"unavailable": results[-1].get("unavailable")}
                    continue
                entry[side] = {
                    **summarize(results, audio_s),
                    "hyps": results[-1]["hyps"],
                    "tokens": sum(len(h) for h in results[-1]["hyps"]),
                }
            settings[f"{chunk_ms}ms_x{count}"] = entry
    return settings


def random_lm(vocab_size: int, weights: Path) -> Any:
    """``decode_lm``'s random transformer LM (:func:`decode_lm.random_lm`), in eval mode;
    its weights (ESPnet2's names) saved to ``weights`` for the peer."""
    import decode_lm

    lm = decode_lm.random_lm(vocab_size)
    torch.save(lm.state_dict(), weights)
    return lm.eval()


def run(quick: bool = False) -> dict[str, Any]:
    from decode_lm import LM_BLOCK, LM_WEIGHT
    from espnet_infer import Speech2TextStreaming
    from espnet_model import count_parameters
    from espnet_model.host_memory import keep_freed_host_memory

    keep_freed_host_memory()  # as espnet-infer's workers do
    torch.set_num_threads(num_threads())
    recipe = recipe_dir()
    decode = decode_settings(recipe)
    chunks = (int(decode["chunk_ms"]),) if quick else CHUNKS_MS
    passes = 1 if quick else PASSES
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        work = Path(tmp)
        keys, arrays, audio_source = read_audio_set(recipe, 8 if quick else UTTERANCES, work)
        waves = [torch.from_numpy(a) for a in arrays]
        trained = recipe / "exp" / "train_streaming" / "model"
        kind = "trained" if (trained / "config.yaml").is_file() else "random"
        folder = (
            trained if kind == "trained" else random_model_folder(recipe, work / "model", arrays)
        )
        options = {
            "beam_size": decode["beam_size"],
            "ctc_weight": decode["ctc_weight"],
            "penalty": decode["penalty"],
        }
        s2t = {
            mode: Speech2TextStreaming.from_pretrained(folder, mode=mode, **options)
            for mode in (decode["mode"], "ctc_prefix")
        }
        if decode["mode"] != "joint":
            raise ValueError(
                f"conf_streaming/inference.yaml: decode.streaming.mode="
                f"{decode['mode']!r}; the peer comparison is of the joint search"
            )
        model = s2t["joint"].model
        encoder = model.encoder
        blocks = [encoder.block_size, encoder.hop_size, encoder.look_ahead]
        config = yaml.safe_load((folder / "config.yaml").read_text())
        weights = work / "weights.pt"
        torch.save(model.state_dict(), weights)
        np.savez(work / "audio.npz", **{f"u{i}": a for i, a in enumerate(arrays)})
        pieces = encoder_pieces(s2t["joint"], waves, decode["chunk_ms"])
        np.savez(work / "enc.npz", **pieces)
        lm = random_lm(int(config["vocab_size"]), work / "lm.pt")
        peer = PeerSession(
            "streaming_peer.py",
            {
                "work_dir": tmp,
                "audio_file": str(work / "audio.npz"),
                "enc_file": str(work / "enc.npz"),
                "weights_file": str(weights),
                "model": peer_spec(config["model"], int(config["vocab_size"])),
                "beam_size": decode["beam_size"],
                "ctc_weight": decode["ctc_weight"],
                "penalty": decode["penalty"],
                "search_blocks": blocks,
                "sample_rate": SAMPLE_RATE,
                "threads": num_threads(),
                "lm": LM_BLOCK,
                "lm_weights_file": str(work / "lm.pt"),
            },
        )
        settings = measure(s2t, peer, waves, chunks, STREAMS, passes)
        ctc0 = Speech2TextStreaming.from_pretrained(
            folder, mode="joint", **{**options, "ctc_weight": 0.0}
        )
        ctc0_pass = run_pass(ctc0, waves, decode["chunk_ms"], 1)
        ours_ctc0 = ctc0_pass["hyps"]
        emitted = [int(pieces[f"b{i}"][-1]) for i in range(len(waves))]
        if emitted != ctc0_pass["frames"]:
            raise RuntimeError(
                "encoder_pieces() no longer reproduces Speech2TextStreaming's encoder frames "
                f"({emitted} vs {ctc0_pass['frames']}); update it to feed the encoder as "
                "espnet_infer.streaming does"
            )
        searches = {
            "ctc0": peer.ask({"search": {"ctc_weight": 0.0, "blocks": blocks}}),
            "recipe": peer.ask({"search": {"ctc_weight": decode["ctc_weight"], "blocks": blocks}}),
            "recipe_espnet2_blocks": peer.ask({"search": {"ctc_weight": decode["ctc_weight"]}}),
        }
        lm_ours: dict[str, list[list[int]]] = {}
        for name, weight in (("lm_same_search", 0.0), ("lm_recipe", decode["ctc_weight"])):
            fused = Speech2TextStreaming.from_pretrained(
                folder, mode="joint", lm=lm, lm_weight=LM_WEIGHT,
                **{**options, "ctc_weight": weight},
            )  # fmt: skip
            lm_ours[name] = run_pass(fused, waves, decode["chunk_ms"], 1)["hyps"]
            searches[name] = peer.ask(
                {"search": {"ctc_weight": weight, "blocks": blocks, "lm_weight": LM_WEIGHT}}
            )
        peer_result = peer.finish()
        parameters = count_parameters(model)
    headline = settings[f"{int(decode['chunk_ms'])}ms_x1"]
    ours_hyps = headline["joint"]["hyps"]
    hyps = {
        "same_search": {
            "ctc_weight": 0.0,
            "blocks": blocks,
            **compare(ours_ctc0, peer_value(searches["ctc0"], "hyps"), keys),
        },
        "recipe": {
            "ctc_weight": decode["ctc_weight"],
            "blocks": blocks,
            **compare(ours_hyps, peer_value(searches["recipe"], "hyps"), keys),
        },
        "recipe_espnet2_blocks": {
            "ctc_weight": decode["ctc_weight"],
            "blocks": [40, 16, 16],
            **compare(ours_hyps, peer_value(searches["recipe_espnet2_blocks"], "hyps"), keys),
        },
        "e2e": {
            "ctc_weight": decode["ctc_weight"],
            "blocks": blocks,
            **compare(ours_hyps, peer_value(headline["peer"], "hyps"), keys),
        },
        **{
            name: {
                "ctc_weight": weight,
                "lm_weight": LM_WEIGHT,
                "blocks": blocks,
                **compare(lm_ours[name], peer_value(searches[name], "hyps"), keys),
                "lm_changed": sum(
                    a != b
                    for a, b in zip(
                        lm_ours[name], ours_ctc0 if weight == 0.0 else ours_hyps, strict=True
                    )
                ),
            }
            for name, weight in (("lm_same_search", 0.0), ("lm_recipe", decode["ctc_weight"]))
        },
        "ours_same_across_settings": all(
            s["joint"]["hyps"] == ours_hyps for s in settings.values()
        ),
    }
    streaming_file = recipe / "exp" / "infer_streaming" / "scores.json"
    # without the LM: wer_no_lm when the streaming decode fused one, else its wer
    streaming_wer, streaming_src = read_wer(streaming_file, "wer_no_lm")
    streaming_wer_lm: float | None = None
    if streaming_wer is None:
        streaming_wer, streaming_src = read_wer(streaming_file, "wer")
    else:
        streaming_wer_lm, _ = read_wer(streaming_file, "wer")
    offline_file = Path(
        os.environ.get("BENCH_OFFLINE_SCORES", recipe / "exp" / "infer" / "scores.json")
    )
    offline_wer, offline_src = read_wer(offline_file, "wer_no_lm")
    offline_wer_lm, _ = read_wer(offline_file, "wer")
    for name, value, source in (
        ("streaming (no LM)", streaming_wer, streaming_src),
        ("offline (no LM)", offline_wer, offline_src),
        ("streaming with the LM", streaming_wer_lm, streaming_src),
        ("offline with the LM", offline_wer_lm, offline_src),
    ):
        print(f"{name} test WER: {value if value is not None else 'null'} ({source})")
    ratio = streaming_wer / offline_wer if streaming_wer is not None and offline_wer else None
    print(f"streaming / offline WER: {ratio if ratio is not None else 'null'} (target <= 1.3)")

    def ours_peer(entry: dict[str, Any], key: str) -> tuple[Any, Any]:
        peer_entry = entry["peer"]
        theirs = (
            peer_entry.get(key)
            if "unavailable" not in peer_entry
            else f"unavailable: {peer_entry['unavailable']}"
        )
        return entry["joint"][key], theirs

    metrics = []
    ratios: dict[str, float | None] = {}
    for name, entry in settings.items():
        label = f"{entry['chunk_ms']} ms x{entry['streams']}"
        for key, title, unit in (
            ("p50_chunk_ms", "chunk call p50", "ms"),
            ("p95_chunk_ms", "chunk call p95", "ms"),
            ("final_delay_ms", "final delay p50", "ms"),
            ("final_delay_p95_ms", "final delay p95", "ms"),
            ("rtf", "RTF", "wall s / audio s"),
        ):
            ours, theirs = ours_peer(entry, key)
            metrics.append(metric(f"{title}, {label}", unit, ours, theirs, higher_is_better=False))
        for key, title, unit in (
            ("p95_chunk_ms", "ctc_prefix chunk call p95", "ms"),
            ("final_delay_ms", "ctc_prefix final delay p50", "ms"),
            ("rtf", "ctc_prefix RTF", "wall s / audio s"),
        ):
            metrics.append(metric(f"{title}, {label}", unit, entry["ctc_prefix"][key], None))
        ours, theirs = ours_peer(entry, "p95_chunk_ms")
        ratios[name] = ours / theirs if isinstance(theirs, float) and theirs else None
    for name, entry in hyps.items():
        if isinstance(entry, dict):
            metrics.append(
                metric(f"hyps identical: {name}", "utterances", entry["identical"], None)
            )
    metrics += [
        metric("streaming test WER (no LM)", "%", streaming_wer, None),
        metric("offline test WER (no LM)", "%", offline_wer, None),
        metric("streaming test WER with the LM", "%", streaming_wer_lm, None),
        metric("offline test WER with the LM", "%", offline_wer_lm, None),
        metric("parameters", "count", parameters, peer_value(peer_result, "parameters")),
    ]
    p95, peer_p95 = ours_peer(headline, "p95_chunk_ms")
    delay, peer_delay = ours_peer(headline, "final_delay_ms")
    rtf, peer_rtf = ours_peer(headline, "rtf")
    known = [r for r in ratios.values() if r is not None]
    return {
        "model": kind,
        "headline_setting": {"chunk_ms": int(decode["chunk_ms"]), "streams": 1},
        "p95_chunk_ms": p95,
        "peer_p95_chunk_ms": peer_p95,
        "final_delay_ms": delay,
        "peer_final_delay_ms": peer_delay,
        "rtf": rtf,
        "peer_rtf": peer_rtf,
        "p95_ratio": ratios,
        "p95_target_met": all(r <= 0.5 for r in known) if len(known) == len(ratios) else None,
        "hyps_identical": hyps["same_search"]["all"],
        "lm_hyps_identical": hyps["lm_same_search"]["all"],
        "hyps": hyps,
        "streaming_test_wer": streaming_wer,
        "offline_test_wer": offline_wer,
        "wer_ratio": ratio,
        "streaming_test_wer_lm": streaming_wer_lm,
        "offline_test_wer_lm": offline_wer_lm,
        "wer_sources": {"streaming": streaming_src, "offline": offline_src},
        "description": f"streaming decode, {kind} model, {audio_source}",
        "settings": {
            "model_dir": str(folder) if kind == "trained" else "random (seed 0)",
            "model_block": config["model"],
            "decode": decode,
            "search_blocks": blocks,
            "utterances": len(waves),
            "keys": keys,
            "audio_seconds": sum(w.numel() for w in waves) / SAMPLE_RATE,
            "chunks_ms": list(chunks),
            "streams": list(STREAMS),
            "passes": passes,
            "warmup_utterances_per_stream": WARMUP_UTTERANCES,
            "threads": num_threads(),
            "quick": quick,
            "peer_weights": peer_value(peer_result, "weights"),
        },
        "metrics": metrics,
        "ours": {name: {k: v for k, v in e.items() if k != "peer"} for name, e in settings.items()},
        "peer": {"result": peer_result, **{name: e["peer"] for name, e in settings.items()}},
        "hyps_ctc0_ours": ours_ctc0,
    }
