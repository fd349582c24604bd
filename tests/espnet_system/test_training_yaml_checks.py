"""espnet-run's parse of training.yaml (--dry_run and the start of `all`) catches model-block
typos and ESPnet2 keys, with the same one-line messages as espnet-train."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from espnet_system.parse import parse_config
from espnet_system.stages import StageError
from espnet_train import TrainingConfig

BASE = {"exp_dir": "e", "tokenizer": "t", "data": {"train": "a", "valid": "b"}}


def _write(tmp_path: Path, **extra: object) -> Path:
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump({**BASE, **extra}))
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"model": {"encoder": "conformer", "encoder_conf": {"num_block": 2}}},
         "encoder_conf.num_block is not an argument of ConformerEncoder (did you mean 'num_blocks'?)"),
        ({"model": {"encoder": "conformer", "encoder_conf": {"layer_drop_rate": 0.2}}},
         "encoder_conf.layer_drop_rate=0.2 is ESPnet2's, and drops whole layers"),
        ({"trainer": {"val_check_intervl": 1.0}},
         "unknown key 'trainer.val_check_intervl' (did you mean 'trainer.val_check_interval'?)"),
        ({"optim": "adamm"}, "optim: 'adamm' is not one of ESPnet2's optimizers (did you mean 'adam'?)"),
    ],
)  # fmt: skip
def test_a_typo_in_training_yaml_stops_the_parse(tmp_path: Path, extra: dict, message: str) -> None:
    path = _write(tmp_path, **extra)
    with pytest.raises(StageError) as err:
        parse_config(TrainingConfig, path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_espnet2_shaped_optim_and_model_keys_parse(tmp_path: Path) -> None:
    cfg = parse_config(TrainingConfig, _write(
        tmp_path, optim="adam", optim_conf={"lr": 0.002}, scheduler="warmuplr",
        scheduler_conf={"warmup_steps": 100},
        model={"encoder": "e_branchformer", "encoder_conf": {"output_size": 16, "attention_heads": 2,
               "num_blocks": 1, "use_linear_after_conv": False, "gate_activation": "identity"},
               "decoder": "transformer"}))
    assert cfg.optim.name == "adam" and cfg.optim.warmup_steps == 100
