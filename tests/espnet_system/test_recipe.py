"""load_system: the recipe's own ``src/system.py`` ``System``, or ASRSystem."""

from __future__ import annotations

from pathlib import Path

import pytest
from espnet_system import ASRSystem, StageError, load_system

RECIPE_SYSTEM = '''
from typing import ClassVar
from pathlib import Path

from espnet_system import ASRSystem


class System(ASRSystem):
    at: ClassVar[int] = ASRSystem.stages.index("train") + 1
    stages: ClassVar[tuple[str, ...]] = (*ASRSystem.stages[:at], "lm", *ASRSystem.stages[at:])

    def lm(self) -> None:
        Path("lm.done").write_text("ok")
'''


def test_plain_recipe_is_asr(tmp_path: Path) -> None:
    system = load_system(tmp_path)
    assert type(system) is ASRSystem
    assert system.conf_dir == tmp_path.resolve() / "conf"


def test_recipe_local_system_adds_a_stage(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "system.py").write_text(RECIPE_SYSTEM)
    system = load_system(tmp_path, conf_dir="c")
    assert isinstance(system, ASRSystem) and type(system) is not ASRSystem
    assert system.conf_dir.name == "c"
    assert system.resolve(["infer", "lm", "train"]) == ["train", "lm", "infer"]
    assert system.run(["lm"]) == ["lm"]  # no config role: nothing to parse
    assert (tmp_path / "lm.done").is_file()
    assert (tmp_path / "exp" / "logs" / "lm.log").is_file()


def test_system_py_without_system_class(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "system.py").write_text("class Other:\n    pass\n")
    with pytest.raises(StageError, match=r"system\.py must define System"):
        load_system(tmp_path)


def test_missing_recipe(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="does not exist"):
        load_system(tmp_path / "egs" / "nope")
