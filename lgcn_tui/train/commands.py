"""Commands that steer a running trainer, and the control file that carries them between processes.

The trainer reads commands from a ``queue.Queue`` between steps. A headless run also
follows ``RUN_DIR/control``: another process appends one JSON object per line, e.g.
``{"cmd": "pause"}`` or ``{"cmd": "set_lr", "group": "item", "lr": 1e-4}``, and the
run turns each new line into the same command.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..tail import LineTail

GROUPS = ("user", "item")
MAX_LR = 1.0


@dataclass(frozen=True)
class Command:
    """``name`` is one of pause, resume, checkpoint, set_lr, evaluate, stop."""

    name: str
    group: str | None = None
    lr: float | None = None
    save: bool = True
    source: str = "queue"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cmd": self.name}
        if self.name == "set_lr":
            out.update(group=self.group, lr=self.lr)
        if self.name == "stop":
            out["save"] = self.save
        return out


def pause() -> Command:
    return Command("pause")


def resume() -> Command:
    return Command("resume")


def checkpoint() -> Command:
    return Command("checkpoint")


def evaluate() -> Command:
    return Command("evaluate")


def stop(save: bool = True) -> Command:
    return Command("stop", save=save)


def set_lr(group: str, lr: float) -> Command:
    check_lr(lr)
    if group not in GROUPS:
        raise UserError(f"unknown parameter group {group!r}; valid groups: {', '.join(GROUPS)}")
    return Command("set_lr", group=group, lr=float(lr))


def check_lr(lr: float) -> None:
    """Refuse learning rates no one means: not a number, not positive, or above ``MAX_LR``."""
    if not isinstance(lr, (int, float)) or math.isnan(lr) or math.isinf(lr):
        raise UserError(f"learning rate {lr!r} is not a finite number")
    if lr <= 0:
        raise UserError(f"learning rate {lr!r} must be positive")
    if lr > MAX_LR:
        raise UserError(f"learning rate {lr!r} is absurdly large; use a value in (0, {MAX_LR}]")


COMMAND_NAMES = ("pause", "resume", "checkpoint", "evaluate", "stop", "set_lr")


def command_from_dict(data: dict[str, Any], source: str) -> Command:
    name = data.get("cmd")
    if name not in COMMAND_NAMES:
        raise UserError(f"unknown command {name!r}; valid commands: {', '.join(COMMAND_NAMES)}")
    if name == "set_lr":
        command = set_lr(str(data.get("group")), data.get("lr"))  # type: ignore[arg-type]
    elif name == "stop":
        command = stop(bool(data.get("save", True)))
    else:
        command = Command(name)
    return dataclasses.replace(command, source=source)


CONTROL_FILE = "control"


def send(run_dir: Path, command: Command) -> None:
    """Append a command to the run's control file (one line, one write, so lines never interleave)."""
    line = json.dumps(command.to_dict()) + "\n"
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

    def poll(self) -> list[Command | str]:
        lines, _ = self.lines.read()
        out: list[Command | str] = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                out.append(command_from_dict(json.loads(raw), source="control"))
            except (ValueError, UserError, TypeError, AttributeError) as exc:
                out.append(f"{self.path}: ignored line {raw.decode(errors='replace')!r}: {exc}")
        return out
