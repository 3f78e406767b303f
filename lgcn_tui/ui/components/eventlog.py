"""The event log: checkpoints, LR changes, evaluations, commands and warnings, bounded in size."""

from __future__ import annotations

import time
from collections import deque

from rich.text import Text
from textual.widgets import RichLog

from ...sinks.history import LogLine, Snapshot
from ..theme import KIND_COLOURS, LEVEL_COLOURS, MUTED

MAX_LINES = 500


def render_line(line: LogLine) -> Text:
    text = Text(time.strftime("%H:%M:%S ", time.localtime(line.t)), style=MUTED)
    colour = LEVEL_COLOURS.get(line.level) or KIND_COLOURS.get(line.kind, "")
    text.append(line.text, style=f"bold {colour}" if line.level == "error" else colour)
    return text


class EventLog(RichLog):
    """Appends only the lines added since the last snapshot; starts over if the history was reset."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=MAX_LINES, min_width=20, wrap=True, markup=False, highlight=False,
                         auto_scroll=True)
        self.border_title = "log"
        self.seen = 0
        self.plain: deque[str] = deque(maxlen=MAX_LINES)

    def show(self, snap: Snapshot) -> None:
        if snap.log_total < self.seen:
            self.clear()
            self.plain.clear()
            self.seen = 0
        new = min(snap.log_total - self.seen, len(snap.log))
        for line in snap.log[len(snap.log) - new:] if new > 0 else ():
            self.write(render_line(line))
            self.plain.append(line.text)
        self.seen = snap.log_total
