"""The states a run moves through, as one enum that events carry and viewers compare against."""

from __future__ import annotations

from enum import Enum


class RunState(str, Enum):
    """A ``str`` too, so it is written to ``metrics.jsonl`` as its plain name and compares with one."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    EVALUATING = "evaluating"
    DONE = "done"
    STOPPED = "stopped"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({RunState.DONE, RunState.STOPPED, RunState.ERROR})
