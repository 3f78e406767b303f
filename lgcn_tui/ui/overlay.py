"""Another run drawn behind this one: its loss and Recall@20, for comparing runs while one trains.

The other run's ``metrics.jsonl`` is read once into its own history when the user picks it;
a run that is still training is shown as it was then (pick it again to refresh).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..rundir import RunDir
from ..sinks.history import History, Snapshot, load


@dataclass(frozen=True)
class Overlay:
    name: str
    snap: Snapshot


def read_overlay(path: Path, name: str) -> Overlay:
    history = History()
    load(RunDir(path).metrics, history)
    return Overlay(name, history.snapshot())
