"""parse_config: jsonargparse errors rewritten to name the file, the key and the closest key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from espnet_infer import InferenceConfig
from espnet_system import DataPrepConfig, StageError, parse_config
from espnet_system.parse import parse_and_dump, valid_keys
from espnet_train import TrainingConfig

INFER = "model_dir: m\ntest_sets: {test: data/test}\noutput_dir: o\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf.yaml"
    path.write_text(text)
    return path


def test_unknown_nested_key(tmp_path: Path) -> None:
    path = _write(tmp_path, INFER + "decode: {beam_sise: 3}\n")
    with pytest.raises(StageError) as err:
        parse_config(InferenceConfig, path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: unknown key 'decode.beam_sise'")
    assert "(did you mean 'decode.beam_size'?)" in msg
    assert "valid keys under 'decode': method, beam_size" in msg


def test_unknown_top_level_key_lists_groups_too(tmp_path: Path) -> None:
    path = _write(tmp_path, INFER + "paralel: {backend: local}\n")
    with pytest.raises(StageError, match=r"'paralel.backend' \(did you mean 'parallel'\?\).*top level"):
        parse_config(InferenceConfig, path)


def test_unknown_key_of_a_training_group(tmp_path: Path) -> None:
    path = _write(tmp_path, "exp_dir: e\ntokenizer: t\ndata: {train: a, valid: b}\n"
                            "trainer: {max_epoch: 3}\n")
    with pytest.raises(StageError, match=r"'trainer.max_epoch' \(did you mean 'trainer.max_epochs'"):
        parse_config(TrainingConfig, path)


def test_unknown_init_arg_of_a_component(tmp_path: Path) -> None:
    path = _write(tmp_path, "corpus: {class_path: espnet_data.corpora.MiniCorpus, "
                            "init_args: {sed: 1}}\n")
    with pytest.raises(StageError, match=r"'corpus.init_args.sed' \(did you mean "
                                         r"'corpus.init_args.seed'\?\)"):
        parse_config(DataPrepConfig, path)


def test_no_suggestion_when_nothing_is_close(tmp_path: Path) -> None:
    path = _write(tmp_path, INFER + "zzzz: 1\n")
    with pytest.raises(StageError) as err:
        parse_config(InferenceConfig, path)
    assert "did you mean" not in str(err.value) and "zzzz" in str(err.value)


def test_bad_value_names_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, INFER + "max_seconds: lots\n")
    with pytest.raises(StageError, match=r"conf\.yaml: .*max_seconds.*lots"):
        parse_config(InferenceConfig, path)


def test_dump_fills_defaults_and_parses_again(tmp_path: Path) -> None:
    cfg, text = parse_and_dump(InferenceConfig, _write(tmp_path, INFER))
    doc = yaml.safe_load(text)
    assert doc["decode"]["beam_size"] == cfg.decode.beam_size and doc["model_dir"] == "m"
    again = tmp_path / "again.yaml"
    again.write_text(text)
    assert parse_config(InferenceConfig, again) == cfg


def test_valid_keys_are_dotted() -> None:
    keys = valid_keys(InferenceConfig)
    assert "decode.beam_size" in keys and "parallel.backend" in keys and "model_dir" in keys
