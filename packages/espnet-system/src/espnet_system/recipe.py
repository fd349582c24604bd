"""Find the system a recipe runs: ``src/system.py``'s ``System``, else by the folder's name.

Recipes live in ``egs/<corpus>/<system>/`` and the front-end is ``just <system> <corpus>``,
so the folder's name says which system runs it: ``lm`` -> :class:`LMSystem`, ``tts`` ->
:class:`TTSSystem`, ``asr`` (and any other name, as before) -> :class:`ASRSystem`. A recipe that needs more (a stage of
its own) defines ``System`` in ``src/system.py``, a subclass of either.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from .asr import ASRSystem
from .base import BaseSystem
from .lm import LMSystem
from .stages import StageError
from .tts import TTSSystem

#: recipe folder name -> system; other names run ASRSystem
SYSTEMS: dict[str, type[BaseSystem]] = {"asr": ASRSystem, "lm": LMSystem, "tts": TTSSystem}


def system_for(recipe_dir: str | os.PathLike[str]) -> type[BaseSystem]:
    """The system a recipe folder without ``src/system.py`` runs (by its name)."""
    return SYSTEMS.get(Path(recipe_dir).resolve().name, ASRSystem)


def load_system(
    recipe_dir: str | os.PathLike[str], conf_dir: str = "conf", *, per_rank_logs: bool = False
) -> BaseSystem:
    """Instantiate the recipe's system (a recipe-local subclass when it has one, else
    :func:`system_for` its folder name).

    ``src/system.py`` is imported as a module of its own; it may import its neighbours in
    ``src/`` (the folder is put first on ``sys.path`` while it loads).
    """
    recipe = Path(recipe_dir)
    if not recipe.is_dir():
        raise StageError(f"recipe folder {recipe} does not exist (e.g. egs/mini/asr)")
    local = recipe / "src" / "system.py"
    cls: type[BaseSystem] = system_for(recipe)
    if local.is_file():
        spec = importlib.util.spec_from_file_location(f"recipe_system_{abs(hash(local))}", local)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and jsonargparse look the module up
        sys.path.insert(0, str(local.parent))
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[spec.name]
            raise
        finally:
            sys.path.remove(str(local.parent))
        found = getattr(module, "System", None)
        if not (isinstance(found, type) and issubclass(found, BaseSystem)):
            raise StageError(f"{local} must define System, a subclass of espnet_system.BaseSystem")
        cls = found
    return cls(recipe, conf_dir=conf_dir, per_rank_logs=per_rank_logs)
