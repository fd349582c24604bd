"""Write tiny ESPnet2 LM experiment folders and ESPnet2's outputs on fixed inputs.

Runs in the ESPnet2 peer venv (``benchmarks/.peer``, made by ``benchmarks/peer/setup.sh``),
never in this project's: it imports only ``espnet2``, ``torch`` and ``yaml``.

Usage (from the repository root; regenerates the committed fixture):
    benchmarks/.peer/bin/python tests/espnet_model/make_espnet2_lm_fixture.py \\
        tests/data/espnet2_lm_tiny --count-librispeech
    benchmarks/.peer/bin/python tests/espnet_model/make_espnet2_lm_fixture.py --count-librispeech

For each LM (``transformer``: ``pos_enc: null``; ``transformer_sinusoidal``; ``seq_rnn``:
a 2-layer LSTM) it writes ``OUT/<name>/``: ``config.yaml`` (every argument, as ESPnet2's
trainer writes it), ``valid.loss.ave.pth`` (a plain state dict of random weights) and
``expected.pt``: the inputs and ESPnet2's per-token NLL, loss, logits and the
``batch_score`` log-probabilities of every step over fixed prefixes (rows reordered
after step 3, as a beam search does). ``OUT/espnet2_defaults.json`` records ESPnet2's
constructor defaults. ``--count-librispeech`` writes (to ``OUT/counts.json`` when OUT is
given) and prints ESPnet2's parameter count of the LibriSpeech transformer LM
(``egs2/librispeech/asr1/conf/tuning/train_lm_transformer2.yaml``, 5000 tokens).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

TOKENS = ["<blank>", "<unk>", "a", "b", "c", "d", "e", "f", "g", "<sos/eos>"]

LMS: dict[str, dict[str, Any]] = {
    "transformer": {
        "lm": "transformer",
        "lm_conf": {"pos_enc": None, "embed_unit": 8, "att_unit": 16, "head": 2, "unit": 32,
                    "layer": 2},
    },
    "transformer_sinusoidal": {
        "lm": "transformer",
        "lm_conf": {"pos_enc": "sinusoidal", "embed_unit": 12, "att_unit": 16, "head": 4,
                    "unit": 24, "layer": 2, "dropout_rate": 0.0},
    },
    "seq_rnn": {"lm": "seq_rnn", "lm_conf": {"unit": 16, "nhid": 12, "nlayers": 2}},
}  # fmt: skip

# egs2/librispeech/asr1/conf/tuning/train_lm_transformer2.yaml (model keys).
LIBRISPEECH_LM = {
    "lm": "transformer",
    "lm_conf": {"pos_enc": None, "embed_unit": 128, "att_unit": 512, "head": 8, "unit": 2048,
                "layer": 16, "dropout_rate": 0.0},
}  # fmt: skip
LIBRISPEECH_VOCAB = 5000

# Inputs (ids of TOKENS; 9 = <sos/eos>). Text is padded with 0, as ESPnet2's collate does.
TEXT = [[2, 3, 4, 5, 6], [7, 8, 2, 0, 0], [3, 0, 0, 0, 0]]
TEXT_LENGTHS = [5, 3, 1]
# Prefixes for batch_score; row 1 holds a <blank> (0), which a transformer LM masks.
PREFIXES = [[9, 2, 3, 4, 5, 6], [9, 4, 4, 0, 7, 8], [9, 8, 7, 6, 5, 4], [9, 5, 2, 6, 3, 3]]
REORDER_AFTER = 3  # after scoring prefixes of 3 tokens, rows become PERM
PERM = [2, 0, 0, 3]


def _build(config: dict[str, Any], token_list: list[str], workdir: Path) -> tuple[Any, Any]:
    """ESPnet2's own argument parsing and ``LMTask.build_model``, as ``lm_train`` does."""
    from espnet2.tasks.lm import LMTask

    conf_file = workdir / "train.yaml"
    conf_file.write_text(yaml.safe_dump({**config, "token_list": token_list}))
    args = LMTask.get_parser().parse_args(
        ["--config", str(conf_file), "--output_dir", str(workdir / "exp")]
    )
    return args, LMTask.build_model(args)


