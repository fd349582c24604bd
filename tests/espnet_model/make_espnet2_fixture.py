"""Write tiny ESPnet2 ASR experiment folders and ESPnet2's outputs on a fixed input.

Runs in the ESPnet2 peer venv (``benchmarks/.peer``, made by ``benchmarks/peer/setup.sh``),
never in this project's: it imports only ``espnet2``, ``torch``, ``numpy`` and ``yaml``.

Usage (from the repository root; regenerates the committed fixture):
    benchmarks/.peer/bin/python tests/espnet_model/make_espnet2_fixture.py tests/data/espnet2_tiny
    benchmarks/.peer/bin/python tests/espnet_model/make_espnet2_fixture.py /tmp/out \\
        --encoders conformer transformer e_branchformer
    benchmarks/.peer/bin/python tests/espnet_model/make_espnet2_fixture.py --count-librispeech100

For each encoder (``conformer_legacy``: a conformer with ESPnet2's default
``rel_pos_type: legacy``; ``<encoder>_interctc``: three blocks with intermediate CTC
after blocks 1 and 2, self-conditioning and ``interctc_weight: 0.5``) it writes ``OUT/<encoder>/``: ``config.yaml`` (every argument, as
ESPnet2's trainer writes it), ``valid.acc.ave.pth`` (random weights, BatchNorm running
statistics and global-MVN statistics made non-trivial) and ``expected.pt``: the input
(two 0.5 s waveforms and token ids) and ESPnet2's frontend features, encoder output,
CTC log-probabilities, teacher-forced decoder logits and losses (with each intermediate
CTC tap's, ``loss_interctc_layer<N>``) in eval mode.
``--count-librispeech100`` prints ESPnet2's parameter count of the librispeech_100
conformer recipe shape as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

TOKENS = ["<blank>", "<unk>", "a", "b", "c", "d", "e", "f", "g", "<sos/eos>"]

_ENCODER_CONF: dict[str, dict[str, Any]] = {
    "conformer": {
        "output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 2,
        "input_layer": "conv2d", "macaron_style": True, "rel_pos_type": "latest",
        "pos_enc_layer_type": "rel_pos", "selfattention_layer_type": "rel_selfattn",
        "activation_type": "swish", "use_cnn_module": True, "cnn_module_kernel": 5,
    },
    "transformer": {"output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 2},
    "conformer_legacy": {  # ESPnet2's default relative positions (rel_pos_type not given)
        "output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 2,
        "macaron_style": True, "cnn_module_kernel": 5,
    },
    "e_branchformer": {
        "output_size": 16, "attention_heads": 2, "cgmlp_linear_units": 32, "cgmlp_conv_kernel": 5,
        "num_blocks": 2, "use_ffn": True, "macaron_ffn": True, "linear_units": 32,
        "input_layer": "conv2d6",
    },
    "conformer_interctc": {
        "output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 3,
        "input_layer": "conv2d", "macaron_style": True, "rel_pos_type": "latest",
        "pos_enc_layer_type": "rel_pos", "selfattention_layer_type": "rel_selfattn",
        "cnn_module_kernel": 5, "interctc_layer_idx": [1, 2], "interctc_use_conditioning": True,
    },
    "transformer_interctc": {
        "output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 3,
        "interctc_layer_idx": [1, 2], "interctc_use_conditioning": True,
    },
    "e_branchformer_interctc": {
        "output_size": 16, "attention_heads": 2, "cgmlp_linear_units": 32, "cgmlp_conv_kernel": 5,
        "num_blocks": 3, "use_ffn": True, "macaron_ffn": True, "linear_units": 32,
        "interctc_layer_idx": [1, 2], "interctc_use_conditioning": True,
    },
    "contextual_block_conformer": {  # blocks of 6 frames every 2: the 11 frames make 4
        "output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 2,
        "macaron_style": True, "cnn_module_kernel": 5, "block_size": 6, "hop_size": 2,
        "look_ahead": 2,
    },
}  # fmt: skip

LIBRISPEECH100 = {
    "encoder": "conformer",
    "encoder_conf": {
        "output_size": 256, "attention_heads": 4, "linear_units": 1024, "num_blocks": 12,
        "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1,
        "input_layer": "conv2d", "normalize_before": True, "macaron_style": True,
        "rel_pos_type": "latest", "pos_enc_layer_type": "rel_pos",
        "selfattention_layer_type": "rel_selfattn", "activation_type": "swish",
        "use_cnn_module": True, "cnn_module_kernel": 31,
    },
    "decoder": "transformer",
    "decoder_conf": {
        "attention_heads": 4, "linear_units": 2048, "num_blocks": 6, "dropout_rate": 0.1,
        "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.1,
        "src_attention_dropout_rate": 0.1,
    },
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False},
    "frontend_conf": {"n_fft": 512, "win_length": 400, "hop_length": 160},
    "specaug": "specaug",
    "specaug_conf": {
        "apply_time_warp": True, "time_warp_window": 5, "time_warp_mode": "bicubic",
        "apply_freq_mask": True, "freq_mask_width_range": [0, 27], "num_freq_mask": 2,
        "apply_time_mask": True, "time_mask_width_ratio_range": [0.0, 0.05], "num_time_mask": 5,
    },
}  # fmt: skip


def _build(config: dict[str, Any], token_list: list[str], workdir: Path) -> tuple[Any, Any]:
    """ESPnet2's own argument parsing and ``ASRTask.build_model``, as ``asr_train`` does."""
    from espnet2.tasks.asr import ASRTask

    conf_file = workdir / "train.yaml"
    conf_file.write_text(yaml.safe_dump({**config, "token_list": token_list}))
    args = ASRTask.get_parser().parse_args(
        ["--config", str(conf_file), "--output_dir", str(workdir / "exp")]
    )
    return args, ASRTask.build_model(args)


