"""Peer side of ``benchmarks/streaming.py``: ESPnet2's ``Speech2TextStreaming`` on our weights.

Usage (in the peer venv; ``benchmarks/streaming.py`` writes the request)::

    benchmarks/.peer/bin/python benchmarks/peer/streaming_peer.py REQUEST.json

Writes an ESPnet2 experiment folder (``config.yaml`` from ``ASRTask``'s own parser
defaults plus the request's model spec: ``encoder: contextual_block_conformer``,
``decoder: transformer``, ``normalize: global_mvn``), and ``model.pth`` holding this
project's weights renamed to ESPnet2's keys (the contextual block conformer's names are
ESPnet2's already), then builds ``espnet2.bin.asr_inference_streaming.Speech2TextStreaming``
from the two files. One such object holds one stream (its frontend buffer, encoder
states and search live in the object), so a run with ``streams`` concurrent streams
builds that many over the same model (``asr_model=`` / ``asr_train_args=``).

Front-end: ESPnet2's ``frontend: default`` is a centred STFT with librosa's mel matrix,
which always applies Slaney area normalisation; this project's ``frontend: default`` is
Kaldi-style framing with an HTK mel matrix without it. With ``mel_norm_offset`` the
peer's front-end is given ``htk: true`` (the same mel bands) and the global-MVN means are
moved by each band's log normalisation factor, so that the normalised features match
ours up to the window's centring (half a window, 12.5 ms) and periodic vs symmetric Hann
window; every trained parameter is ours unchanged.

The search: ``Speech2TextStreaming`` builds its ``BatchBeamSearchOnline`` without the
encoder's block sizes, so it searches with blocks of 40/16/16 frames whatever the encoder
does; with ``search_blocks`` in the request the search's ``block_size``, ``hop_size`` and
``look_ahead`` (arguments of ``BatchBeamSearchOnline``'s constructor) are set to the given
ones after construction.

It stays running: it prints ``{"ready": true}``, then answers one JSON line per command
on stdin:

- ``{"pass": {"chunk_ms": C, "streams": S, "limit": N}}``: feed the first N utterances
  (all without ``limit``) by ``_stream_schedule.ticks``; per chunk call and per final
  call the wall time, and the final hypotheses;
- ``{"search": {"ctc_weight": W, "blocks": [B, H, L]}}``: ESPnet2's
  ``BatchBeamSearchOnline`` alone on *our* encoder output (``enc_file``), fed in the
  pieces our streaming encoder emitted them; the best hypothesis per utterance;
- ``{"finish": true}``: the versions and the weights note, as the last JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/
from _stream_schedule import ticks  # noqa: E402
from espnet2_model import to_espnet2_state, write_asr_config  # noqa: E402


def mel_norm_log_offset(frontend_conf: dict[str, Any]) -> torch.Tensor:
    """Per mel band, ``log`` of the factor by which librosa's Slaney-normalised mel
    matrix (ESPnet2's ``LogMel``) exceeds the same matrix without normalisation."""
    import librosa

    fs = int(frontend_conf["fs"])
    options = {
        "sr": fs, "n_fft": int(frontend_conf["n_fft"]), "n_mels": int(frontend_conf["n_mels"]),
        "fmin": float(frontend_conf.get("fmin") or 0.0),
        "fmax": float(frontend_conf.get("fmax") or fs / 2), "htk": True,
    }  # fmt: skip
    slaney = librosa.filters.mel(**options)
    plain = librosa.filters.mel(**options, norm=None)
    return torch.from_numpy(np.log(slaney.sum(1) / plain.sum(1))).float()


def write_experiment(request: dict[str, Any], exp: Path) -> tuple[Path, Path, str]:
    """``config.yaml`` and ``model.pth`` of an ESPnet2 experiment holding our weights."""
    from espnet2.tasks.asr import ASRTask

    spec = request["model"]
    ours = torch.load(request["weights_file"], map_location="cpu", weights_only=True)
    mean, std = ours["normalize.mean"].clone(), ours["normalize.std"]
    note = "same weights as ours (renamed)"
    if spec["mel_norm_offset"]:
        mean += mel_norm_log_offset(spec["frontend_conf"])
        note += "; global-MVN means moved by the log Slaney factor of each mel band"
    exp.mkdir(parents=True, exist_ok=True)
    stats = exp / "feats_stats.npz"  # GlobalMVN reads it when built; model.pth overrides
    np.savez(
        stats,
        count=np.array(1),
        sum=mean.double().numpy(),
        sum_square=(std.double() ** 2 + mean.double() ** 2).numpy(),
    )
    config_file = exp / "config.yaml"
    write_asr_config(
        spec,
        config_file,
        specaug=None,
        specaug_conf={},
        normalize="global_mvn",
        normalize_conf={"stats_file": str(stats)},
        encoder="contextual_block_conformer",
    )
    target, _ = ASRTask.build_model_from_file(config_file, None, "cpu")
    state = to_espnet2_state(ours, target)  # raises on any name or shape mismatch
    state["normalize.mean"] = mean
    model_file = exp / "model.pth"
    torch.save(state, model_file)
    return config_file, model_file, note


class Peer:
    """ESPnet2's streaming recogniser over one model, one object per stream."""

    def __init__(self, request: dict[str, Any]) -> None:
        from espnet2.bin.asr_inference_streaming import Speech2TextStreaming

        self.request = request
        config_file, model_file, self.weights_note = write_experiment(
            request, Path(request["work_dir"]) / "peer_exp"
        )
        self.cls = Speech2TextStreaming
        first = self.make(
            float(request["ctc_weight"]),
            request.get("search_blocks"),
            asr_train_config=str(config_file),
            asr_model_file=str(model_file),
        )
        self.model, self.args = first.asr_model, first.asr_train_args
        self.pool = [first]
        self.lm_files: dict[str, str] = {}
        if request.get("lm"):  # our LM as an ESPnet2 LM experiment, for the fused search
            from decode_lm_peer import write_lm_experiment

            lm_config, lm_file = write_lm_experiment(
                request, Path(request["work_dir"]) / "peer_lm_exp"
            )
            self.lm_files = {"lm_train_config": str(lm_config), "lm_file": str(lm_file)}
        audio = np.load(request["audio_file"])
        self.audio = [
            torch.from_numpy(audio[k]) for k in sorted(audio.files, key=lambda k: int(k[1:]))
        ]

    def make(
        self, ctc_weight: float, blocks: list[int] | None, lm_weight: float = 0.0, **source: Any
    ) -> Any:
        """A ``Speech2TextStreaming`` with the request's search settings (and the LM at
        ``lm_weight`` when it is not 0)."""
        if not source:
            source = {"asr_model": self.model, "asr_train_args": self.args}
        if lm_weight:
            source = {**source, **self.lm_files}
        s2t = self.cls(
            **source, device="cpu", beam_size=int(self.request["beam_size"]),
            ctc_weight=ctc_weight, penalty=float(self.request["penalty"]),
            lm_weight=lm_weight, maxlenratio=0.0, minlenratio=0.0, nbest=1,
        )  # fmt: skip
        if blocks is not None:
            search = s2t.beam_search
            search.block_size, search.hop_size, search.look_ahead = (int(b) for b in blocks)
        return s2t

    def objects(self, count: int) -> list[Any]:
        while len(self.pool) < count:
            self.pool.append(
                self.make(float(self.request["ctc_weight"]), self.request.get("search_blocks"))
            )
        return self.pool[:count]

    @torch.no_grad()
    def run_pass(self, chunk_ms: float, streams: int, limit: int | None) -> dict[str, Any]:
        """Feed the utterances by the shared schedule; the call times and final hypotheses.

        A chunk call's time is the sum over the streams fed in that tick (called one after
        another: ESPnet2 has no batching across streams); a final call's time is counted
        from the start of the tick's final calls to the end of that stream's own call.
        """
        audio = self.audio[:limit] if limit else self.audio
        step = int(round(chunk_ms * int(self.request["sample_rate"]) / 1000))
        free = list(reversed(self.objects(streams)))
        owner: dict[int, Any] = {}
        empty = torch.zeros(0)
        chunk_s: list[float] = []
        final_s: list[float] = []
        hyps: dict[int, list[int]] = {}
        for tick in ticks([a.numel() for a in audio], step, streams):
            for utt in tick.starts:
                owner[utt] = free.pop()
            start = time.perf_counter()
            for utt, a, b in tick.feeds:
                owner[utt](audio[utt][a:b], is_final=False)
            chunk_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            for utt in tick.finals:
                out = owner[utt](empty, is_final=True)  # resets the object for reuse
                final_s.append(time.perf_counter() - start)
                hyps[utt] = [int(t) for t in out[0][2]] if out else []
                free.append(owner.pop(utt))
        return {
            "chunk_s": chunk_s,
            "final_s": final_s,
            "hyps": [hyps[i] for i in range(len(audio))],
        }

    @torch.no_grad()
    def search(
        self, ctc_weight: float, blocks: list[int] | None, lm_weight: float = 0.0
    ) -> list[list[int]]:
        """``BatchBeamSearchOnline`` on our encoder output, fed as our encoder emitted it
        (with the LM as a scorer when ``lm_weight`` is not 0)."""
        s2t = self.make(ctc_weight, blocks, lm_weight)
        search = s2t.beam_search
        eos = int(self.model.eos)
        data = np.load(self.request["enc_file"])
        hyps = []
        for i in range(len(self.audio)):
            enc = torch.from_numpy(data[f"u{i}"])
            bounds = [int(b) for b in data[f"b{i}"]]
            search.reset()
            out: list[Any] = []
            previous = 0
            for n, end in enumerate(bounds):
                final = n == len(bounds) - 1
                if end > previous or final:
                    out = search(
                        x=enc[previous:end], maxlenratio=0.0, minlenratio=0.0, is_final=final
                    )
                previous = end
            best = out[0].yseq[1:-1].tolist() if out else []
            hyps.append([int(t) for t in best if int(t) not in (0, eos)])
        return hyps


def reply(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


def main(request_file: str) -> None:
    request = json.loads(Path(request_file).read_text())
    torch.set_num_threads(int(request["threads"]))
    peer = Peer(request)
    reply({"ready": True})
    for line in sys.stdin:
        command = json.loads(line)
        time.sleep(float(command.get("settle_s", 0.0)))  # let the other side's threads idle
        if "pass" in command:
            args = command["pass"]
            reply(peer.run_pass(float(args["chunk_ms"]), int(args["streams"]), args.get("limit")))
        elif "search" in command:
            args = command["search"]
            reply(
                {
                    "hyps": peer.search(
                        float(args["ctc_weight"]), args.get("blocks"),
                        float(args.get("lm_weight", 0.0)),
                    )
                }
            )  # fmt: skip
        else:
            break

    import espnet

    reply(
        {
            "parameters": sum(p.numel() for p in peer.model.parameters()),
            "weights": peer.weights_note,
            "search_blocks": request.get("search_blocks"),
            "espnet2_default_blocks": [40, 16, 16],
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "espnet": espnet.__version__,
        }
    )


if __name__ == "__main__":
    main(sys.argv[1])
