"""Write a tiny ESPnet2 model-zoo pack and ESPnet2's hypotheses on two short recordings.

Runs in the ESPnet2 peer venv (``benchmarks/.peer``, made by ``benchmarks/peer/setup.sh``),
never in this project's: it imports only ``espnet2``, ``sentencepiece``, ``soundfile``,
``torch``, ``numpy`` and ``yaml``.

Usage (from the repository root; regenerates the committed fixture):
    benchmarks/.peer/bin/python tests/espnet_infer/make_espnet2_pack.py tests/data/espnet2_pack_tiny

It does what an ESPnet2 recipe does, in miniature, in a scratch recipe folder:
``spm_train`` on a small generated text (unigram, ESPnet2's settings except
``normalization_rule_name: identity``, which keeps ``bpe.model`` a few KB instead of
~240 KB), ``tokenize_text --write_vocabulary`` for the token list (pieces by frequency,
not in SentencePiece's id order, with ``<blank>``, ``<unk>`` first and ``<sos/eos>``
last), ``ASRTask`` / ``LMTask.build_model`` from configs with ESPnet2's default frontend
(fbank, n_fft 512, hop 128, 80 mels at 16 kHz) and ``global_mvn`` statistics (random
weights; the configs are written as the trainer writes them, token list inline), then
``espnet2.main_funcs.pack_funcs.pack`` (the ``espnet2.bin.pack asr`` archive, which is
also what a Hub repository of ESPnet2 holds) extracted into ``OUT/pack``.

``OUT/audio/*.wav``: two deterministic 16-bit recordings (1.0 s and 1.4 s of tones and
noise). ``OUT/expected.json``: ESPnet2's results on them, decoded by
``espnet2.bin.asr_inference.Speech2Text`` from inside the pack: ``greedy`` (the CTC
argmax, repeats and blanks removed), ``beam`` (Speech2Text's defaults: beam 20,
ctc_weight 0.5, no LM), ``beam_lm`` (the pack's LM at the default lm_weight 1.0) and
``beam_small`` (beam 4, ctc_weight 0.3, penalty 0.5), each ``text`` and ``token_int``
(``score`` for beams), plus the versions that made them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

WORDS = ("the cat sat on a mat with one red hat and two blue shoes near an old tree "
         "she said yes to every small dog that ran past").split()
NBPE = 30
ASR_DIR = "exp/asr_train_asr_conformer_raw_en_bpe30"
LM_DIR = "exp/lm_train_lm_transformer_en_bpe30"
STATS = "exp/asr_stats_raw_en_bpe30/train/feats_stats.npz"
TOKEN_DIR = "data/en_token_list/bpe_unigram30"
ASR_MODEL = f"{ASR_DIR}/valid.acc.ave_10best.pth"
LM_MODEL = f"{LM_DIR}/valid.loss.ave_10best.pth"
DURATIONS = {"utt1": 1.0, "utt2": 1.4}

ASR_CONFIG: dict[str, Any] = {
    "token_type": "bpe",
    "bpemodel": f"{TOKEN_DIR}/bpe.model",
    "frontend": "default",
    "frontend_conf": {"fs": "16k"},
    "specaug": "specaug",
    "specaug_conf": {"apply_time_warp": True, "freq_mask_width_range": [0, 27],
                     "time_mask_width_ratio_range": [0.0, 0.05]},
    "normalize": "global_mvn",
    "normalize_conf": {"stats_file": STATS},
    "encoder": "conformer",
    "encoder_conf": {"output_size": 16, "attention_heads": 2, "linear_units": 32,
                     "num_blocks": 2, "input_layer": "conv2d", "macaron_style": True,
                     "rel_pos_type": "latest", "pos_enc_layer_type": "rel_pos",
                     "selfattention_layer_type": "rel_selfattn", "activation_type": "swish",
                     "use_cnn_module": True, "cnn_module_kernel": 5},
    "decoder": "transformer",
    "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 2},
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False},
}  # fmt: skip
LM_CONFIG: dict[str, Any] = {
    "token_type": "bpe",
    "bpemodel": f"{TOKEN_DIR}/bpe.model",
    "lm": "transformer",
    "lm_conf": {"pos_enc": None, "embed_unit": 8, "att_unit": 16, "head": 2, "unit": 32,
                "layer": 2},
}  # fmt: skip
SEARCHES: dict[str, dict[str, Any]] = {
    "beam": {},
    "beam_lm": {"lm": True},
    "beam_small": {"beam_size": 4, "ctc_weight": 0.3, "penalty": 0.5},
}


def _texts(n: int = 300) -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(n)]


def _tokenizer(recipe: Path) -> list[str]:
    """``bpe.model`` and the token list, as asr.sh makes them."""
    import sentencepiece as spm
    from espnet2.bin.tokenize_text import tokenize

    text = recipe / "data/train/text"
    text.parent.mkdir(parents=True)
    text.write_text("".join(f"utt{i:04d} {t}\n" for i, t in enumerate(_texts())))
    bpe_in = recipe / "data/train/bpe_input.txt"
    bpe_in.write_text("".join(f"{t}\n" for t in _texts()))
    (recipe / TOKEN_DIR).mkdir(parents=True)
    spm.SentencePieceTrainer.train(
        input=str(bpe_in), vocab_size=NBPE, model_type="unigram",
        model_prefix=str(recipe / TOKEN_DIR / "bpe"), character_coverage=1.0,
        input_sentence_size=100000000, normalization_rule_name="identity", num_threads=1,
        minloglevel=2,
    )  # fmt: skip
    tokens = recipe / TOKEN_DIR / "tokens.txt"
    tokenize(
        input=str(text), output=str(tokens), field="2-", delimiter=None, token_type="bpe",
        space_symbol="<space>", non_linguistic_symbols=None,
        bpemodel=str(recipe / TOKEN_DIR / "bpe.model"), log_level="WARNING",
        write_vocabulary=True, vocabulary_size=0, remove_non_linguistic_symbols=False,
        cutoff=0, add_symbol=["<blank>:0", "<unk>:1", "<sos/eos>:-1"], cleaner=None, g2p=None,
        add_nonsplit_symbol=[],
    )  # fmt: skip
    return tokens.read_text(encoding="utf-8").splitlines()


def _build(task: Any, config: dict[str, Any], recipe: Path, out_dir: str) -> tuple[Any, Any]:
    """ESPnet2's own argument parsing and ``build_model`` (which makes ``token_list``
    inline, as the config.yaml a trainer writes has it)."""
    conf = recipe / "conf" / f"train_{out_dir.split('/')[1]}.yaml"
    conf.parent.mkdir(exist_ok=True)
    conf.write_text(yaml.safe_dump({**config, "token_list": f"{TOKEN_DIR}/tokens.txt"}))
    args = task.get_parser().parse_args(["--config", str(conf.relative_to(recipe)),
                                         "--output_dir", out_dir])
    return args, task.build_model(args)


def _write_exp(args: Any, model: Any, recipe: Path, checkpoint: str) -> None:
    folder = recipe / args.output_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(vars(args), sort_keys=False))
    torch.save(model.state_dict(), recipe / checkpoint)


def _audio(out: Path) -> dict[str, np.ndarray]:
    import soundfile as sf

    rng = np.random.default_rng(0)
    waves = {}
    (out / "audio").mkdir(parents=True, exist_ok=True)
    for i, (name, seconds) in enumerate(DURATIONS.items()):
        t = np.arange(int(16000 * seconds)) / 16000
        tone = sum(0.2 / k * np.sin(2 * np.pi * (180 + 40 * i) * k * t * (1 + 0.3 * t))
                   for k in range(1, 6))
        wave = (tone * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.normal(size=t.size))
        path = out / "audio" / f"{name}.wav"
        sf.write(path, np.clip(wave, -1, 1), 16000, subtype="PCM_16")
        waves[name] = sf.read(path, dtype="float32")[0]
    return waves


def _results(s2t: Any, speech: np.ndarray) -> dict[str, Any]:
    (text, _, token_int, hyp), *_ = s2t(speech)
    return {"text": text, "token_int": [int(i) for i in token_int], "score": float(hyp.score)}


def _greedy(s2t: Any, speech: np.ndarray) -> dict[str, Any]:
    x = torch.from_numpy(speech)[None]
    with torch.no_grad():
        enc, _ = s2t.asr_model.encode(x, torch.tensor([x.shape[1]]))
        best = torch.unique_consecutive(s2t.asr_model.ctc.argmax(enc)[0]).tolist()
    token_int = [i for i in best if i != 0]
    text = s2t.tokenizer.tokens2text(s2t.converter.ids2tokens(token_int))
    return {"text": text, "token_int": token_int}


def _decode(pack: Path, waves: dict[str, np.ndarray]) -> dict[str, Any]:
    """ESPnet2's Speech2Text on the unpacked pack, run from inside it (its configs name
    files relative to the pack, as in a recipe or a Hub snapshot)."""
    from espnet2.bin.asr_inference import Speech2Text

    meta = yaml.safe_load((pack / "meta.yaml").read_text())
    cwd = os.getcwd()
    os.chdir(pack)
    try:
        asr = {"asr_train_config": meta["yaml_files"]["asr_train_config"],
               "asr_model_file": meta["files"]["asr_model_file"]}
        lm = {"lm_train_config": meta["yaml_files"]["lm_train_config"],
              "lm_file": meta["files"]["lm_file"]}
        out: dict[str, dict[str, Any]] = {name: {} for name in waves}
        greedy = Speech2Text(**asr)
        for name, wave in waves.items():
            out[name]["greedy"] = _greedy(greedy, wave)
        for search, options in SEARCHES.items():
            options = dict(options)
            s2t = Speech2Text(**asr, **(lm if options.pop("lm", False) else {}), **options)
            for name, wave in waves.items():
                torch.manual_seed(0)
                out[name][search] = _results(s2t, wave)
    finally:
        os.chdir(cwd)
    return out


def make_pack(out: Path) -> None:
    import espnet2
    from espnet2.main_funcs.pack_funcs import pack
    from espnet2.tasks.asr import ASRTask
    from espnet2.tasks.lm import LMTask

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if (out / "pack").exists():
        shutil.rmtree(out / "pack")
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp)
        tokens = _tokenizer(recipe)
        (recipe / STATS).parent.mkdir(parents=True)
        mean, var = rng.normal(-6.0, 1.0, 80), rng.uniform(2.0, 6.0, 80)
        np.savez(recipe / STATS, count=np.array(1000), sum=mean * 1000,
                 sum_square=(var + mean**2) * 1000)
        cwd = os.getcwd()
        os.chdir(recipe)  # ESPnet2 reads and packs paths relative to the recipe
        try:
            args, model = _build(ASRTask, ASR_CONFIG, recipe, ASR_DIR)
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm1d):
                    module.running_mean.normal_(0.0, 0.1)
                    module.running_var.uniform_(0.5, 1.5)
            _write_exp(args, model, recipe, ASR_MODEL)
            lm_args, lm = _build(LMTask, LM_CONFIG, recipe, LM_DIR)
            with torch.no_grad():
                for param in lm.parameters():
                    param.add_(torch.randn_like(param) * 0.3)
            _write_exp(lm_args, lm, recipe, LM_MODEL)
            pack(
                files={"asr_model_file": ASR_MODEL, "lm_file": LM_MODEL},
                yaml_files={"asr_train_config": f"{ASR_DIR}/config.yaml",
                            "lm_train_config": f"{LM_DIR}/config.yaml"},
                option=[STATS, f"{TOKEN_DIR}/bpe.model"],
                outpath="packed.tar",
            )  # fmt: skip
        finally:
            os.chdir(cwd)
        with tarfile.open(recipe / "packed.tar") as archive:
            archive.extractall(out / "pack", filter="data")
    waves = _audio(out)
    expected = {
        "espnet": espnet2.__version__,
        "torch": torch.__version__,
        "token_list_length": len(tokens),
        "searches": {"greedy": "CTC argmax", **SEARCHES},
        "utterances": _decode(out / "pack", waves),
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder")
    args = parser.parse_args(argv)
    make_pack(args.out.resolve())
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
