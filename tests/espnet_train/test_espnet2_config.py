"""ESPnet2's optim / scheduler keys in training.yaml, and convert-espnet2 on egs2-shaped configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from espnet_data.config_errors import ConfigError
from espnet_train.cli import main, parse_training_config
from espnet_train.convert import ConversionError, convert_espnet2_config
from espnet_train.espnet2 import translate_optim

from tests.espnet_model.test_model_block_checks import EBRANCHFORMER

# egs2/librispeech_100/asr1/conf/tuning/train_asr_conformer_*.yaml, as ESPnet2 writes it
CONFORMER: dict[str, Any] = {
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
    "decoder_conf": {"attention_heads": 4, "linear_units": 2048, "num_blocks": 6, "dropout_rate": 0.1,
                     "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.1,
                     "src_attention_dropout_rate": 0.1},
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False},
    "frontend_conf": {"n_fft": 512, "win_length": 400, "hop_length": 160},
    "seed": 2022, "num_workers": 4, "batch_type": "numel", "batch_bins": 16000000, "accum_grad": 4,
    "max_epoch": 70, "patience": None, "init": None,
    "best_model_criterion": [["valid", "acc", "max"]], "keep_nbest_models": 10, "use_amp": True,
    "optim": "adam", "optim_conf": {"lr": 0.002, "weight_decay": 0.000001},
    "scheduler": "warmuplr", "scheduler_conf": {"warmup_steps": 15000},
    "specaug": "specaug",
    "specaug_conf": {"apply_time_warp": True, "time_warp_window": 5, "time_warp_mode": "bicubic",
                     "apply_freq_mask": True, "freq_mask_width_range": [0, 27], "num_freq_mask": 2,
                     "apply_time_mask": True, "time_mask_width_ratio_range": [0.0, 0.05],
                     "num_time_mask": 10},
    "normalize": "global_mvn",
}  # fmt: skip
OPTIM_KEYS = {k: CONFORMER[k] for k in ("optim", "optim_conf", "scheduler", "scheduler_conf")}


def _write(tmp_path: Path, **extra: Any) -> Path:
    conf = tmp_path / "training.yaml"
    conf.write_text(yaml.safe_dump({"exp_dir": "e", "tokenizer": "t", "data": {"train": "a", "valid": "b"},
                                    **extra}))
    return conf


def test_espnet2_optim_keys_in_training_yaml(tmp_path: Path) -> None:
    cfg = parse_training_config(["--config", str(_write(tmp_path, **OPTIM_KEYS))])
    o = cfg.optim
    assert (o.name, o.lr, o.weight_decay, o.scheduler, o.warmup_steps) == ("adam", 0.002, 1e-6, "warmuplr", 15000)
    assert (o.betas, o.eps) == ((0.9, 0.999), 1e-8)  # torch.optim.Adam's, as in ESPnet2
    assert cfg.optim_conf is None and cfg.scheduler is None  # recorded in one shape: the block


@pytest.mark.parametrize(
    ("keys", "expect"),
    [
        ({"optim": "sgd"}, {"name": "sgd", "lr": 0.1, "momentum": 0.0, "scheduler": "constant"}),
        ({"optim": "adamw", "scheduler": "noamlr", "scheduler_conf": {"model_size": 256}},
         {"name": "adamw", "lr": 0.001, "weight_decay": 0.01, "scheduler": "noam", "model_size": 256,
          "warmup_steps": 25000}),
        ({"optim": "adam", "scheduler": "warmuplr"}, {"warmup_steps": 25000}),
        ({"optim": "adam", "scheduler": "reducelronplateau", "scheduler_conf": {"mode": "min", "factor": 0.5, "patience": 1}},
         {"scheduler": "reduce_on_plateau", "plateau_factor": 0.5, "plateau_patience": 1, "min_lr": 0.0}),
        ({"optim": "radam", "optim_conf": {"lr": 0.01}},
         {"optimizer": {"class_path": "torch.optim.RAdam", "init_args": {"lr": 0.01}}, "lr": 0.01}),
        ({"optim": "adam", "optim_conf": {"lr": 0.01, "amsgrad": True}},
         {"optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01, "amsgrad": True}}}),
    ],
)  # fmt: skip
def test_espnet2_names_and_defaults(keys: dict[str, Any], expect: dict[str, Any]) -> None:
    o = translate_optim(keys["optim"], keys.get("optim_conf"), keys.get("scheduler"), keys.get("scheduler_conf"))
    assert {k: getattr(o, k) for k in expect} == expect


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"optim": "adamm"}, "optim: 'adamm' is not one of ESPnet2's optimizers (did you mean 'adam'?)"),
        ({"optim": "adam", "scheduler": "steplr"}, "scheduler: 'steplr' is not implemented here"),
        ({"optim": "adam", "scheduler": "warmuplr", "scheduler_conf": {"warmup_step": 3}},
         "scheduler_conf.warmup_step=3 (did you mean 'warmup_steps'?) is not supported with scheduler: warmuplr"),
        ({"optim": {"lr": 0.1}, "scheduler": "warmuplr"}, "scheduler: ESPnet2's keys go with optim: <name>"),
        ({"optim_conf": {"lr": 0.1}}, "optim_conf: ESPnet2's keys go with optim: <name>"),
    ],
)  # fmt: skip
def test_bad_espnet2_optim_keys(tmp_path: Path, keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_training_config(["--config", str(_write(tmp_path, **keys))])
    assert message in str(err.value)


def test_pasted_egs2_model_keys_parse(tmp_path: Path) -> None:
    """The issue's case: librispeech_100's e-branchformer model keys pasted into training.yaml."""
    cfg = parse_training_config(["--config", str(_write(tmp_path, model=EBRANCHFORMER, **OPTIM_KEYS))])
    assert cfg.model["encoder_conf"]["use_linear_after_conv"] is False  # kept as written; a no-op


@pytest.mark.parametrize("egs", [CONFORMER, {**EBRANCHFORMER, **OPTIM_KEYS, "max_epoch": 70}])
def test_convert_writes_espnet2_defaults_and_parses(tmp_path: Path, egs: dict[str, Any]) -> None:
    src = tmp_path / "train_asr.yaml"
    src.write_text(yaml.safe_dump({**egs, "num_att_plot": 0, "use_wandb": False}))
    out = tmp_path / "training.yaml"
    assert main(["convert-espnet2", str(src), "-o", str(out), "--train", "dump/train"]) == 0
    text = out.read_text()
    assert "ESPnet2 keys with no counterpart here, ignored: num_att_plot, use_wandb" in text
    cfg = parse_training_config(["--config", str(out)])
    assert cfg.model["frontend"] == "stft" and cfg.model["frontend_conf"]["window"] == "hann"  # ESPnet2's
    assert cfg.model["model_conf"]["ignore_id"] == -1 and cfg.data.train == "dump/train"
    assert cfg.trainer.max_epochs == 70 and cfg.optim.name == "adam" and cfg.optim.warmup_steps == 15000


def test_convert_maps_training_keys() -> None:
    converted, notes = convert_espnet2_config(CONFORMER)
    assert converted["trainer"]["accumulate_grad_batches"] == 4 and converted["trainer"]["precision"] == "16-mixed"
    assert converted["trainer"]["gradient_clip_val"] == 5.0 and converted["seed"] == 2022
    assert (converted["monitor"], converted["monitor_mode"], converted["best_n"]) == ("valid/acc", "max", 10)
    assert converted["data"]["max_seconds"] == 1000.0 and converted["data"]["num_workers"] == 4
    assert converted["stats_file"] == "exp/stats/feats_stats.npz"
    assert any("batch_bins" in n for n in notes)
    stop, _ = convert_espnet2_config({**CONFORMER, "patience": 3})
    assert stop["trainer"]["callbacks"] == [{"class_path": "lightning.pytorch.callbacks.EarlyStopping",
                                             "init_args": {"monitor": "valid/loss", "mode": "min", "patience": 3}}]
    default_optim, _ = convert_espnet2_config({"encoder": "transformer", "decoder": "transformer"})
    assert default_optim["optim"]["optimizer"]["class_path"] == "torch.optim.Adadelta"  # ESPnet2's default
    assert default_optim["trainer"]["max_epochs"] == 40


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"encoder_conf": {"layer_drop_rate": 0.1}}, "layer_drop_rate=0.1"),
        ({"init_param": ["exp/x.pth:encoder"]}, "init_param"),
        ({"freeze_param": ["encoder"]}, "freezing parameters is not implemented"),
        ({"init": "xavier_uniform"}, "weight initialisation schemes are not implemented"),
        ({"preencoder": "linear"}, "preencoder"),
    ],
)
def test_convert_refuses_what_would_change_training(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConversionError, match=message):
        convert_espnet2_config({**CONFORMER, **extra})


def test_convert_cli_reports_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.yaml"
    src.write_text(yaml.safe_dump({**CONFORMER, "freeze_param": ["encoder"]}))
    assert main(["convert-espnet2", str(src)]) == 2
    assert f"espnet-train convert-espnet2: {src}: freeze_param" in capsys.readouterr().err
