"""espnet-train convert-espnet2: turn an ESPnet2 egs2 training config into a training.yaml.

Usage:
    espnet-train convert-espnet2 conf/train_asr.yaml -o training.yaml
    espnet-train convert-espnet2 conf/tuning/train_asr_e_branchformer.yaml -o training.yaml \\
        --exp_dir exp/train --tokenizer exp/tokenizer --train data/train --valid data/dev

ESPnet2's defaults are written out wherever the egs2 file leaves a key out (ESPnet2's
model defaults from :func:`espnet_model.espnet2.translate_espnet2_config`: ``frontend:
default`` is ``frontend: stft`` here; ESPnet2's optimizer and scheduler defaults from
:mod:`espnet_train.espnet2`), so the training.yaml means what the egs2 file meant in
ESPnet2. Training keys map onto this project's: ``max_epoch`` -> ``trainer.max_epochs``,
``accum_grad`` -> ``trainer.accumulate_grad_batches``, ``grad_clip`` ->
``trainer.gradient_clip_val``, ``use_amp`` -> ``trainer.precision: 16-mixed``,
``keep_nbest_models`` -> ``best_n``, ``best_model_criterion`` -> ``monitor``,
``patience`` -> an ``EarlyStopping`` callback, ``batch_bins`` (``numel`` / ``length``
batches of raw audio) -> ``data.max_seconds``. Keys that would change training and are
not implemented here (``init_param``, ``freeze_param``, ``layer_drop_rate: 0.1``, ...)
stop the conversion with the reason; keys with no meaning here (logging, distributed
set-up, file lists) are listed in the output's header as ignored, never dropped silently.
The output is parsed as a :class:`~espnet_train.config.TrainingConfig` before it is
written, so it is a valid config.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from espnet_data.atomic import atomic_open

from .config import DataConfig, TrainerConfig, TrainingConfig
from .espnet2 import translate_optim

#: ESPnet2 AbsTask defaults of the training keys mapped here (espnet2.tasks.abs_task)
DEFAULTS: dict[str, Any] = {
    "max_epoch": 40, "accum_grad": 1, "grad_clip": 5.0, "grad_clip_type": 2.0, "use_amp": False,
    "keep_nbest_models": [10], "seed": 0, "num_workers": 1, "patience": None,
    "best_model_criterion": [["train", "loss", "min"], ["valid", "loss", "min"],
                             ["train", "acc", "max"], ["valid", "acc", "max"]],
    "early_stopping_criterion": ["valid", "loss", "min"], "batch_type": "folded",
    "batch_bins": 1000000, "optim": "adadelta", "log_interval": None, "detect_anomaly": False,
    "cudnn_benchmark": False,
}  # fmt: skip
#: the model keys (handed to translate_espnet2_config)
MODEL_KEYS = (
    "frontend", "frontend_conf", "specaug", "specaug_conf", "normalize", "normalize_conf",
    "encoder", "encoder_conf", "decoder", "decoder_conf", "model", "model_conf", "ctc_conf",
    "preencoder", "preencoder_conf", "postencoder", "postencoder_conf", "joint_net_conf", "input_size",
)  # fmt: skip
#: keys that change training and are not implemented here, at these values only
REFUSED: dict[str, tuple[Any, str]] = {
    "init": (None, "weight initialisation schemes are not implemented: models start from "
                   "PyTorch's default initialisation (ESPnet2's init: none)"),
    "init_param": ([], "initialising from other models' parameters: use init_from (a whole model)"),
    "freeze_param": ([], "freezing parameters is not implemented"),
    "grad_noise": (False, "gradient noise is not implemented"),
    "grad_clip_type": (2.0, "gradients are clipped by their L2 norm only"),
    "exclude_weight_decay": (False, "weight decay applies to every parameter here"),
    "use_adapter": (False, "adapters (LoRA) are not implemented"),
    "sort_in_batch": ("descending", None), "sort_batch": ("descending", None),
}  # fmt: skip
_TRAINING_ONLY = {"encoder_conf": ("layer_drop_rate", "stochastic_depth_rate"),
                  "decoder_conf": ("layer_drop_rate",), "specaug_conf": ("replace_with_zero",)}


class ConversionError(ValueError):
    """An ESPnet2 key whose value this project cannot train with."""


def convert_espnet2_config(
    config: Mapping[str, Any],
    *,
    exp_dir: str = "exp/train",
    tokenizer: str = "exp/tokenizer",
    train: str = "data/train",
    valid: str = "data/dev",
    stats_file: str = "exp/stats/feats_stats.npz",
) -> tuple[dict[str, Any], list[str]]:
    """``(training.yaml as a dict, notes)`` for an ESPnet2 ASR training config.

    Raises:
        ConversionError: a key that would change training and is not implemented here.
    """
    from espnet_model import _espnet2_keys
    from espnet_model.espnet2 import translate_espnet2_config

    for section, keys in _TRAINING_ONLY.items():
        for key in keys:
            value = (config.get(section) or {}).get(key)
            if value is not None:
                try:
                    _espnet2_keys.neutral_or_refuse(section, key, value)
                except ValueError as err:
                    raise ConversionError(str(err)) from None
    for key, (neutral, why) in REFUSED.items():
        if why and key in config and config[key] not in (neutral, None, "none"):
            raise ConversionError(f"{key}: {config[key]!r}: {why}")
    try:
        with warnings.catch_warnings():  # training-only keys: checked neutral above
            warnings.simplefilter("ignore", UserWarning)
            model = translate_espnet2_config({k: v for k, v in config.items() if k in MODEL_KEYS})
    except ValueError as err:
        raise ConversionError(str(err)) from None
    notes: list[str] = []
    get = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None or k == "patience"}}.get
    fs = _sample_rate(model)
    trainer = TrainerConfig(
        max_epochs=int(get("max_epoch")),
        accumulate_grad_batches=int(get("accum_grad")),
        gradient_clip_val=float(get("grad_clip")),
        precision="16-mixed" if get("use_amp") else "32-true",
        log_every_n_steps=int(get("log_interval")) if get("log_interval") else 20,
        detect_anomaly=bool(get("detect_anomaly")),
        benchmark=bool(get("cudnn_benchmark")),
    )
    monitor, mode = _monitor(get("best_model_criterion"))
    if get("patience") not in (None, "none"):
        phase, stat, stop_mode = get("early_stopping_criterion")
        trainer.callbacks = [{"class_path": "lightning.pytorch.callbacks.EarlyStopping",
                              "init_args": {"monitor": f"{phase}/{stat}", "mode": stop_mode,
                                            "patience": int(get("patience"))}}]
    data = DataConfig(train=train, valid=valid, num_workers=int(get("num_workers")))
    batch_type = get("batch_type")
    if batch_type in ("numel", "length"):
        data.max_seconds = round(float(get("batch_bins")) / fs, 3)
        notes.append(f"data.max_seconds {data.max_seconds} = batch_bins {get('batch_bins')} / {fs} Hz: "
                     "ESPnet2 shares batch_bins among its GPUs, max_seconds is per device here")
    else:
        notes.append(f"batch_type: {batch_type} (batch_size {config.get('batch_size', 20)}) has no "
                     f"counterpart: batches hold data.max_seconds of audio ({data.max_seconds})")
    optim = translate_optim(get("optim"), config.get("optim_conf"), config.get("scheduler"),
                            config.get("scheduler_conf"))
    keep = get("keep_nbest_models")
    best_n = max(keep) if isinstance(keep, list) else int(keep)
    out = TrainingConfig(
        exp_dir=exp_dir, tokenizer=tokenizer, data=data, model=model,
        stats_file=stats_file if model.get("normalize") == "global_mvn" else None,
        optim=optim, trainer=trainer, best_n=best_n, monitor=monitor, monitor_mode=mode,
        seed=int(get("seed")),
    )
    mapped = {*DEFAULTS, *MODEL_KEYS, *REFUSED, "optim_conf", "scheduler", "scheduler_conf", "batch_size"}
    ignored = sorted(k for k in config if k not in mapped)
    if ignored:
        notes.append("ESPnet2 keys with no counterpart here, ignored: " + ", ".join(ignored))
    plain = dataclasses.asdict(out)
    for key in ("optim_conf", "scheduler", "scheduler_conf"):
        plain.pop(key)
    if plain["optim"]["optimizer"] is None:
        plain["optim"].pop("optimizer")
    return _plain(plain), notes


def _sample_rate(model: Mapping[str, Any]) -> int:
    from espnet_model.frontend import parse_fs

    return parse_fs((model.get("frontend_conf") or {}).get("fs", 16000))


def _monitor(criteria: Any) -> tuple[str, str]:
    """ESPnet2's ``best_model_criterion`` -> (monitor, mode): ``valid/acc`` when listed
    (ESPnet2's recipes decode ``valid.acc.ave``), else the first validation criterion."""
    rows = [list(c) for c in criteria or []]
    valid = [r for r in rows if r and r[0] == "valid"]
    pick = next((r for r in valid if r[1] == "acc"), valid[0] if valid else ["valid", "loss", "min"])
    return f"valid/{pick[1]}", str(pick[2])


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="espnet-train convert-espnet2",
        description="Turn an ESPnet2 egs2 training config into a training.yaml, with "
                    "ESPnet2's defaults written out.",
        epilog=__doc__.split("Usage:")[1].split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("espnet2_config", help="ESPnet2 training config (conf/train_asr*.yaml)")
    parser.add_argument("-o", "--output", default="-", help="training.yaml to write ('-': stdout)")
    parser.add_argument("--exp_dir", default="exp/train", help="exp_dir of the training.yaml")
    parser.add_argument("--tokenizer", default="exp/tokenizer", help="tokenizer folder")
    parser.add_argument("--train", default="data/train", help="data.train (a shard folder)")
    parser.add_argument("--valid", default="data/dev", help="data.valid (a shard folder)")
    parser.add_argument("--stats_file", default="exp/stats/feats_stats.npz",
                        help="stats_file (with normalize: global_mvn)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    source = Path(args.espnet2_config)
    try:
        config = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        if not isinstance(config, dict):
            raise ConversionError("expected a mapping of ESPnet2 training keys")
        converted, notes = convert_espnet2_config(
            config, exp_dir=args.exp_dir, tokenizer=args.tokenizer, train=args.train,
            valid=args.valid, stats_file=args.stats_file)
    except (OSError, yaml.YAMLError, ValueError) as err:
        print(f"espnet-train convert-espnet2: {source}: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    head = [f"# espnet_train.TrainingConfig converted from {source} (espnet-train convert-espnet2);",
            "# every key written out, ESPnet2's defaults where the file left one out.",
            *(f"# note: {n}" for n in notes)]
    text = "\n".join(head) + "\n" + yaml.safe_dump(converted, sort_keys=False)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with atomic_open(Path(args.output)) as f:
            f.write(text)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
