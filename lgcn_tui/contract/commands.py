"""Commands that steer a run, as typed values validated in one place.

Keys in the dashboard, ``watch``, ``lgcn-tui send`` and lines of the control file all
build the same objects, so one rule decides what is valid: constructing a command checks
it, and ``parse`` turns the JSON form (``{"cmd": "set_lr", "group": "item", "lr": 1e-4}``)
into one, naming the field at fault when it cannot.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from ..config import LR_RANGE
from ..errors import UserError
from .schedule import GROUPS

MIN_LR, MAX_LR = LR_RANGE


@dataclass(frozen=True)
class Order:
    """A command with nothing to say but itself; ``source`` tells the log who asked, in the
    user's words ("key p", "SIGTERM", "lgcn-tui send"); empty when code asked."""

    name: ClassVar[str]
    source: str = ""


class Pause(Order):
    name = "pause"


class Resume(Order):
    name = "resume"


class SaveCheckpoint(Order):
    name = "checkpoint"


class Evaluate(Order):
    name = "evaluate"


@dataclass(frozen=True)
class Stop:
    """``save``: write a checkpoint before stopping."""

    name: ClassVar[str] = "stop"
    save: bool = True
    source: str = ""


@dataclass(frozen=True)
class SetLr:
    """Set a group's rate now; the rest of its schedule is rescaled to continue from it."""

    name: ClassVar[str] = "set_lr"
    group: str
    lr: float
    source: str = ""

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise UserError(f"unknown parameter group {self.group!r}; valid groups: {', '.join(GROUPS)}")
        check_lr(self.lr)
        object.__setattr__(self, "lr", float(self.lr))


Command = Union[Pause, Resume, SaveCheckpoint, Evaluate, Stop, SetLr]
COMMANDS: dict[str, type] = {c.name: c for c in (Pause, Resume, SaveCheckpoint, Evaluate, Stop, SetLr)}


def check_lr(lr: object) -> None:
    """Refuse rates no one means: not a number (``true`` is not 1.0), not finite, or outside [MIN_LR, MAX_LR]."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or math.isnan(lr) or math.isinf(lr):
        raise UserError(f"learning rate {lr!r} is not a finite number")
    if lr <= 0:
        raise UserError(f"learning rate {lr!r} must be positive")
    if lr < MIN_LR or lr > MAX_LR:
        raise UserError(f"learning rate {lr!r} is outside the sensible range; use a value in [{MIN_LR:g}, {MAX_LR:g}]")


def to_dict(command: Command) -> dict[str, Any]:
    """The JSON form of a command, as the control file and the ``command`` event carry it."""
    fields = {k: v for k, v in dataclasses.asdict(command).items() if k != "source"}
    return {"cmd": command.name, **fields}


def parse(data: object, source: str) -> Command:
    """A command from its JSON form; an unknown name, a missing or extra field, or a bad value is refused.

    An optional ``by`` names who asked (the control file carries it); ``source`` stands in without one.
    """
    if not isinstance(data, dict):
        raise UserError(f"a command must be a JSON object like {{\"cmd\": \"pause\"}}, got {data!r}")
    name = data.get("cmd")
    if name not in COMMANDS:
        raise UserError(f"unknown command {name!r}; valid commands: {', '.join(COMMANDS)}")
    cls = COMMANDS[name]
    allowed = {f.name for f in dataclasses.fields(cls)} - {"source"}
    extra = sorted(set(data) - allowed - {"cmd", "by"})
    if extra:
        raise UserError(f"command {name!r} takes {', '.join(sorted(allowed)) or 'no fields'}, not {', '.join(extra)}")
    missing = sorted(f.name for f in dataclasses.fields(cls)
                     if f.name in allowed and f.default is dataclasses.MISSING and f.name not in data)
    if missing:
        raise UserError(f"command {name!r} needs {', '.join(missing)}")
    if name == "stop" and not isinstance(data.get("save", True), bool):
        raise UserError(f"command 'stop': save must be true or false, got {data['save']!r}")
    by = data.get("by")
    return cls(**{k: v for k, v in data.items() if k not in ("cmd", "by")}, source=by if isinstance(by, str) else source)
