"""Peer side of ``benchmarks/decode.py``: ESPnet2's ``espnet2.bin.asr_inference.Speech2Text``.

Usage (in the peer venv; ``benchmarks/decode.py`` writes the request)::

    benchmarks/.peer/bin/python benchmarks/peer/decode_peer.py REQUEST.json

Writes an ESPnet2 experiment folder (``config.yaml`` from ``ASRTask``'s own parser
defaults plus the request's model spec, the token list, and ``model.pth`` holding
this project's random weights renamed to ESPnet2's keys), builds ``Speech2Text``
from it, and decodes each utterance alone. It stays running: after one untimed
warm-up pass per method it prints ``{"ready": true}`` and then times one pass over all
utterances for each ``{"pass": METHOD}`` line on stdin (so ``decode.py`` interleaves
its passes with ours), until ``{"finish": true}``. ``ctc_greedy`` is ESPnet2's own
``encode`` + ``ctc.argmax`` (what its error calculator uses); ``beam_search`` is
``Speech2Text.__call__``. Then it runs ``Speech2Text.beam_search`` on *our* encoder
outputs (``enc_file``) and returns its best hypotheses as ``search_hyps``, so the two
searches are compared on identical inputs, and prints the result as its last JSON line.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from espnet2_model import build_espnet2_model, to_espnet2_state, write_asr_config


def write_experiment(request: dict[str, Any], exp: Path) -> tuple[Path, Path, str]:
    spec = request["model"]
    exp.mkdir(parents=True, exist_ok=True)
    config_file = exp / "config.yaml"
    write_asr_config(
        spec,
        config_file,
        specaug="specaug" if spec["specaug_conf"] is not None else None,
        specaug_conf=spec["specaug_conf"] or {},
        normalize="utterance_mvn",
        normalize_conf={},
        encoder="conformer",
    )
    ours = torch.load(request["weights_file"], map_location="cpu", weights_only=True)
    weights_note = "same weights as ours (renamed)"
    target = build_espnet2_model(spec)
    try:
        state = to_espnet2_state(ours, target)
    except (KeyError, ValueError) as err:  # still a fair speed test, with other weights
        torch.manual_seed(int(request["seed"]))
        state = target.state_dict()
        weights_note = f"own random weights ({err})"
    model_file = exp / "model.pth"
    torch.save(state, model_file)
    return config_file, model_file, weights_note


@torch.no_grad()
def search_on_encodings(s2t: Any, enc_file: str) -> list[list[int]]:
    """ESPnet2's beam search on given encoder outputs: best token ids per utterance."""
    encs = np.load(enc_file)
    eos = int(s2t.asr_model.eos)
    hyps = []
    for key in sorted(encs.files, key=lambda k: int(k[1:])):
        nbest = s2t.beam_search(x=torch.from_numpy(encs[key]), maxlenratio=s2t.maxlenratio,
                                minlenratio=s2t.minlenratio)
        hyps.append([int(t) for t in nbest[0].yseq[1:-1].tolist() if int(t) not in (0, eos)])
    return hyps


def make_decoder(Speech2Text: Any, request: dict[str, Any], config_file: Path, model_file: Path,
                 method: str) -> tuple[Any, Any]:
    """``(decode(speech) -> token ids, Speech2Text)`` for ``method``."""
    beam = method == "beam_search"
    s2t = Speech2Text(
        asr_train_config=str(config_file),
        asr_model_file=str(model_file),
        device="cpu",
        beam_size=int(request["beam_size"]) if beam else 1,
        ctc_weight=float(request["ctc_weight"]),
        lm_weight=0.0,
        penalty=0.0,
        maxlenratio=float(request["maxlenratio"]),
        minlenratio=0.0,
        nbest=1,
    )
    model = s2t.asr_model

    @torch.no_grad()
    def decode(speech: torch.Tensor) -> list[int]:
        if beam:  # a hypothesis cut at maxlen can end in a doubled eos: drop it
            return [int(t) for t in s2t(speech)[0][2] if int(t) != model.eos]
        enc, enc_lens = model.encode(speech.unsqueeze(0), torch.tensor([speech.numel()]))
        ids = torch.unique_consecutive(model.ctc.argmax(enc)[0, : int(enc_lens[0])])
        return [int(i) for i in ids if int(i) != 0]

    return decode, s2t


def reply(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


def main(request_file: str) -> None:
    from espnet2.bin.asr_inference import Speech2Text

    request = json.loads(Path(request_file).read_text())
    torch.set_num_threads(int(request["threads"]))
    config_file, model_file, weights_note = write_experiment(request, Path(request["work_dir"]) / "peer_exp")
    audio = np.load(request["audio_file"])
    utterances = [torch.from_numpy(audio[k]) for k in sorted(audio.files, key=lambda k: int(k[1:]))]
    decoders = {method: make_decoder(Speech2Text, request, config_file, model_file, method)
                for method in request["methods"]}
    for decode, _ in decoders.values():
        for utterance in utterances:  # warm-up pass, not timed: every length seen once
            decode(utterance)
    reply({"ready": True})
    passes: dict[str, list[float]] = {method: [] for method in decoders}
    hyps: dict[str, list[list[int]]] = {}
    for line in sys.stdin:  # {"pass": METHOD} times one pass; {"finish": true} ends
        command = json.loads(line)
        if "pass" not in command:
            break
        method = command["pass"]
        time.sleep(float(command.get("settle_s", 0.0)))  # let the other side's threads idle
        start = time.perf_counter()
        hyps[method] = [decoders[method][0](speech) for speech in utterances]
        passes[method].append(time.perf_counter() - start)
        reply({"seconds": passes[method][-1]})
    results = {
        method: {"decode_s": statistics.median(times), "pass_s": times,
                 "tokens": sum(len(h) for h in hyps[method]), "hyps": hyps[method]}
        for method, times in passes.items() if times
    }
    search_hyps = None
    if "beam_search" in decoders and request.get("enc_file"):
        search_hyps = search_on_encodings(decoders["beam_search"][1], request["enc_file"])

    import espnet

    model = next(iter(decoders.values()))[1].asr_model
    reply({
        "methods": results,
        "search_hyps": search_hyps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights": weights_note,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "espnet": espnet.__version__,
    })


if __name__ == "__main__":
    main(sys.argv[1])
