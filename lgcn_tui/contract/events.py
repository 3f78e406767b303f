"""Typed events a run publishes; every sink (console, JSONL, dashboard) reads these.

Each event serialises to one flat JSON object with an ``event`` key, which is exactly one
line of ``metrics.jsonl``; ``event_from_dict`` turns such a line back into the event, so a
dashboard can be rebuilt from a run directory alone.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol, TypeVar

from typing_extensions import dataclass_transform

from .schedule import LrSchedule
from .state import RunState


@dataclass
class Event:
    kind: ClassVar[str] = "event"
    t: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, **dataclasses.asdict(self)}


EVENT_TYPES: dict[str, type[Event]] = {}
E = TypeVar("E", bound=type[Event])


@dataclass_transform(kw_only_default=False)
def event(kind: str) -> Callable[[E], E]:
    """Make a class an event named ``kind`` in ``metrics.jsonl``: a dataclass, registered so
    ``event_from_dict`` can read its lines back. A kind is never reused (old files name it)."""

    def register(cls: E) -> E:
        if kind in EVENT_TYPES:
            raise ValueError(f"event kind {kind!r} is taken by {EVENT_TYPES[kind].__name__}")
        cls.kind = kind
        EVENT_TYPES[kind] = dataclass(cls)
        return cls

    return register


@dataclass
class Progress(Event):
    """An event that happened at a point of the run: ``step`` is global (0-based), counting across epochs."""

    epoch: int
    step: int


@event("run_started")
class RunStarted(Event):
    """The first event of a run and of each resume: what it trains on, where, and its LR plan."""

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


@event("step")
class StepMetrics(Progress):
    """One optimiser step. ``loss`` is the sum of the objective's ``terms``, each under its own
    name (``bpr``, ``reg``, ...: see ``objective``)."""

    loss: float
    grad_user: float
    grad_item: float
    lr_user: float
    lr_item: float
    alpha: float | None
    terms: dict[str, float] = field(default_factory=dict)


@event("epoch_end")
class EpochEnd(Progress):
    """``seconds`` spent in the epoch's steps (evaluation and checkpoints not included)."""

    mean_loss: float
    seconds: float


@event("eval")
class EvalResult(Progress):
    """Metrics of one split, keyed like ``recall@20``; ``model`` is ``lightgcn`` or a baseline,
    ``popularity`` or ``text`` (a user = the mean text vector of their items, scored by cosine).

    ``best``: this result improved ``eval.best_metric`` and so chose ``best.pt``; only the split
    that metric names carries it (older files mark every split at that step).
    """

    split: str
    metrics: dict[str, float]
    model: str = "lightgcn"
    best: bool = False
    seconds: float = 0.0


@event("diagnostics")
class Diagnostics(Progress):
    """Retention is the mean cosine of each item vector to its pretrained start vector (None
    when items did not start from pretrained vectors: there is nothing to retain).

    ``sim_edges`` has one more entry than ``sim_counts``: a histogram of item–item cosine
    on a fixed sample of pairs.
    """

    retention: float | None
    retention_p10: float | None
    sim_edges: list[float]
    sim_counts: list[int]


@event("gpu")
class GpuSample(Progress):
    """The run's GPU at a publish point, at most once a second (``run.telemetry``).

    ``allocated`` and ``peak_allocated``: bytes in PyTorch's allocator now and at most since
    the run started. From NVML, None without the ``gpu`` extra or where the device does not
    report them: ``utilization`` (% of time a kernel ran), ``memory_used`` and
    ``memory_total`` (bytes, every process and the CUDA context included), ``power_w`` and
    ``temperature_c``.
    """

    allocated: int
    peak_allocated: int
    utilization: float | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    power_w: float | None = None
    temperature_c: float | None = None


@event("checkpoint")
class CheckpointSaved(Progress):
    """``reason``: epoch, interval, best, manual, stop, nan or error (see ``run.checkpoints``)."""

    path: str
    reason: str


@event("state")
class StateChanged(Progress):
    """The run entered ``state``; viewers show the state of the last such event."""

    state: RunState


@event("lr_changed")
class LrChanged(Event):
    """``schedule`` is the plan from this step on (None in files written before it was carried)."""

    group: str
    lr: float
    step: int
    source: str
    schedule: LrSchedule | None = None


@event("command")
class CommandReceived(Event):
    """A command the run took, in its JSON form (``args``), and where it came from."""

    command: str
    args: dict[str, Any]
    source: str


@event("message")
class Message(Event):
    """A line for the event log; ``level`` is info, warning or error."""

    level: str
    text: str
    checkpoint: str | None = None


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
