"""``RUN_DIR/control``: commands from other processes, one JSON object per line.

``lgcn-tui send`` and ``watch`` append lines; the process that owns the run follows the
file and turns each new line into a command with ``commands.parse``, so another process
obeys exactly the rules the dashboard's keys do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UserError
from ..tail import LineTail
from . import commands

CONTROL_FILE = "control"


def send(run_dir: Path, command: commands.Command) -> None:
    """Append a command to the run's control file (one line, one write, so lines never interleave)."""
    line = json.dumps(commands.to_dict(command)) + "\n"
    fd = os.open(run_dir / CONTROL_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class ControlFileReader:
    """Yields commands appended to ``RUN_DIR/control`` since the reader was created.

    Lines written before the run started are never replayed, so a resumed run does not
    obey stale commands. A bad line becomes an error string instead of a crash.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / CONTROL_FILE
        self.lines = LineTail(self.path, from_end=True)

    def poll(self) -> list[commands.Command | str]:
        lines, _ = self.lines.read()
        out: list[commands.Command | str] = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                out.append(commands.parse(json.loads(raw), source="control"))
            except (ValueError, UserError, TypeError) as exc:
                out.append(f"{self.path}: ignored line {raw.decode(errors='replace')!r}: {exc}")
        return out
