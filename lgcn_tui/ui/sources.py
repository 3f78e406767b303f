"""What feeds the dashboard's history: a run in this process, or a run directory another process writes.

Both do their work on the dashboard's thread worker and return a word for the outcome,
and both hand the UI its events through ``pull``, which the UI calls on its own timer: a
live run only appends its events to an ``EventBuffer``, so the training thread never
waits for the dashboard. Nothing here imports Textual.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..contract import events as ev
from ..contract.control_file import ControlFileReader
from ..rundir import RunDir
from ..run.lifecycle import Run
from ..sinks.buffer import EventBuffer
from ..sinks.history import History, follow
from .control import Control, FileControl, QueueControl


class Source(Protocol):
    run_dir: Path
    control: Control

    def work(self, history: History, cancelled: threading.Event) -> str: ...

    def pull(self, history: History) -> None: ...


@dataclass
class LiveSource:
    """A run already set up, so config and data errors surfaced before the dashboard opened.

    ``buffer`` is one of the run's sinks. The run's control file is read too, so ``lgcn-tui
    send`` and ``watch`` from another shell steer a dashboard run as they steer a headless one.
    """

    run: Run
    buffer: EventBuffer = field(default_factory=EventBuffer)
    reader: ControlFileReader | None = field(default=None, init=False)

    @property
    def control(self) -> Control:
        return QueueControl(self.run.commands)

    @property
    def run_dir(self) -> Path:
        assert self.run.run_dir is not None
        return self.run.run_dir.path

    def work(self, history: History, cancelled: threading.Event) -> str:
        """Train on this thread; returns done or stopped, raises what the run raised."""
        try:
            return str(self.run.train())
        finally:
            self.run.cleanup()

    def pull(self, history: History) -> None:
        if self.reader is None:
            self.reader = ControlFileReader(self.run_dir)
        self.reader.forward(self.run.send, lambda problem: history.handle(ev.Message(level="warning", text=problem)))
        self.buffer.drain(history)


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

    def pull(self, history: History) -> None:
        """The follower fills the history on the worker thread: the file, not the UI, is its pace."""
