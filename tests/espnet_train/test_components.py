"""trainer: any lightning.Trainer argument, class_path callbacks / loggers / profiler / plugins,
optimizers by class_path, and the CLI's one-line errors."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import yaml
from espnet_data.config_errors import ConfigError
from espnet_train.cli import main, parse_training_config
from espnet_train.components import PASSED_AS_GIVEN, build_optimizer, lightning_arguments
from espnet_train.config import TRAINER_OWNED, OptimConfig, TrainerConfig

from tests._fixtures import Pipeline, training_dict

#: TrainerConfig keys that are this project's (not lightning.Trainer arguments)
OWN = {"num_threads", "keep_host_memory", "loggers"}


class Recorder(L.Callback):
    """A user callback by class_path: counts the training batches it saw."""

    def __init__(self, out: str, every: int = 1) -> None:
        self.out, self.every, self.batches = out, every, 0

    def on_train_batch_end(self, *args: Any) -> None:
        self.batches += 1

    def on_train_end(self, *args: Any) -> None:
        Path(self.out).write_text(str(self.batches))


def _write(tmp_path: Path, **extra: Any) -> Path:
    conf = tmp_path / "training.yaml"
    conf.write_text(yaml.safe_dump({"exp_dir": "e", "tokenizer": "t", "data": {"train": "a", "valid": "b"},
                                    **extra}))
    return conf


def test_every_lightning_trainer_argument_is_a_key_or_refused_with_a_reason() -> None:
    lightning = set(inspect.signature(L.Trainer).parameters)
    ours = {f for f in TrainerConfig.__dataclass_fields__}
    components = {"callbacks", "logger", "profiler", "plugins"}
    assert lightning - components - set(TRAINER_OWNED) <= ours, lightning - ours - set(TRAINER_OWNED)
    assert ours - OWN <= lightning  # no key that Lightning lacks, but the project's own
    assert set(PASSED_AS_GIVEN) <= lightning and not set(PASSED_AS_GIVEN) & set(TRAINER_OWNED)


def test_lightning_arguments_pass_through(tmp_path: Path) -> None:
    cfg = parse_training_config(["--config", str(_write(tmp_path, trainer={
        "val_check_interval": 0.5, "limit_train_batches": 3, "deterministic": "warn", "max_steps": 40}))])
    given = lightning_arguments(cfg.trainer)
    assert given["val_check_interval"] == 0.5 and given["limit_train_batches"] == 3
    assert given["deterministic"] == "warn" and given["max_steps"] == 40
    assert given["callbacks"] == [] and given["logger"] == [] and "profiler" not in given


def test_components_are_checked_written_out_and_built(tmp_path: Path) -> None:
    cfg = parse_training_config(["--config", str(_write(tmp_path, trainer={
        "callbacks": [{"class_path": "EarlyStopping", "init_args": {"monitor": "valid/loss", "patience": 2}}],
        "loggers": [{"class_path": "CSVLogger", "init_args": {"save_dir": str(tmp_path)}}],
        "profiler": "simple",
        "plugins": [{"class_path": "lightning.fabric.plugins.environments.LightningEnvironment"}]}))])
    tc = cfg.trainer
    assert tc.callbacks == [{"class_path": "lightning.pytorch.callbacks.EarlyStopping",
                             "init_args": {"monitor": "valid/loss", "patience": 2}}]
    assert tc.loggers[0]["class_path"] == "lightning.pytorch.loggers.CSVLogger"
    given = lightning_arguments(tc)
    assert type(given["callbacks"][0]).__name__ == "EarlyStopping" and given["callbacks"][0].patience == 2
    assert type(given["logger"][0]).__name__ == "CSVLogger" and given["profiler"] == "simple"
    assert type(given["plugins"][0]).__name__ == "LightningEnvironment"


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        ({"val_check_intervl": 0.5}, "unknown key 'trainer.val_check_intervl' (did you mean 'trainer.val_check_interval'?)"),
        ({"logger": False}, "unknown key 'trainer.logger': TensorBoard and CSV logging are always on"),
        ({"fast_dev_run": True}, "unknown key 'trainer.fast_dev_run': it turns off checkpoints"),
        ({"callbacks": [{"class_path": "EarlyStoping"}]},
         "trainer.callbacks[0].class_path='EarlyStoping' does not name an importable subclass of "
         "lightning.pytorch.callbacks.callback.Callback (did you mean 'EarlyStopping'?)"),
        ({"callbacks": [{"class_path": "EarlyStopping", "init_args": {"monitr": "valid/loss"}}]},
         "trainer.callbacks[0].init_args.monitr is not an argument of lightning.pytorch.callbacks.EarlyStopping "
         "(did you mean 'monitor'?)"),
        ({"callbacks": [{"class_path": "torch.nn.Linear"}]}, "does not name an importable subclass"),
        ({"callbacks": [{"name": "x"}]}, "trainer.callbacks[0]: expected {class_path: ..., init_args: {...}}"),
        ({"profiler": "simpel"}, "trainer.profiler='simpel' is unknown (did you mean 'simple'?)"),
    ],
)  # fmt: skip
def test_bad_trainer_keys_name_the_key_and_the_fix(tmp_path: Path, trainer: dict, message: str) -> None:
    conf = _write(tmp_path, trainer=trainer)
    with pytest.raises(ConfigError) as err:
        parse_training_config(["--config", str(conf)])
    assert str(err.value).startswith(f"{conf}: ") and message in str(err.value)


def test_optimizer_by_class_path(tmp_path: Path) -> None:
    cfg = parse_training_config(["--config", str(_write(tmp_path, optim={
        "class_path": "torch.optim.RAdam", "init_args": {"lr": 0.01, "weight_decay": 0.1}}))])
    assert cfg.optim.optimizer == {"class_path": "torch.optim.RAdam", "init_args": {"lr": 0.01, "weight_decay": 0.1}}
    assert cfg.optim.lr == 0.01 and cfg.optim.scheduler == "warmuplr"  # the schedule keys still apply
    opt = build_optimizer(cfg.optim.optimizer, [torch.nn.Parameter(torch.zeros(3))])
    assert isinstance(opt, torch.optim.RAdam) and opt.defaults["weight_decay"] == 0.1
    # the long form combines it with a schedule; lr from the class when init_args has none
    long = OptimConfig(optimizer={"class_path": "torch.optim.Adagrad"}, scheduler="cosine")
    assert long.lr == 0.01 and long.scheduler == "cosine"


@pytest.mark.parametrize(
    ("optim", "message"),
    [
        ({"class_path": "torch.optim.RAdam", "init_args": {"lrr": 0.1}},
         "optim.optimizer.init_args.lrr is not an argument of torch.optim.RAdam (did you mean 'lr'?)"),
        ({"class_path": "torch.optim.RAdam", "init_args": {"params": []}}, "init_args.params is supplied by the trainer"),
        ({"class_path": "torch.nn.Linear"}, "does not name an importable subclass of torch.optim.optimizer.Optimizer"),
        ({"lr": 0.1, "warmup_step": 10}, "unknown key optim.'warmup_step' (did you mean 'warmup_steps'?)"),
        ({"scheduler": "exponential"}, "optim: "),
    ],
)  # fmt: skip
def test_bad_optim_blocks_name_the_key(tmp_path: Path, optim: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_training_config(["--config", str(_write(tmp_path, optim=optim))])
    assert message in str(err.value)


def test_cli_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = _write(tmp_path, trainer={"max_epoch": 3})
    assert main(["--config", str(conf)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"espnet-train: {conf}: unknown key 'trainer.max_epoch' (did you mean "
                   f"'trainer.max_epochs'?); valid keys under 'trainer': " + err.split("under 'trainer': ")[1])
    assert main(["--config", str(_write(tmp_path, max_epoch=3))]) == 2
    assert "ESPnet2's max_epoch is trainer.max_epochs here" in capsys.readouterr().err
    assert main(["--config", str(_write(tmp_path, model={"encoder": "conformr"}))]) == 2
    assert "model: encoder='conformr' is unknown (did you mean 'conformer'?)" in capsys.readouterr().err


def test_help_keeps_the_usage_layout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "\n    espnet-train --config training.yaml\n    espnet-train --config lm_training.yaml" in out


@pytest.mark.slow
def test_a_user_callback_logger_and_profiler_run_with_the_projects_own(pipeline: Pipeline, tmp_path: Path) -> None:
    from espnet_train import train

    count = tmp_path / "batches.txt"
    conf = tmp_path / "training.yaml"
    body = training_dict(pipeline.data, pipeline.tokenizer, pipeline.stats, tmp_path / "exp", max_epochs=1)
    body["trainer"].update({
        "limit_train_batches": 2, "num_sanity_val_steps": 0, "profiler": "simple",
        "callbacks": [{"class_path": f"{__name__}.Recorder", "init_args": {"out": str(count)}}],
        "loggers": [{"class_path": "CSVLogger", "init_args": {"save_dir": str(tmp_path), "name": "mine"}}],
    })
    conf.write_text(yaml.safe_dump(body))
    out = train(parse_training_config(["--config", str(conf)]))
    assert count.read_text() == "2"  # limit_train_batches reached Lightning; the callback ran
    assert (out / "model.pt").is_file() or (out / "model.safetensors").is_file()  # the run's own checkpoints
    assert list((tmp_path / "mine").rglob("metrics.csv"))  # the user's logger beside the run's
    assert (tmp_path / "exp" / "csv" / "metrics.csv").is_file()


def test_the_trainers_optimizer_builder_takes_the_class_path() -> None:
    from espnet_train.optim import build_optimizer as build_for_training

    model = torch.nn.Linear(2, 2)
    opt = build_for_training(OptimConfig(optimizer={"class_path": "torch.optim.RAdam", "init_args": {"lr": 0.03}}),
                             model.parameters())
    assert isinstance(opt, torch.optim.RAdam) and opt.defaults["lr"] == 0.03
