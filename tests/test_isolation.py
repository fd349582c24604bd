"""Package isolation: each package works without the packages above it.

Dependency direction: data -> model -> train / infer -> publish -> system. Real fresh
venv installs would download torch, so the check is made three cheaper ways:

1. every module is parsed with ``ast`` and may not import a higher package (imports
   inside functions count too);
2. each package and all its submodules are imported in a subprocess whose
   ``sys.meta_path`` refuses the higher packages (and Lightning where it is forbidden);
3. each ``pyproject.toml`` lists no higher package (and no Lightning where forbidden).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
ORDER = ["espnet_data", "espnet_model", "espnet_train", "espnet_infer", "espnet_publish",
         "espnet_system"]

#: package -> top-level modules it must never import
FORBIDDEN: dict[str, set[str]] = {
    "espnet_data": {*ORDER[1:], "lightning", "pytorch_lightning"},
    "espnet_model": {*ORDER[2:], "espnet_data", "webdataset", "lightning", "pytorch_lightning"},
    "espnet_train": {"espnet_infer", "espnet_publish", "espnet_system"},
    "espnet_infer": {"espnet_train", "espnet_publish", "espnet_system", "lightning",
                     "pytorch_lightning"},
    "espnet_publish": {"espnet_train", "espnet_system", "lightning", "pytorch_lightning"},
    "espnet_system": set(),
}


def _src(package: str) -> Path:
    return ROOT / "packages" / package.replace("_", "-") / "src" / package


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


@pytest.mark.parametrize("package", ORDER)
def test_sources_import_no_higher_package(package: str) -> None:
    files = sorted(_src(package).rglob("*.py"))
    assert files, f"no sources under {_src(package)}"
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in _imports(path)
        if module in FORBIDDEN[package]
    ]
    assert not bad, "\n".join(bad)


BLOCKED_IMPORT = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    blocked = set(sys.argv[2].split(","))

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ImportError(f"{name} is blocked: a lower package must not import it")
            return None

    sys.meta_path.insert(0, Block())
    package = importlib.import_module(sys.argv[1])
    for name in package.__all__:
        getattr(package, name)
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in blocked)
    assert not leaked, leaked
    print("ok", len(package.__all__))
    """
)


@pytest.mark.parametrize("package", ["espnet_data", "espnet_model", "espnet_infer", "espnet_publish"])
def test_public_api_imports_without_higher_packages(package: str) -> None:
    blocked = ",".join(sorted(FORBIDDEN[package]))
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT, package, blocked],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok")


def test_the_blocker_does_block() -> None:
    """The check above is meaningful: importing train with Lightning blocked fails."""
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT, "espnet_train", "lightning"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode != 0 and "lightning is blocked" in proc.stderr


def _dist(requirement: str) -> str:
    name = re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0]
    return name.lower().replace("-", "_").replace(".", "_")


@pytest.mark.parametrize("package", ORDER)
def test_pyproject_lists_no_higher_package(package: str) -> None:
    pyproject = ROOT / "packages" / package.replace("_", "-") / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    deps = {_dist(r) for r in project.get("dependencies", [])}
    bad = deps & FORBIDDEN[package]
    assert not bad, f"{pyproject} depends on {sorted(bad)}"
    # and every workspace package a module imports is declared (a real install would miss it)
    imported = {m for path in _src(package).rglob("*.py") for _, m in _imports(path)}
    undeclared = (imported & set(ORDER)) - deps - {package}
    assert not undeclared, f"{pyproject} does not list {sorted(undeclared)}"
