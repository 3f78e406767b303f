"""The event log: checkpoints, LR changes, evaluations, commands and warnings; the newest at the bottom.

A tail view rather than a scrolling log: the history already bounds the lines kept, and a
scrolling widget relays out the whole screen on every line it appends, which on a fast run
(an epoch a second) would cost the training thread more than all the charts together.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from ...sinks.history import LogLine, Snapshot
from ..theme import KIND_COLOURS, LEVEL_COLOURS, MUTED


def render_line(line: LogLine, run_dir: str = "") -> Text:
    """Paths inside the run directory are shown from it (``checkpoints/step-….pt``): the header
    names the run, and a short path wraps at its space instead of breaking mid-name."""
    text = Text(time.strftime("%H:%M:%S ", time.localtime(line.t)), style=MUTED)
    colour = LEVEL_COLOURS.get(line.level) or KIND_COLOURS.get(line.kind, "")
    shown = line.text.replace(run_dir.rstrip("/") + "/", "") if run_dir else line.text
    text.append(shown, style=f"bold {colour}" if line.level == "error" else colour)
    return text


class EventLog(Static):
    """The newest lines, wrapped here to the pane's width so the newest one is never cut off."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "log"
        self.shown: tuple[int, object] | None = None
        self.plain: list[str] = []

    def show(self, snap: Snapshot) -> None:
        key = (snap.log_total, self.size)
        if key == self.shown:
            return
        self.shown = key
        width, height = max(self.size.width, 1), self.size.height
        rows: list[Text] = []
        self.plain = []
        for line in reversed(snap.log):
            if len(rows) >= height:
                break
            rows[:0] = render_line(line, snap.run.run_dir if snap.run else "").wrap(self.app.console, width)
            self.plain.insert(0, line.text)
        self.update(Text("\n").join(rows[-height:] if height else []), layout=False)
