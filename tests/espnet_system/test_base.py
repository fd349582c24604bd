"""BaseSystem: configs by role parsed before any stage runs, canonical order, stage logs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from espnet_system import BaseSystem, StageError, parse_config
from espnet_system.base import to_plain


@dataclasses.dataclass
class Greeting:
    """A toy config role."""

    text: str
    times: int = 1


class ToySystem(BaseSystem):
    stages: ClassVar[tuple[str, ...]] = ("prepare", "greet", "publish")
    explicit_only: ClassVar[frozenset[str]] = frozenset({"publish"})
    config_roles: ClassVar[dict[str, str]] = {"greet": "greeting", "publish": "greeting"}
    config_schemas: ClassVar[dict[str, type]] = {"greeting": Greeting}
    distributed_stages: ClassVar[frozenset[str]] = frozenset({"greet"})

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.ran: list[str] = []

    def prepare(self) -> None:
        self.ran.append("prepare")
        Path("prepared.txt").write_text("ok")  # relative: runs inside the recipe folder

    def greet(self) -> None:
        cfg: Greeting = self.config("greeting")
        self.ran.append("greet")
        Path("greeting.txt").write_text(cfg.text * cfg.times)

    def publish(self) -> None:
        self.ran.append("publish")


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "greeting.yaml").write_text("text: hi\ntimes: 2\n")
    return tmp_path


def test_runs_in_canonical_order_inside_the_recipe(recipe: Path) -> None:
    system = ToySystem(recipe)
    assert system.run(["greet", "prepare"]) == ["prepare", "greet"]
    assert system.ran == ["prepare", "greet"]
    assert (recipe / "greeting.txt").read_text() == "hihi"
    assert (recipe / "prepared.txt").is_file()


def test_all_leaves_out_explicit_only(recipe: Path) -> None:
    assert ToySystem(recipe).run(["all"]) == ["prepare", "greet"]


def test_one_log_per_stage_with_header(recipe: Path) -> None:
    ToySystem(recipe).run(["all"])
    logs = recipe / "exp" / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["greet.log", "prepare.log"]
    head = (logs / "greet.log").read_text()
    assert "# stage: greet" in head
    assert str(recipe / "conf" / "greeting.yaml") in head
    assert "resolved_config:\n#   greeting:\n#     text: hi\n#     times: 2" in head
    assert "stage greet: done" in head
    ToySystem(recipe).run(["greet"])
    assert (logs / "greet1.log").is_file() and not (logs / "prepare1.log").exists()


def test_missing_config_fails_before_any_stage(recipe: Path) -> None:
    (recipe / "conf" / "greeting.yaml").unlink()
    system = ToySystem(recipe)
    with pytest.raises(StageError, match=r"greeting\.yaml is missing.*'greet'"):
        system.run(["prepare", "greet"])
    assert system.ran == []
    assert not (recipe / "exp").exists() and not (recipe / "prepared.txt").exists()


def test_bad_key_fails_before_any_stage_naming_it(recipe: Path) -> None:
    (recipe / "conf" / "greeting.yaml").write_text("text: hi\ntimez: 2\n")
    system = ToySystem(recipe)
    with pytest.raises(StageError, match="timez") as err:
        system.run(["prepare", "greet"])
    assert "greeting.yaml" in str(err.value)
    assert system.ran == []


def test_stage_without_method_is_reported(recipe: Path) -> None:
    class Broken(ToySystem):
        stages = ("prepare", "missing")

    with pytest.raises(StageError, match="'missing' but has no method"):
        Broken(recipe).run(["all"])


def test_role_without_schema_is_reported(recipe: Path) -> None:
    class NoSchema(ToySystem):
        config_schemas = {}

    with pytest.raises(StageError, match="no schema for config role 'greeting'"):
        NoSchema(recipe).run(["greet"])


def test_config_is_parsed_once(recipe: Path) -> None:
    system = ToySystem(recipe)
    first = system.config("greeting")
    (recipe / "conf" / "greeting.yaml").write_text("text: changed\n")
    assert system.config("greeting") is first


def test_missing_recipe_folder(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="does not exist"):
        ToySystem(tmp_path / "nope")


def test_conf_dir_is_selectable(recipe: Path) -> None:
    (recipe / "conf_alt").mkdir()
    (recipe / "conf_alt" / "greeting.yaml").write_text("text: yo\n")
    ToySystem(recipe, conf_dir="conf_alt").run(["greet"])
    assert (recipe / "greeting.txt").read_text() == "yo"


def test_parse_config_and_to_plain(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"text": "a"}))
    cfg = parse_config(Greeting, path)
    assert cfg == Greeting(text="a", times=1)
    assert to_plain(cfg) == {"class": "Greeting", "text": "a", "times": 1}
    assert to_plain({"p": Path("x"), "t": (1, 2)}) == {"p": "PosixPath('x')", "t": [1, 2]}
    path.write_text("times: 2\n")
    with pytest.raises(StageError, match="text"):
        parse_config(Greeting, path)


def test_unknown_key_names_the_closest_valid_one(recipe: Path) -> None:
    (recipe / "conf" / "greeting.yaml").write_text("text: hi\ntimez: 2\n")
    with pytest.raises(StageError, match=r"unknown key 'timez' \(did you mean 'times'\?\)"):
        ToySystem(recipe).run(["greet"])


def test_relative_paths_resolve_in_the_recipe_wherever_run_from(
    recipe: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)
    ToySystem(Path(os.path.relpath(recipe, elsewhere))).run(["all"])
    assert (recipe / "greeting.txt").read_text() == "hihi"
    assert list(elsewhere.iterdir()) == []


def test_plan_lists_stages_configs_logs_and_resolved_configs(recipe: Path) -> None:
    system = ToySystem(recipe)
    text = system.plan(["greet", "prepare"])
    lines = text.splitlines()
    assert lines[1].split() == ["1.", "prepare", "(no", "config)", "log:", "exp/logs/prepare.log"]
    assert lines[2].split() == ["2.", "greet", "conf/greeting.yaml", "log:", "exp/logs/greet.log"]
    assert "--- # conf/greeting.yaml (Greeting)" in text and "times: 2" in text
    assert system.ran == [] and not (recipe / "exp").exists()


def test_print_configs_is_a_valid_config(recipe: Path, tmp_path: Path) -> None:
    (recipe / "conf" / "greeting.yaml").write_text("text: hi\n")
    text = ToySystem(recipe).print_configs(["greet"])
    body = text.split("\n", 1)[1]
    assert yaml.safe_load(body) == {"text": "hi", "times": 1}  # the default filled in
    (tmp_path / "again.yaml").write_text(body)
    assert parse_config(Greeting, tmp_path / "again.yaml") == Greeting(text="hi", times=1)


class MappedSystem(ToySystem):
    stage_log_mapping: ClassVar[dict[str, str]] = {"greet": "exp/{greeting.text}/logs",
                                                  "prepare": "exp/prep"}


def test_stage_log_mapping_places_logs(recipe: Path) -> None:
    MappedSystem(recipe).run(["all"])
    assert (recipe / "exp" / "hi" / "logs" / "greet.log").is_file()
    assert (recipe / "exp" / "prep" / "prepare.log").is_file()
    assert not (recipe / "exp" / "logs").exists()


def test_bad_stage_log_mapping_fails_before_any_stage(recipe: Path) -> None:
    class Bad(ToySystem):
        stage_log_mapping = {"greet": "{greeting.nope}"}

    system = Bad(recipe)
    with pytest.raises(StageError, match=r"stage_log_mapping\['greet'\].*no field 'nope'"):
        system.run(["prepare", "greet"])
    assert system.ran == []


@pytest.mark.parametrize("variable", ["RANK", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK"])
def test_only_rank_zero_writes_the_stage_log(
    recipe: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "1")
    ToySystem(recipe).run(["greet"])
    assert (recipe / "greeting.txt").is_file()  # the stage ran
    assert not (recipe / "exp" / "logs").exists()
    ToySystem(recipe, per_rank_logs=True).run(["greet"])
    assert [p.name for p in (recipe / "exp" / "logs").iterdir()] == ["greet.rank1.log"]
    monkeypatch.setenv(variable, "0")
    ToySystem(recipe).run(["greet"])
    assert (recipe / "exp" / "logs" / "greet.log").is_file()


def test_other_ranks_run_only_distributed_stages(
    recipe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_RANK", "1")  # a rank started by Lightning's DDP launcher
    system = ToySystem(recipe)
    assert system.run(["all"]) == ["greet"]
    assert system.ran == ["greet"] and not (recipe / "prepared.txt").exists()
