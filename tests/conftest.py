"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Callable[[str], Path]:
    """Locate real data under ``../shared/data``; a missing dataset fails the test that needs it.

    Failing (not skipping) keeps CI honest: the data is meant to be there, and a silent skip
    would hide that the real-data checks stopped running.
    """

    def locate(name: str) -> Path:
        path = SHARED_DATA / name
        if not path.exists():
            pytest.fail(f"real test data missing: {path} (expected ../shared/data/{name} beside "
                        "the repository; see shared/data/README.md)", pytrace=False)
        return path

    return locate