def _batch_scores(lm: Any) -> torch.Tensor:
    """ESPnet2's ``batch_score`` at every prefix length: ``(L, n, V)``."""
    ys = torch.tensor(PREFIXES)
    states: list[Any] = [None] * len(ys)
    out = []
    for length in range(1, ys.size(1) + 1):
        if length == REORDER_AFTER + 1:
            ys = ys[PERM]
            states = [states[i] for i in PERM]
        logp, states = lm.batch_score(ys[:, :length], states, None)
        out.append(logp)
    return torch.stack(out)


def make_fixture(out: Path, name: str) -> None:
    torch.manual_seed(0)
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        args, model = _build(LMS[name], TOKENS, Path(tmp))
    with torch.no_grad():  # move LayerNorm and every bias off their initial values
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    args.config = "conf/train_lm.yaml"  # paths as in a recipe (stable across runs)
    args.output_dir = f"exp/lm_train_lm_{name}_char"
    (folder / "config.yaml").write_text(yaml.safe_dump(vars(args), sort_keys=False))
    torch.save(model.state_dict(), folder / "valid.loss.ave.pth")

    model.eval()
    text, text_lengths = torch.tensor(TEXT), torch.tensor(TEXT_LENGTHS)
    with torch.no_grad():
        nll, nll_lengths = model.nll(text, text_lengths)
        loss, _, weight = model(text, text_lengths)
        x = torch.nn.functional.pad(text, [1, 0], "constant", len(TOKENS) - 1)
        logits, _ = model.lm(x, None)
        batch_logp = _batch_scores(model.lm)
    torch.save(
        {
            "text": text, "text_lengths": text_lengths, "nll": nll, "nll_lengths": nll_lengths,
            "loss": loss, "weight": weight, "x": x, "logits": logits,
            "prefixes": torch.tensor(PREFIXES), "reorder_after": REORDER_AFTER,
            "perm": torch.tensor(PERM), "batch_logp": batch_logp,
            "num_params": sum(p.numel() for p in model.parameters()),
        },
        folder / "expected.pt",
    )  # fmt: skip


def espnet2_defaults() -> dict[str, dict[str, Any]]:
    """ESPnet2's constructor defaults of the LM networks and ``ESPnetLanguageModel``."""
    from espnet2.lm.espnet_model import ESPnetLanguageModel
    from espnet2.lm.seq_rnn_lm import SequentialRNNLM
    from espnet2.lm.transformer_lm import TransformerLM

    out = {}
    for key, cls in (
        ("transformer", TransformerLM),
        ("seq_rnn", SequentialRNNLM),
        ("model", ESPnetLanguageModel),
    ):
        params = inspect.signature(cls).parameters.values()
        out[key] = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return out


def count_librispeech() -> dict[str, Any]:
    """ESPnet2's parameter count of the LibriSpeech transformer LM (5000 tokens)."""
    tokens = ["<blank>", "<unk>", *(f"t{i}" for i in range(LIBRISPEECH_VOCAB - 3)), "<sos/eos>"]
    with tempfile.TemporaryDirectory() as tmp:
        _, model = _build(LIBRISPEECH_LM, tokens, Path(tmp))
    return {
        "config": LIBRISPEECH_LM,
        "vocab_size": len(tokens),
        "num_params": sum(p.numel() for p in model.parameters()),
        "num_keys": len(model.state_dict()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, help="output folder")
    parser.add_argument("--lms", nargs="+", default=list(LMS), choices=LMS)
    parser.add_argument("--count-librispeech", action="store_true")
    args = parser.parse_args(argv)
    if args.out is None and not args.count_librispeech:
        parser.error("give an output folder and/or --count-librispeech")
    if args.out is not None:
        for name in args.lms:
            make_fixture(args.out, name)
            print(f"wrote {args.out / name}", file=sys.stderr)
        defaults = json.dumps(espnet2_defaults(), indent=1, sort_keys=True)
        (args.out / "espnet2_defaults.json").write_text(defaults + "\n")
    if args.count_librispeech:
        counts = count_librispeech()
        if args.out is not None:
            (args.out / "counts.json").write_text(json.dumps(counts, indent=1) + "\n")
        print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
