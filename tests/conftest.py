"""Fixtures shared by the test packages."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A split of 6 synthesised utterances in 3 shards (read-only: copy it to change it).

    Its FLACs and ``transcripts.txt`` are in ``tiny_shards.parent / "audio"``.
    """
    from espnet_data.testing import make_shards

    return make_shards(tmp_path_factory.mktemp("tiny"), 6, utterances_per_shard=2)
