"""Typed events a run publishes; every sink (console, JSONL, dashboard) reads these.

Each event serialises to one flat JSON object with an ``event`` key, which is exactly one
line of ``metrics.jsonl``; ``event_from_dict`` turns such a line back into the event, so a
dashboard can be rebuilt from a run directory alone.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from .schedule import LrSchedule
from .state import RunState


@dataclass
class Event:
    kind: ClassVar[str] = "event"
    t: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, **dataclasses.asdict(self)}


@dataclass
class Progress(Event):
    """An event that happened at a point of the run: ``step`` is global (0-based), counting across epochs."""

    epoch: int
    step: int


@dataclass
class RunStarted(Event):
    """The first event of a run and of each resume: what it trains on, where, and its LR plan."""

    kind: ClassVar[str] = "run_started"
    run_dir: str
    name: str
    preset: str
    dataset: dict[str, int]
    device: str
    item_mode: str
    epochs: int
    steps_per_epoch: int
    start_step: int
    resumed: bool
    clip_norm: float
    schedule: LrSchedule


@dataclass
class StepMetrics(Progress):
    """One optimiser step. ``loss`` is the sum of the objective's ``terms``, each under its own
    name (``bpr``, ``reg``, ...: see ``objective``)."""

    kind: ClassVar[str] = "step"
    loss: float
    grad_user: float
    grad_item: float
    lr_user: float
    lr_item: float
    alpha: float | None
    terms: dict[str, float] = field(default_factory=dict)


@dataclass
class EpochEnd(Progress):
    """``seconds`` spent in the epoch's steps (evaluation and checkpoints not included)."""

    kind: ClassVar[str] = "epoch_end"
    mean_loss: float
    seconds: float


@dataclass
class EvalResult(Progress):
    """Metrics of one split, keyed like ``recall@20``; ``model`` is ``lightgcn`` or ``popularity``."""

    kind: ClassVar[str] = "eval"
    split: str
    metrics: dict[str, float]
    model: str = "lightgcn"
    best: bool = False
    seconds: float = 0.0


@dataclass
class Diagnostics(Progress):
    """Retention is the mean cosine of each item vector to its start vector.

    ``sim_edges`` has one more entry than ``sim_counts``: a histogram of item–item cosine
    on a fixed sample of pairs.
    """

    kind: ClassVar[str] = "diagnostics"
    retention: float
    retention_p10: float
    sim_edges: list[float]
    sim_counts: list[int]


@dataclass
class CheckpointSaved(Progress):
    """``reason``: epoch, interval, best, manual, stop, nan or error (see ``run.checkpoints``)."""

    kind: ClassVar[str] = "checkpoint"
    path: str
    reason: str


@dataclass
class StateChanged(Progress):
    """The run entered ``state``; viewers show the state of the last such event."""

    kind: ClassVar[str] = "state"
    state: RunState


@dataclass
class LrChanged(Event):
    """``schedule`` is the plan from this step on (None in files written before it was carried)."""

    kind: ClassVar[str] = "lr_changed"
    group: str
    lr: float
    step: int
    source: str
    schedule: LrSchedule | None = None


@dataclass
class CommandReceived(Event):
    """A command the run took, in its JSON form (``args``), and where it came from."""

    kind: ClassVar[str] = "command"
    command: str
    args: dict[str, Any]
    source: str


@dataclass
class Message(Event):
    """A line for the event log; ``level`` is info, warning or error."""

    kind: ClassVar[str] = "message"
    level: str
    text: str
    checkpoint: str | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted,
        StepMetrics,
        EpochEnd,
        EvalResult,
        Diagnostics,
        CheckpointSaved,
        StateChanged,
        LrChanged,
        CommandReceived,
        Message,
    )
}


VALUES = {"schedule": LrSchedule.from_dict, "state": RunState}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Inverse of ``Event.to_dict``; unknown keys from newer versions are ignored."""
    cls = EVENT_TYPES[data["event"]]
    names = {f.name for f in dataclasses.fields(cls)}
    fields = {k: v for k, v in data.items() if k in names}
    for name, make in VALUES.items():
        if fields.get(name) is not None:
            fields[name] = make(fields[name])
    return cls(**fields)


class Sink(Protocol):
    """Anything that consumes events. Called on the training thread: must return quickly."""

    def handle(self, event: Event) -> None: ...

    def flush(self) -> None:
        """Make everything handled so far durable (called before a checkpoint is written)."""
        ...

    def close(self) -> None: ...
