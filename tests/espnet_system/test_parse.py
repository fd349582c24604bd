"""parse_config: jsonargparse errors rewritten to name the file, the key and the closest key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from espnet_infer import InferenceConfig
from espnet_system import DataPrepConfig, StageError, parse_config
from espnet_system.parse import duplicate_keys, parse_and_dump, valid_keys
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


def test_a_key_written_twice_names_file_key_and_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, INFER + "decode:\n  beam_size: 3\n  ctc_weight: 0.5\n  beam_size: 5\n")
    with pytest.raises(StageError) as err:
        parse_config(InferenceConfig, path)
    assert str(err.value) == (
        f"{path}: key 'decode.beam_size' is written twice, at line 5 and line 7; "
        "keep one (the last one would silently win)"
    )


def test_every_repeated_key_is_listed(tmp_path: Path) -> None:
    path = _write(tmp_path, "model_dir: a\n" + INFER + "output_dir: p\n")
    with pytest.raises(StageError, match=r"'model_dir' is written twice, at line 1 and line 2; "
                       r"key 'output_dir' is written twice, at line 4 and line 5"):
        parse_config(InferenceConfig, path)


def test_repeated_key_of_a_recipe_config_fails_before_any_stage(tmp_path: Path) -> None:
    from espnet_system import ASRSystem

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "data.yaml").write_text(
        "corpus: {class_path: espnet_data.corpora.MiniCorpus}\nout_dir: a\nout_dir: b\n"
    )
    with pytest.raises(StageError, match=r"data\.yaml: key 'out_dir' is written twice"):
        ASRSystem(tmp_path).run(["create_dataset"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_duplicate_keys_walks_lists_and_leaves_merges_alone() -> None:
    text = (
        "base: &b {k: 1}\n"
        "over:\n  <<: *b\n  k: 2\n"  # a merge key overridden: legal YAML, kept
        "items:\n  - {x: 1, x: 2}\n"
        "keys: {1: a, '1': b}\n"  # an int and a string: two keys
    )
    assert duplicate_keys(text) == [("items[0].x", 6, 6)]
    assert duplicate_keys("") == []
