"""``.ci/dist.py`` (``just dist``): one version, compatible ranges, no exact pins, built metadata.

The pyproject checks run on the real files and on small broken copies (fast, no build);
one test builds the six wheels and sdists offline (about 3 s; skipped when uv or the
build backend is not in uv's cache).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
_spec = importlib.util.spec_from_file_location("ci_dist", ROOT / ".ci" / "dist.py")
dist = importlib.util.module_from_spec(_spec)
sys.modules["ci_dist"] = dist  # dataclasses look their module up while the class is made
_spec.loader.exec_module(dist)


def test_the_workspace_metadata_is_fit_to_publish() -> None:
    version, problems = dist.check_pyprojects()
    assert problems == []
    assert version == __import__("espnet_data").__version__


@pytest.mark.parametrize(
    ("version", "expected"),
    [("0.1.0", ">=0.1.0,<0.2"), ("0.4.2", ">=0.4.2,<0.5"), ("1.3.0", ">=1.3.0,<2"),
     ("2.0.1.dev3", ">=2.0.1,<3")],
)
def test_compatible_range(version: str, expected: str) -> None:
    assert dist.compatible_range(version) == expected


@pytest.mark.parametrize(
    ("requirement", "problem"),
    [
        ("torch==2.11.0", "exact pin"),
        ("torch===2.11.0", "exact pin"),
        ("espnet-data", "no version range; write 'espnet-data>=0.1.0,<0.2'"),
        ("espnet_model>=0.0.1,<0.1", "must hold 0.1.0"),
        ("espnet-model>=0.1", "stop before 0.2"),
        ("espnet-infer==0.1.0", "exact pin"),
        ("torch >= 2 <", "cannot be parsed"),
    ],
)
def test_bad_requirements_are_named_with_the_fix(requirement: str, problem: str) -> None:
    problems = dist.requirement_problems(requirement, version="0.1.0", where="p.toml")
    assert problems and all(p.startswith("p.toml: ") for p in problems)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    "requirement",
    ["torch>=2.11,<3", "numpy>=1.26", "espnet-data>=0.1.0,<0.2", "espnet-data~=0.1.0",
     "torch==2.11.*", "mpich>=4.2; sys_platform == 'linux'"],
)
def test_good_requirements_pass(requirement: str) -> None:
    assert dist.requirement_problems(requirement, version="0.1.0", where="p.toml") == []


def _copy_pyprojects(root: Path) -> Path:
    for name in dist.PACKAGES:
        src = ROOT / "packages" / name
        module = name.replace("-", "_")
        (root / "packages" / name / "src" / module).mkdir(parents=True)
        for rel in ("pyproject.toml", "README.md", f"src/{module}/__init__.py"):
            shutil.copy(src / rel, root / "packages" / name / rel)
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_mismatched_versions_readme_and_license_are_reported(tmp_path: Path) -> None:
    root = _copy_pyprojects(tmp_path)
    assert dist.check_pyprojects(root) == ("0.1.0", [])
    infer = root / "packages" / "espnet-infer"
    _edit(infer / "pyproject.toml", 'version = "0.1.0"', 'version = "0.2.0"')
    (root / "packages" / "espnet-model" / "README.md").write_text("")
    _edit(root / "packages" / "espnet-train" / "pyproject.toml", 'license = "Apache-2.0"\n', "")
    _edit(root / "packages" / "espnet-data" / "src" / "espnet_data" / "__init__.py",
          '__version__ = "0.1.0"', '__version__ = "0.0.9"')
    _, problems = dist.check_pyprojects(root)
    text = "\n".join(problems)
    assert "different versions" in text and "espnet-infer 0.2.0" in text
    assert "espnet-infer/pyproject.toml: version 0.2.0, but the release is 0.1.0" in text
    assert "espnet-model/pyproject.toml: no readme" in text
    assert "espnet-train/pyproject.toml: no license" in text
    assert "espnet_data.__version__ is 0.0.9" in text


def test_the_cli_fails_and_names_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy_pyprojects(tmp_path)
    _edit(root / "packages" / "espnet-publish" / "pyproject.toml", '"pyyaml>=6"', '"pyyaml==6.0.2"')
    monkeypatch.setattr(dist, "ROOT", root)
    assert dist.main(["check"]) == 1
    assert "'pyyaml==6.0.2' is an exact pin" in capsys.readouterr().err


def test_uncommitted_files_are_listed(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not on PATH")
    run = {"cwd": tmp_path, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **run)
    (tmp_path / "packages" / "p").mkdir(parents=True)
    (tmp_path / "packages" / "p" / "new.py").write_text("x = 1\n")
    (tmp_path / "other.txt").write_text("not a package file\n")
    assert dist.uncommitted_files(tmp_path) == ["packages/p/new.py"]
    assert dist.uncommitted_files(tmp_path / "nowhere") == []


@pytest.mark.slow
def test_build_writes_one_wheel_and_sdist_per_package(tmp_path: Path) -> None:
    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH")
    out = tmp_path / "dist"
    try:
        dist.build(out, offline=True)
    except subprocess.CalledProcessError:
        pytest.skip("uv build --offline failed: the build backend (hatchling) is not in uv's cache")
    version, _ = dist.check_pyprojects()
    assert dist.check_built(out, version) == []
    assert len(list(out.glob("*.whl"))) == len(list(out.glob("*.tar.gz"))) == 6
    whl = dist.built_meta(next(out.glob("espnet_publish-*.whl")))
    assert "espnet-infer<0.2,>=0.1.0" in whl.requires and whl.license == "Apache-2.0"
    # a broken build is caught too: a missing sdist
    next(out.glob("espnet_train-*.tar.gz")).unlink()
    assert any("expected one sdist espnet_train-" in p for p in dist.check_built(out, version))
