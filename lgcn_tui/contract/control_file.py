"""``RUN_DIR/control``: commands from other processes, one JSON object per line.

``lgcn-tui send`` and ``watch`` append lines; the process that owns the run follows the
file and turns each new line into a command with ``commands.parse``, so another process
obeys exactly the rules the dashboard's keys do.

On a shared GPU box this file is the run's steering wheel, so it is created readable and
writable by its owner only (whatever the umask), and lines are obeyed only while the file
belongs to the user the run runs as. Nothing written to it can stop the run from reading
it: a malformed or over-long line is reported and skipped, and a file that cannot be read
(replaced by a directory, say) is reported once while the run trains on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from ..tail import LineTail
from . import commands

CONTROL_FILE = "control"


def send(run_dir: Path, command: commands.Command) -> None:
    """Append a command to the run's control file (one line, one write, so lines never interleave)."""
    line = json.dumps({**commands.to_dict(command), **({"by": command.source} if command.source else {})}) + "\n"
    fd = os.open(run_dir / CONTROL_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
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
        self._problem: str | None = None

    def poll(self) -> list[commands.Command | str]:
        """New commands, and a line of text for each thing that was refused or went wrong."""
        try:
            owner = self.path.stat().st_uid
            lines, _ = self.lines.read()
        except FileNotFoundError:
            return []
        except OSError as exc:
            return self._once(f"cannot read {self.path} ({exc.strerror}); commands are not taken until it is "
                              "a file again")
        self._problem = None
        out: list[commands.Command | str] = [
            f"{self.path}: skipped a line of {size:,} bytes (longer than {self.lines.max_bytes:,}); "
            "commands are one short JSON object per line" for size in self.lines.oversized]
        if lines and owner != os.getuid():
            out.append(f"{self.path} belongs to uid {owner}, not to this run's user (uid {os.getuid()}); "
                       f"ignored {len(lines)} line(s) from it")
            return out
        for raw in lines:
            if not raw.strip():
                continue
            try:
                out.append(commands.parse(json.loads(raw), source="the control file"))
            except (ValueError, UserError, TypeError) as exc:
                out.append(f"{self.path}: ignored line {raw.decode(errors='replace')!r}: {exc}")
        return out

    def forward(self, send: Callable[[commands.Command], None], warn: Callable[[str], None]) -> None:
        """Hand each new command to ``send`` (the run's queue) and each refusal to ``warn``: what
        the headless runner and the dashboard both do on their own timers."""
        for item in self.poll():
            if isinstance(item, str):
                warn(item)
            else:
                send(item)

    def _once(self, problem: str) -> list[commands.Command | str]:
        """A lasting problem is reported when it starts, not on every poll."""
        if problem == self._problem:
            return []
        self._problem = problem
        return [problem]