def _write_stats(path: Path, n_mels: int, rng: np.random.Generator) -> None:
    count = 1000
    mean = rng.normal(-6.0, 1.0, n_mels)
    var = rng.uniform(2.0, 6.0, n_mels)
    np.savez(path, count=np.array(count), sum=mean * count, sum_square=(var + mean**2) * count)


def make_fixture(out: Path, encoder: str) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    folder = out / encoder
    folder.mkdir(parents=True, exist_ok=True)
    n_mels = 20
    _write_stats(folder / "feats_stats.npz", n_mels, rng)
    config = {
        "frontend": "default",
        "frontend_conf": {"fs": "16k", "n_fft": 512, "win_length": 400, "hop_length": 160,
                          "n_mels": n_mels},
        "specaug": "specaug",
        "specaug_conf": {"apply_time_warp": True, "freq_mask_width_range": [0, 5],
                         "time_mask_width_ratio_range": [0.0, 0.05]},
        "normalize": "global_mvn",
        "normalize_conf": {"stats_file": str(folder / "feats_stats.npz")},
        "encoder": encoder.removesuffix("_legacy").removesuffix("_interctc"),
        "encoder_conf": _ENCODER_CONF[encoder],
        "decoder": "transformer",
        "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
        "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False,
                       "report_cer": False, "report_wer": False,
                       **({"interctc_weight": 0.5} if encoder.endswith("_interctc") else {})},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        args, model = _build(config, TOKENS, Path(tmp))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(0.0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    # Paths as in a recipe (stable across runs); loaders take the statistics from the
    # checkpoint, not from stats_file.
    args.config = "conf/train_asr.yaml"
    args.output_dir = f"exp/asr_train_asr_{encoder}"
    args.normalize_conf = {"stats_file": "exp/asr_stats/train/feats_stats.npz"}
    (folder / "feats_stats.npz").unlink()
    (folder / "config.yaml").write_text(yaml.safe_dump(vars(args), sort_keys=False))
    torch.save(model.state_dict(), folder / "valid.acc.ave.pth")

    model.eval()
    speech = torch.randn(2, 8000) * 0.1
    speech_lengths = torch.tensor([8000, 8000])
    text = torch.tensor([[2, 3, 4, 5], [6, 7, 8, -1]])
    text_lengths = torch.tensor([4, 3])
    with torch.no_grad():
        feats, feats_lengths = model._extract_feats(speech, speech_lengths)
        enc, enc_lengths = model.encode(speech, speech_lengths)
        if isinstance(enc, tuple):  # (output, intermediate CTC taps) with interctc_layer_idx
            enc = enc[0]
        ctc_logp = model.ctc.log_softmax(enc)
        ys_in = torch.tensor([[9, 2, 3, 4, 5], [9, 6, 7, 8, 9]])
        dec_logits, _ = model.decoder(enc, enc_lengths, ys_in, text_lengths + 1)
        loss, stats, _ = model(speech, speech_lengths, text, text_lengths)
        streaming = _streaming_outputs(model, feats[:1].clone()) if "contextual" in encoder else {}
    torch.save(
        {
            "speech": speech, "speech_lengths": speech_lengths, "text": text,
            "text_lengths": text_lengths, "ys_in": ys_in, "feats": feats,
            "feats_lengths": feats_lengths, "enc": enc, "enc_lengths": enc_lengths,
            "ctc_logp": ctc_logp, "dec_logits": dec_logits, "loss": loss,
            "loss_ctc": stats["loss_ctc"], "loss_att": stats["loss_att"],
            "num_params": torch.tensor(sum(p.numel() for p in model.parameters())),
            **{k: v for k, v in stats.items() if k.startswith("loss_interctc_layer")},
            **streaming,
        },
        folder / "expected.pt",
    )  # fmt: skip


def _streaming_outputs(model: Any, feats: torch.Tensor) -> dict[str, Any]:
    """ESPnet2's streaming encoder (``forward_infer``) on the first utterance's normalised
    features: at once (``enc_infer``) and fed 9 + 9 + ... frames (``enc_stream``)."""
    feats, _ = model.normalize(feats, torch.tensor([feats.size(1)]))
    encoder = model.encoder
    enc_infer, _, _ = encoder(feats, torch.tensor([feats.size(1)]), None, True, True)
    states, pieces = None, []
    for start in range(0, feats.size(1), 9):
        chunk = feats[:, start : start + 9]
        final = start + 9 >= feats.size(1)
        out, _, states = encoder(chunk, torch.tensor([chunk.size(1)]), states, final, True)
        pieces.append(out)
    return {"stream_feats": feats, "enc_infer": enc_infer, "enc_stream": torch.cat(pieces, 1)}


def count_librispeech100() -> dict[str, int]:
    """ESPnet2's parameter count of the librispeech_100 conformer shape (vocab 5000)."""
    tokens = ["<blank>", "<unk>", *(f"t{i}" for i in range(4997)), "<sos/eos>"]
    with tempfile.TemporaryDirectory() as tmp:
        _, model = _build(LIBRISPEECH100, tokens, Path(tmp))
    return {
        "vocab_size": len(tokens),
        "num_params": sum(p.numel() for p in model.parameters()),
        "num_keys": len(model.state_dict()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, help="output folder")
    parser.add_argument("--encoders", nargs="+", default=["conformer"], choices=_ENCODER_CONF)
    parser.add_argument("--count-librispeech100", action="store_true")
    args = parser.parse_args(argv)
    if args.out is None and not args.count_librispeech100:
        parser.error("give an output folder and/or --count-librispeech100")
    if args.out is not None:
        for encoder in args.encoders:
            make_fixture(args.out, encoder)
            print(f"wrote {args.out / encoder}", file=sys.stderr)
    if args.count_librispeech100:
        print(json.dumps(count_librispeech100()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
