"""Peer side of ``benchmarks/decode_lm.py``: ESPnet2's ``Speech2Text`` with a transformer LM.

Usage (in the peer venv; ``benchmarks/decode_lm.py`` writes the request)::

    benchmarks/.peer/bin/python benchmarks/peer/decode_lm_peer.py REQUEST.json

Writes the ASR experiment folder as ``decode_peer.py`` does (this project's random ASR
weights renamed to ESPnet2's keys) and an LM experiment folder: ``config.yaml`` from
``LMTask``'s own parser (as ``lm_train`` writes it) and ``lm.pth``, this project's LM
weights, which carry ESPnet2's ``ESPnetLanguageModel`` names and are loaded here with
``strict=True`` before they are saved (ESPnet2's ``build_model_from_file`` loads
non-strictly, so a missing key would otherwise go unnoticed). ``Speech2Text`` is built
from both (``lm_weight``, ``ctc_weight``, ``beam_size`` from the request), so it runs
``BatchBeamSearch`` with the decoder, CTC prefix and LM scorers.

It stays running: after one untimed warm-up pass at batch 1 and one in the request's
``groups`` (utterance indices per batch, cut by ``decode_lm.py`` with
``DynamicBatcher``) it prints ``{"ready": true}``, then times one pass for each
``{"pass": "batch_1" | "batched"}`` line on stdin: each utterance alone
(``Speech2Text.__call__``), or each group as one ``Speech2Text.batch_decode`` call (its
one batched beam search). After ``{"finish": true}`` it runs the beam search on *our*
encoder outputs (``enc_file``) and returns its best hypotheses as ``search_hyps``
(``decode_peer.search_on_encodings``), and prints the result as its last JSON line.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from decode_peer import reply, search_on_encodings, write_experiment


def write_lm_experiment(request: dict[str, Any], exp: Path) -> tuple[Path, Path]:
    """``(config.yaml, lm.pth)`` of an ESPnet2 LM experiment holding our LM weights."""
    from espnet2.tasks.lm import LMTask

    exp.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        train_yaml = Path(tmp) / "train_lm.yaml"
        train_yaml.write_text(
            yaml.safe_dump({**request["lm"], "token_list": request["model"]["token_list"]})
        )
        args = LMTask.get_parser().parse_args(
            ["--config", str(train_yaml), "--output_dir", str(exp)]
        )
        model = LMTask.build_model(args)
    ours = torch.load(request["lm_weights_file"], map_location="cpu", weights_only=True)
    model.load_state_dict(ours, strict=True)  # same names and shapes, nothing left out
    config_file = exp / "config.yaml"
    config_file.write_text(yaml.safe_dump(json.loads(json.dumps(vars(args), default=str))))
    model_file = exp / "lm.pth"
    torch.save(model.state_dict(), model_file)
    return config_file, model_file


def token_ids(result: Any, eos: int) -> list[int]:
    """Best hypothesis's ids from one n-best list; a doubled eos at maxlen is dropped."""
    return [int(t) for t in result[0][2] if int(t) != eos]


def main(request_file: str) -> None:
    from espnet2.bin.asr_inference import Speech2Text

    request = json.loads(Path(request_file).read_text())
    torch.set_num_threads(int(request["threads"]))
    work = Path(request["work_dir"])
    config_file, model_file, weights_note = write_experiment(request, work / "peer_exp")
    lm_config, lm_file = write_lm_experiment(request, work / "peer_lm_exp")
    audio = np.load(request["audio_file"])
    utterances = [torch.from_numpy(audio[k]) for k in sorted(audio.files, key=lambda k: int(k[1:]))]
    groups: list[list[int]] = request["groups"]
    s2t = Speech2Text(
        asr_train_config=str(config_file),
        asr_model_file=str(model_file),
        lm_train_config=str(lm_config),
        lm_file=str(lm_file),
        device="cpu",
        beam_size=int(request["beam_size"]),
        ctc_weight=float(request["ctc_weight"]),
        lm_weight=float(request["lm_weight"]),
        penalty=0.0,
        maxlenratio=float(request["maxlenratio"]),
        minlenratio=0.0,
        nbest=1,
        batch_size=max(len(g) for g in groups),
    )
    eos = int(s2t.asr_model.eos)
    search = type(s2t.beam_search).__name__

    @torch.no_grad()
    def batch_1() -> list[list[int]]:
        return [token_ids(s2t(speech), eos) for speech in utterances]

    @torch.no_grad()
    def batched() -> list[list[int]]:
        hyps: dict[int, list[int]] = {}
        for group in groups:
            results = s2t.batch_decode([utterances[i] for i in group])
            hyps.update((i, token_ids(r, eos)) for i, r in zip(group, results, strict=True))
        return [hyps[i] for i in range(len(utterances))]

    modes = {"batch_1": batch_1, "batched": batched}
    for decode in modes.values():  # warm-up passes, not timed: every length seen once
        decode()
    reply({"ready": True})
    passes: dict[str, list[float]] = {mode: [] for mode in modes}
    hyps: dict[str, list[list[int]]] = {}
    for line in sys.stdin:  # {"pass": MODE} times one pass; {"finish": true} ends
        command = json.loads(line)
        if "pass" not in command:
            break
        mode = command["pass"]
        time.sleep(float(command.get("settle_s", 0.0)))  # let the other side's threads idle
        start = time.perf_counter()
        hyps[mode] = modes[mode]()
        passes[mode].append(time.perf_counter() - start)
        reply({"seconds": passes[mode][-1]})
    results = {
        mode: {"decode_s": statistics.median(times), "pass_s": times,
               "tokens": sum(len(h) for h in hyps[mode]), "hyps": hyps[mode]}
        for mode, times in passes.items() if times
    }
    search_hyps = search_on_encodings(s2t, request["enc_file"]) if request.get("enc_file") else None

    import espnet

    reply({
        "modes": results,
        "search_hyps": search_hyps,
        "search": search,
        "parameters": sum(p.numel() for p in s2t.asr_model.parameters()),
        "lm_parameters": sum(p.numel() for p in s2t.beam_search.full_scorers["lm"].parameters()),
        "weights": weights_note,
        "lm_weights": "same weights as ours (loaded with strict=True)",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "espnet": espnet.__version__,
    })


if __name__ == "__main__":
    main(sys.argv[1])
