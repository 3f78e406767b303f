"""What feeds the dashboard's history: a trainer in this process, or a run directory another process writes.

Both do their work on the dashboard's thread worker and return a word for the outcome.
Nothing here imports Textual: the worker is the app's business, the work is this module's.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..rundir import RunDir
from ..sinks.history import History, follow
from ..train.events import Sink
from ..train.trainer import Trainer
from .control import Control, FileControl, QueueControl


class Source(Protocol):
    run_dir: Path
    control: Control

    def work(self, history: History, cancelled: threading.Event) -> str: ...


@dataclass
class LiveSource:
    """A trainer already built, so config and data errors surfaced before the dashboard opened.

    The history is one of the trainer's sinks; ``closing`` are the sinks to close once the
    trainer is done (the metrics file), on the thread that wrote to them.
    """

    trainer: Trainer
    closing: list[Sink] = field(default_factory=list)

    @property
    def control(self) -> Control:
        return QueueControl(self.trainer.commands)

    @property
    def run_dir(self) -> Path:
        return self.trainer.run_dir.path

    def work(self, history: History, cancelled: threading.Event) -> str:
        """Train on this thread; returns done or stopped, raises what the trainer raised."""
        try:
            return self.trainer.run_safely()
        finally:
            for sink in self.closing:
                sink.close()


@dataclass
class WatchSource:
    """A headless run's directory: its metrics file is followed until the dashboard detaches."""

    rundir: RunDir
    interval: float = 0.25

    @property
    def control(self) -> Control:
        return FileControl(self.rundir.path)

    @property
    def run_dir(self) -> Path:
        return self.rundir.path

    def work(self, history: History, cancelled: threading.Event) -> str:
        follow(self.rundir.metrics, history, cancelled, self.interval)
        return "detached"
