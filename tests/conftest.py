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


TINY = [
    "data.synthetic_users=120",
    "data.synthetic_items=90",
    "data.synthetic_per_user=10",
    "data.synthetic_dim=16",
    "optim.batch_size=128",
    "run.epochs=3",
    "eval.sim_pairs=500",
]


@pytest.fixture
def tiny_config(tmp_path: Path):
    """A seconds-long synthetic config writing its runs under ``tmp_path``; extra overrides win."""
    from lgcn_tui import config

    def make(*overrides: str) -> config.Config:
        return config.resolve({}, "test", [*TINY, f'run.out_dir="{tmp_path / "runs"}"', *overrides])

    return make
