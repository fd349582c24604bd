"""The model card: huggingface_hub's classes read it back, its install line fits our release."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
from espnet_publish import PublishError, pack_model
from espnet_publish._release import compatible_requirement
from espnet_publish.card import LIBRARY_NAME, build_model_card, render_model_card
from espnet_publish.testing import dummy_model_folder, dummy_scores
from huggingface_hub import ModelCard
from packaging.requirements import Requirement


def test_the_packed_card_loads_with_huggingface_hub(tmp_path: Path) -> None:
    out = pack_model(dummy_model_folder(tmp_path / "model"), tmp_path / "packed", model_name="m",
                     extra_files={"scores.json": dummy_scores(tmp_path / "scores.json")},
                     datasets=["openslr/librispeech_asr"], repo_id="me/m")
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == LIBRARY_NAME == "espnet-infer"
    assert card.data.datasets == ["openslr/librispeech_asr"]
    assert card.data.pipeline_tag == "automatic-speech-recognition"
    results = {(r.dataset_name, r.metric_type): r for r in card.data.eval_results}
    assert set(results) == {("test_clean", "wer"), ("test_clean", "cer"), ("test_other", "wer"),
                            ("test_other", "cer")}
    clean = results[("test_clean", "wer")]
    assert clean.metric_value == 3.25 and clean.dataset_type == "openslr/librispeech_asr"
    assert clean.dataset_split == "test_clean" and clean.task_type == "automatic-speech-recognition"


def test_without_datasets_a_test_set_is_its_own_dataset() -> None:
    card = build_model_card(config={"model": {}}, model_name="m", license="mit", language="en",
                            scores={"dev": {"wer": 1.0}})
    (result,) = card.data.eval_results
    assert result.dataset_type == "dev" and result.dataset_split is None
    assert card.data.datasets is None and card.data.metrics == ["wer"]


def test_the_install_line_installs_a_loader_of_this_release() -> None:
    card = render_model_card(config={"model": {}}, model_name="m", license="mit", language="en",
                             scores={})
    line = card.split("```bash\n")[1].split("\n```")[0]
    assert line == f'pip install "{compatible_requirement("espnet-infer")}"'
    requirement = Requirement(line.split('"')[1])
    assert requirement.name == "espnet-infer"
    assert requirement.specifier.contains(metadata.version("espnet-infer"))
    assert not any(spec.operator == "==" for spec in requirement.specifier)


@pytest.mark.parametrize(("version", "expected"), [
    ("0.1.0", "espnet-infer>=0.1.0,<0.2"), ("0.3", "espnet-infer>=0.3.0,<0.4"),
    ("1.4.2", "espnet-infer>=1.4.2,<2"), ("2.0.0rc1", "espnet-infer>=2.0.0,<3"),
])
def test_compatible_requirement(version: str, expected: str) -> None:
    assert compatible_requirement("espnet-infer", version) == expected


def test_compatible_requirement_refuses_a_version_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="'main' of espnet-infer is not of the form X.Y"):
        compatible_requirement("espnet-infer", "main")


def test_perplexity_becomes_the_model_index(tmp_path: Path) -> None:
    ppl = tmp_path / "perplexity.json"
    ppl.write_text(json.dumps({"test": {"ppl": 41.25, "num_tokens": 10}, "dev": {"ppl": 38.5}}))
    out = pack_model(dummy_model_folder(tmp_path / "model"), tmp_path / "packed", model_name="m",
                     extra_files={"perplexity.json": ppl})
    card = ModelCard.load(out / "README.md")
    assert {(r.dataset_name, r.metric_type, r.metric_value) for r in card.data.eval_results} == {
        ("test", "perplexity", 41.25), ("dev", "perplexity", 38.5)}
    assert "perplexity" in card.data.metrics
    assert "| test | 41.25 |" in card.text


def test_a_perplexity_file_without_perplexities_is_refused(tmp_path: Path) -> None:
    ppl = tmp_path / "perplexity.json"
    ppl.write_text(json.dumps({"test": {"nll": 3.0}}))
    with pytest.raises(PublishError, match=r"perplexity\.json .* has no perplexity"):
        pack_model(dummy_model_folder(tmp_path / "model"), tmp_path / "packed", model_name="m",
                   extra_files={"perplexity.json": ppl})
    assert not (tmp_path / "packed").exists()
