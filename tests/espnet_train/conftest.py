"""Session fixtures: the tiny corpus, tokenizer, stats and trained model (built once)."""

from __future__ import annotations

import pytest

from tests._fixtures import Pipeline, shared_pipeline


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """Read-only: copy what a test needs to change."""
    return shared_pipeline(tmp_path_factory)
