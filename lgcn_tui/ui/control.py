"""Where the dashboard's keys send commands: the live trainer's queue, or a headless run's control file.

The dashboard does not care which; only ``watch`` must never stop the run it detaches from,
and that rule lives in the app's quit action, not here. Nothing here imports Textual.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..contract import commands as cmd
from ..contract import control_file


class Control(Protocol):
    """``live`` is True when quitting the dashboard ends the run."""

    live: bool

    def send(self, command: cmd.Command) -> None: ...


@dataclass
class QueueControl:
    """Commands for a trainer in this process; it drains the queue between steps."""

    commands: queue.Queue[cmd.Command]
    live: bool = True

    def send(self, command: cmd.Command) -> None:
        self.commands.put(command)


@dataclass
class FileControl:
    """Commands for a headless run in another process, appended to ``RUN_DIR/control``."""

    run_dir: Path
    live: bool = False

    def send(self, command: cmd.Command) -> None:
        control_file.send(self.run_dir, command)
