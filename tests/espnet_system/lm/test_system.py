"""LMSystem: text splits, LM training, perplexity and packing on a tiny recipe; the ASR
recipe's train_lm stage running it; the tokenizer check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from espnet_data import save_tokenizer
from espnet_data.text import check_text_split, read_text_split
from espnet_data.tokenizer import CharTokenizer, TokenizerMismatchError
from espnet_infer import load_lm_folder
from espnet_system import ASRSystem, StageError, load_system
from espnet_system.cli import main
from espnet_system.lm import LMSystem

from .conftest import write_lm_recipe

EGS = Path(__file__).parents[3] / "egs"


def test_an_lm_folder_runs_lm_system_with_its_stage_table(lm_recipe: Path) -> None:
    system = load_system(lm_recipe)
    assert type(system) is LMSystem
    assert system.stages == ("create_dataset", "train", "measure", "pack_model", "upload_model")
    assert system.resolve(["all"]) == ["create_dataset", "train", "measure", "pack_model"]
    assert set(LMSystem.config_roles.values()) == set(LMSystem.config_schemas)
    assert type(load_system(lm_recipe.parent / "asr")) is ASRSystem


def test_create_dataset_writes_text_splits_with_the_sources(lm_recipe: Path) -> None:
    summary = json.loads((lm_recipe / "data" / "train" / "summary.json").read_text())
    assert summary["kind"] == "text" and summary["num_sentences"] == 6 + 300
    assert summary["num_shards"] == 4 and summary["num_rejected"] == 0
    assert summary["sources"][0] == "SplitText(split_dir='../asr/data/train')"
    assert summary["sources"][1].startswith("MiniLMText(num_sentences=300")
    texts = dict(read_text_split(lm_recipe / "data" / "train"))
    dev = set(dict(read_text_split(lm_recipe / "data" / "dev")).values())
    generated = {t for k, t in texts.items() if k.startswith("mini-lm-")}
    assert len(texts) == 306 and not generated & dev  # the generated text leaves out dev
    assert len(check_text_split(lm_recipe / "data" / "dev")) == 1
    log = (lm_recipe / "exp" / "logs" / "create_dataset.log").read_text()
    assert "# stage: create_dataset" in log and "train: 306 sentences" in log


def test_train_exports_an_lm_folder_and_measure_prints_perplexity(lm_recipe: Path) -> None:
    lm = load_lm_folder(lm_recipe / "exp" / "lm" / "model")
    assert lm.config["task"] == "lm" and lm.config["vocab_size"] == lm.tokenizer.vocab_size
    scores = json.loads((lm_recipe / "exp" / "lm" / "scores.json").read_text())
    dev = scores["dev"]
    assert dev["num_sentences"] == 6 and dev["num_unk"] == 0
    assert dev["num_tokens"] == sum(len(lm.tokenizer.encode(t)) + 1
                                    for _, t in read_text_split(lm_recipe / "data" / "dev"))
    assert dev["nll_per_token"] == pytest.approx(dev["nll"] / dev["num_tokens"], abs=1e-3)
    assert 1.0 < dev["ppl"] < lm.tokenizer.vocab_size  # better than guessing uniformly
    log = (lm_recipe / "exp" / "logs" / "measure.log").read_text()
    assert "NLL/token" in log and "PPL" in log


def test_pack_model_packs_and_loads_the_lm(lm_recipe: Path) -> None:
    packed = lm_recipe / "exp" / "lm" / "packed"
    assert {"model.safetensors", "config.yaml", "meta.yaml", "README.md"} <= {
        p.name for p in packed.iterdir()}
    assert (packed / "tokenizer" / "tokens.txt").is_file()
    assert load_lm_folder(packed).config["task"] == "lm"
    # measure's perplexities are the card's results (huggingface_hub reads them back)
    from huggingface_hub import ModelCard

    results = ModelCard.load(packed / "README.md").data.eval_results
    assert results and {r.metric_type for r in results} == {"perplexity"}
    assert (packed / "perplexity.json").is_file()


def test_measure_table_is_printed_after_a_run(lm_recipe, tmp_path, capsys) -> None:
    recipe = tmp_path / "lm"
    shutil.copytree(lm_recipe, recipe, symlinks=True)
    shutil.copytree(lm_recipe.parent / "asr", tmp_path / "asr")
    assert main([str(recipe), "--stages", "measure"]) == 0
    out = capsys.readouterr().out
    assert "exp/lm/scores.json" in out and "NLL/token" in out and "dev" in out


def test_missing_inputs_name_the_asr_recipe(tmp_path, tiny_shards, capsys) -> None:
    recipe = write_lm_recipe(tmp_path, tiny_shards)
    shutil.rmtree(tmp_path / "asr")
    assert main([str(recipe), "--stages", "all"]) == 2
    err = capsys.readouterr().err
    assert "sets.train[0].init_args.split_dir in conf/data.yaml is ../asr/data/train" in err
    assert "sets.train[1].init_args.exclude_splits[0]" in err
    assert "create_dataset stage first" in err
    assert "tokenizer in conf/training.yaml is ../asr/exp/tokenizer" in err
    assert not (recipe / "data").exists()  # nothing ran


def test_an_asr_training_config_is_refused_in_an_lm_recipe(tmp_path, tiny_shards, capsys) -> None:
    recipe = write_lm_recipe(tmp_path, tiny_shards)
    training = recipe / "conf" / "training.yaml"
    doc = yaml.safe_load(training.read_text())
    doc.update(task="asr", model={})
    training.write_text(yaml.safe_dump(doc))
    assert main([str(recipe), "--stages", "train"]) == 2
    assert "set task: lm" in capsys.readouterr().err


def _asr_with_lm(lm_recipe: Path, tmp_path: Path, stages: list[str]) -> Path:
    shutil.copytree(lm_recipe, tmp_path / "lm", symlinks=True)
    shutil.copytree(lm_recipe.parent / "asr", tmp_path / "asr")
    (tmp_path / "asr" / "conf").mkdir()
    (tmp_path / "asr" / "conf" / "lm.yaml").write_text(yaml.safe_dump(
        {"recipe": "../lm", "stages": stages, "tokenizer": "exp/tokenizer"}))
    return tmp_path / "asr"


def test_asr_train_lm_runs_the_lm_recipe_and_checks_the_tokenizer(lm_recipe, tmp_path) -> None:
    asr = _asr_with_lm(lm_recipe, tmp_path, ["measure"])
    system = load_system(asr)
    assert "train_lm" not in system.resolve(["all"])  # only when named (or by the recipe)
    assert system.run(["train_lm"]) == ["train_lm"]
    assert (tmp_path / "lm" / "exp" / "logs" / "measure.log").is_file()  # the LM's own log
    log = (asr / "exp" / "logs" / "train_lm.log").read_text()
    assert "# stage: train_lm" in log and "NLL/token" in log and "shares exp/tokenizer" in log
    # the ASR tokenizer changed since: the LM no longer fits it
    save_tokenizer(CharTokenizer.from_texts(["ABC"]), asr / "exp" / "tokenizer")
    with pytest.raises(TokenizerMismatchError) as err:
        load_system(asr).run(["train_lm"])
    message = str(err.value)
    assert str(tmp_path / "lm" / "exp" / "lm" / "model" / "tokenizer") in message
    assert str(asr / "exp" / "tokenizer") in message and "tokens vs 6" in message


def test_asr_train_lm_checks_the_lm_configs_before_any_stage(lm_recipe, tmp_path) -> None:
    asr = _asr_with_lm(lm_recipe, tmp_path, ["all"])
    (tmp_path / "lm" / "conf" / "metrics.yaml").write_text("modeldir: x\n")
    with pytest.raises(StageError, match=r"lm/conf/metrics.yaml: unknown key 'modeldir'"):
        load_system(asr).run(["train_lm"])
    (tmp_path / "asr" / "conf" / "lm.yaml").write_text("recipe: ../nowhere\n")
    with pytest.raises(StageError, match="recipe: ../nowhere is not a folder"):
        load_system(asr).run(["train_lm"])
    (tmp_path / "asr" / "conf" / "lm.yaml").write_text("recipe: ../asr\n")
    with pytest.raises(StageError, match="runs ASRSystem, not an LM system"):
        load_system(asr).run(["train_lm"])


@pytest.mark.parametrize(("corpus", "source"), [("mini", "MiniLMText"), ("librispeech", "LibriSpeechLMText"),
                                              ("TEMPLATE", "SplitText")])
def test_the_lm_recipes_parse(corpus: str, source: str, capsys) -> None:
    recipe = EGS / corpus / "lm"
    assert main([str(recipe), "--stages", "all", "upload_model", "--print_config"]) == 0
    out = capsys.readouterr().out
    assert f"class_path: espnet_data.text.{source}" in out and "task: lm" in out
    asr = load_system(EGS / corpus / "asr")
    assert asr.config("lm").recipe == "../lm"
    assert (asr.recipe_dir / asr.config("lm").recipe).resolve() == recipe.resolve()


def test_asr_infer_and_pack_model_take_the_lm_of_inference_yaml(tmp_path_factory, capsys) -> None:
    from tests._fixtures import shared_pipeline

    pipeline = shared_pipeline(tmp_path_factory)
    root = tmp_path_factory.mktemp("asr_with_lm")
    lm = write_lm_recipe(root, pipeline.data / "train", tokenizer=pipeline.tokenizer)
    conf = root / "asr" / "conf"
    conf.mkdir()
    (conf / "inference.yaml").write_text(yaml.safe_dump({
        "model_dir": str(pipeline.model_dir), "test_sets": {"test": str(pipeline.data / "test")},
        "output_dir": "exp/infer",
        "decode": {"method": "beam_search", "beam_size": 2, "lm": "../lm/exp/lm/model",
                   "lm_weight": 0.4}}))
    (conf / "publish.yaml").write_text(yaml.safe_dump({
        "model_dir": str(pipeline.model_dir), "model_name": "tiny-asr-with-lm",
        "packed_dir": "exp/packed", "scores_file": None, "curves_dir": None}))
    # no LM yet: infer says which stage makes it, before anything runs
    assert main([str(root / "asr"), "--stages", "infer"]) == 2
    err = capsys.readouterr().err
    assert "decode.lm in conf/inference.yaml is ../lm/exp/lm/model" in err
    assert "The train_lm stage writes it" in err
    assert main([str(lm), "--stages", "create_dataset", "train"]) == 0
    assert main([str(root / "asr"), "--stages", "pack_model"]) == 0
    packed = root / "asr" / "exp" / "packed"
    assert yaml.safe_load((packed / "lm" / "config.yaml").read_text())["task"] == "lm"
    decode = yaml.safe_load((packed / "inference.yaml").read_text())["decode"]
    assert decode["lm"] == "lm" and decode["lm_weight"] == 0.4
