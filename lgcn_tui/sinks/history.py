"""The run's history as the dashboard needs it: a bounded, thread-safe store of events.

The live dashboard registers a ``History`` as a trainer sink, so ``handle`` runs on the
training thread for every event and must stay cheap: a lock and a few appends. The UI
pulls an immutable ``Snapshot`` a few times a second instead of being called per step.
``lgcn-tui watch`` fills the same store from ``metrics.jsonl`` with a ``JsonlFollower``.

Memory stays bounded however long the run: per-step values live in at most ``capacity``
buckets; when they fill, neighbouring buckets merge and each then spans twice as many
steps, so the whole run stays on the chart at a resolution finer than any pane can show.
Nothing here imports Textual, so tests and benchmarks use it directly.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..tail import LineTail
from ..contract import events as ev
from ..contract.schedule import GROUPS, LrSchedule
from ..contract.state import RunState

STEP_FIELDS = ("step", "loss", "loss_ema", "grad_user", "grad_item", "lr_user", "lr_item", "alpha")


@dataclass(frozen=True)
class LogLine:
    """One line of the event log; ``kind`` is the event kind, so the UI can colour by it."""

    t: float
    level: str
    kind: str
    text: str


@dataclass(frozen=True)
class StepSeries:
    """Per-bucket values, one array per field of ``STEP_FIELDS``.

    ``step`` is the last step of each bucket; ``loss`` is the bucket mean and ``loss_ema``
    the smoothed loss at its end; grad norms are the bucket maximum so a spike that was
    clipped stays visible after merging; learning rates and α are the bucket's last value.
    ``alpha`` is NaN in item modes that have none.
    """

    step: np.ndarray
    loss: np.ndarray
    loss_ema: np.ndarray
    grad_user: np.ndarray
    grad_item: np.ndarray
    lr_user: np.ndarray
    lr_item: np.ndarray
    alpha: np.ndarray
    stride: int

    def __len__(self) -> int:
        return len(self.step)


@dataclass(frozen=True)
class Snapshot:
    """Everything the dashboard draws, copied out under the lock; safe to read on any thread."""

    version: int
    run: ev.RunStarted | None
    state: str
    epoch: int
    step: int
    steps: StepSeries
    last: ev.StepMetrics | None
    lr_now: dict[str, float]
    schedule: LrSchedule | None
    rate: float | None
    evals: tuple[ev.EvalResult, ...]
    baseline: dict[str, dict[str, float]]
    diagnostics: ev.Diagnostics | None
    retention: tuple[tuple[int, float], ...]
    log: tuple[LogLine, ...]
    log_total: int
    checkpoint: str | None
    error: str | None
    error_checkpoint: str | None
    eval_seconds_per_epoch: float | None
    gpu: ev.GpuSample | None

    @property
    def total_steps(self) -> int:
        return self.run.epochs * self.run.steps_per_epoch if self.run else 0

    @property
    def finished(self) -> bool:
        return self.state in (RunState.DONE, RunState.STOPPED, RunState.ERROR)

    def eta(self) -> tuple[float | None, float | None]:
        """Seconds left in the epoch and in the run at the current rate; None when unknown.

        The run's estimate adds the evaluation time per epoch seen so far, because on
        large datasets full-ranking evaluation is a sizeable part of each epoch.
        """
        if self.run is None or not self.rate or self.state != "running":
            return None, None
        spe = self.run.steps_per_epoch
        in_epoch = self.step - self.epoch * spe
        epoch_left = max(spe - in_epoch, 0) / self.rate
        run_left = max(self.total_steps - self.step, 0) / self.rate
        if self.eval_seconds_per_epoch:
            run_left += max(self.run.epochs - self.epoch, 0) * self.eval_seconds_per_epoch
        return epoch_left, run_left


def _metric_text(metrics: dict[str, float]) -> str:
    shown = [k for k in ("recall@20", "ndcg@20") if k in metrics] or sorted(metrics)[:2]
    return "  ".join(f"{k} {metrics[k]:.4f}" for k in shown if metrics[k] is not None)


def _asked(event: ev.CommandReceived) -> str:
    """"paused by key p", "item lr 0.0005 asked by lgcn-tui send": what was asked, by whom."""
    args = event.args
    what = {"pause": "paused", "resume": "resumed", "checkpoint": "checkpoint asked", "evaluate": "evaluation asked",
            "stop": "stop asked" + ("" if args.get("save", True) else " (no checkpoint)"),
            "set_lr": f"{args.get('group')} lr {args.get('lr', 0):.3g} asked"}.get(event.command, event.command)
    return f"{what} by {event.source}" if event.source else what


def describe(event: ev.Event) -> LogLine | None:
    """The event-log line for an event, or None for events that only feed the panes."""
    text: str | None = None
    level = "info"
    if isinstance(event, ev.RunStarted):
        text = f"{'resumed' if event.resumed else 'started'} {Path(event.run_dir).name} at step {event.start_step}"
    elif isinstance(event, ev.CheckpointSaved):
        text = f"checkpoint ({event.reason}) {event.path}"
    elif isinstance(event, ev.LrChanged):
        why = " (rollback after divergence)" if event.source == "rollback" else ""
        text = f"{event.group} lr set to {event.lr:.3g} at step {event.step}{why}"
    elif isinstance(event, ev.EvalResult):
        tag = event.model if event.model != "lightgcn" else f"eval ep {event.epoch}"
        text = f"{tag} {event.split} {_metric_text(event.metrics)}{'  best' if event.best else ''}"
    elif isinstance(event, ev.StateChanged) and event.state != "running":
        text = f"{event.state} at step {event.step}"
        level = "error" if event.state == "error" else "info"
    elif isinstance(event, ev.CommandReceived):
        text = _asked(event)
    elif isinstance(event, ev.EpochEnd):
        text = f"epoch {event.epoch + 1} done: mean loss {event.mean_loss:.4f} in {event.seconds:.1f} s"
    elif isinstance(event, ev.Message):
        text, level = event.text, event.level
    if text is None:
        return None
    return LogLine(t=event.t, level=level, kind=event.kind, text=text)


class _Buckets:
    """Per-step values in at most ``capacity`` buckets that merge pairwise when full."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity - capacity % 2, 2)
        self.stride = 1
        self.cols: dict[str, list[float]] = {name: [] for name in STEP_FIELDS}
        self.counts: list[int] = []
        self.open: dict[str, float] | None = None
        self.open_count = 0

    def add(self, row: dict[str, float]) -> None:
        if self.open is None:
            self.open, self.open_count = dict(row), 1
        else:
            self.open = self._merge(self.open, self.open_count, row, 1)
            self.open_count += 1
        if self.open_count >= self.stride:
            for name in STEP_FIELDS:
                self.cols[name].append(self.open[name])
            self.counts.append(self.open_count)
            self.open, self.open_count = None, 0
            if len(self.counts) >= self.capacity:
                self._halve()

    @staticmethod
    def _merge(a: dict[str, float], na: int, b: dict[str, float], nb: int) -> dict[str, float]:
        out = dict(b)
        out["loss"] = (a["loss"] * na + b["loss"] * nb) / (na + nb)
        out["grad_user"] = max(a["grad_user"], b["grad_user"])
        out["grad_item"] = max(a["grad_item"], b["grad_item"])
        return out

    def _halve(self) -> None:
        rows = [{name: self.cols[name][i] for name in STEP_FIELDS} for i in range(len(self.counts))]
        merged_rows, merged_counts = [], []
        for i in range(0, len(rows) - 1, 2):
            merged_rows.append(self._merge(rows[i], self.counts[i], rows[i + 1], self.counts[i + 1]))
            merged_counts.append(self.counts[i] + self.counts[i + 1])
        if len(rows) % 2:
            merged_rows.append(rows[-1])
            merged_counts.append(self.counts[-1])
        self.cols = {name: [r[name] for r in merged_rows] for name in STEP_FIELDS}
        self.counts = merged_counts
        self.stride *= 2

    def series(self) -> StepSeries:
        cols = {name: list(values) for name, values in self.cols.items()}
        if self.open is not None:
            for name in STEP_FIELDS:
                cols[name].append(self.open[name])
        arrays = {name: np.asarray(values, dtype=float) for name, values in cols.items()}
        return StepSeries(**arrays, stride=self.stride)


def _num(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass
class _State:
    run: ev.RunStarted | None = None
    state: str = "starting"
    epoch: int = 0
    step: int = 0
    last: ev.StepMetrics | None = None
    lr_now: dict[str, float] = field(default_factory=dict)
    schedule: LrSchedule | None = None
    ema: float = 0.0
    ema_weight: float = 0.0
    checkpoint: str | None = None
    error: str | None = None
    error_checkpoint: str | None = None
    eval_seconds: float = 0.0
    epochs_done: int = 0
    baseline: dict[str, dict[str, float]] = field(default_factory=dict)
    diagnostics: ev.Diagnostics | None = None
    log_total: int = 0
    last_rate: float | None = None
    gpu: ev.GpuSample | None = None


class History:
    """Bounded, thread-safe run history; a trainer sink and the dashboard's only data source.

    ``smoothing`` is the EMA factor of the smoothed loss (debiased, so early steps are not
    pulled towards zero); ``rate_window`` the number of recent steps that give steps/s.
    """

    def __init__(self, capacity: int = 2048, log_lines: int = 1000, smoothing: float = 0.98,
                 rate_window: int = 50, max_evals: int = 5000) -> None:
        self.capacity, self.log_lines, self.smoothing = capacity, log_lines, smoothing
        self.rate_window, self.max_evals = rate_window, max_evals
        self._lock = threading.Lock()
        self._version = self._events = 0
        self._reset_locked()

    def _reset_locked(self) -> None:
        self._s = _State()
        self._buckets = _Buckets(self.capacity)
        self._times: deque[tuple[float, int]] = deque(maxlen=self.rate_window)
        self._evals: deque[ev.EvalResult] = deque(maxlen=self.max_evals)
        self._retention: deque[tuple[int, float]] = deque(maxlen=self.max_evals)
        self._log: deque[LogLine] = deque(maxlen=self.log_lines)

    def reset(self) -> None:
        """Forget everything, e.g. when the followed file was truncated by a resume."""
        with self._lock:
            self._reset_locked()
            self._version += 1
            self._events += 1

    @property
    def version(self) -> int:
        """Changes whenever anything was handled, so a viewer can skip redrawing an idle run."""
        return self._version

    @property
    def events(self) -> int:
        """Changes with every event that is not a step (state, LR change, checkpoint, evaluation…):
        what a viewer should show at once, while steps alone can wait for its next redraw."""
        return self._events

    @property
    def state(self) -> str:
        return self._s.state

    # ----- Sink protocol --------------------------------------------------------------
    def handle(self, event: ev.Event) -> None:
        with self._lock:
            if isinstance(event, ev.StepMetrics):
                self._on_step(event)
            else:
                self._on_event(event)
                self._events += 1
            self._version += 1

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    # ----- event handling (lock held) ---------------------------------------------------
    def _on_step(self, e: ev.StepMetrics) -> None:
        s = self._s
        loss = _num(e.loss)
        if math.isfinite(loss):
            s.ema = self.smoothing * s.ema + (1 - self.smoothing) * loss
            s.ema_weight = self.smoothing * s.ema_weight + (1 - self.smoothing)
        ema = s.ema / s.ema_weight if s.ema_weight else loss
        self._buckets.add({"step": float(e.step), "loss": loss, "loss_ema": ema,
                           "grad_user": _num(e.grad_user), "grad_item": _num(e.grad_item),
                           "lr_user": _num(e.lr_user), "lr_item": _num(e.lr_item), "alpha": _num(e.alpha)})
        s.last, s.epoch, s.step = e, e.epoch, e.step + 1
        s.lr_now = {"user": _num(e.lr_user), "item": _num(e.lr_item)}
        self._times.append((e.t, e.step))

    def _on_event(self, event: ev.Event) -> None:
        s = self._s
        line = describe(event)
        if line is not None:
            self._log.append(line)
            s.log_total += 1
        if isinstance(event, ev.RunStarted):
            s.run, s.step, s.state = event, event.start_step, "starting"
            s.epoch = event.start_step // max(event.steps_per_epoch, 1)
            s.schedule = event.schedule
            s.lr_now = {g: event.schedule.lr(g, event.start_step) for g in GROUPS}
            s.error = s.error_checkpoint = None
            s.last_rate = None
            self._times.clear()
        elif isinstance(event, ev.StateChanged):
            s.state = event.state
            s.last_rate = self._rate()
            self._times.clear()
        elif isinstance(event, ev.LrChanged):
            s.lr_now[event.group] = event.lr
            if event.schedule is not None:
                s.schedule = event.schedule
            elif s.schedule is not None:
                s.schedule = s.schedule.with_rate(event.group, event.lr, event.step)
        elif isinstance(event, ev.EvalResult):
            if event.model == "popularity":
                s.baseline[event.split] = dict(event.metrics)
            elif event.model == "lightgcn":
                self._evals.append(event)
                s.eval_seconds += event.seconds
        elif isinstance(event, ev.Diagnostics):
            s.diagnostics = event
            if event.retention is not None:
                self._retention.append((event.step, event.retention))
        elif isinstance(event, ev.CheckpointSaved):
            s.checkpoint = event.path
        elif isinstance(event, ev.GpuSample):
            s.gpu = event
        elif isinstance(event, ev.EpochEnd):
            s.epochs_done += 1
            s.epoch = event.epoch + 1
        elif isinstance(event, ev.Message) and event.level == "error":
            s.error, s.error_checkpoint = event.text, event.checkpoint or s.checkpoint

    # ----- reading ------------------------------------------------------------------------
    def _rate(self) -> float | None:
        """Steps/s over the recent window; a pause or evaluation starts a new window, and until it
        holds two steps the rate from before stands (a gap is not a slowdown)."""
        if len(self._times) < 2:
            return self._s.last_rate
        (t0, s0), (t1, s1) = self._times[0], self._times[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else self._s.last_rate

    def snapshot(self) -> Snapshot:
        with self._lock:
            s = self._s
            return Snapshot(
                version=self._version, run=s.run, state=s.state, epoch=s.epoch, step=s.step,
                steps=self._buckets.series(), last=s.last, lr_now=dict(s.lr_now), schedule=s.schedule,
                rate=self._rate(), evals=tuple(self._evals), baseline={k: dict(v) for k, v in s.baseline.items()},
                diagnostics=s.diagnostics, retention=tuple(self._retention), log=tuple(self._log),
                log_total=s.log_total, checkpoint=s.checkpoint, error=s.error, error_checkpoint=s.error_checkpoint,
                eval_seconds_per_epoch=s.eval_seconds / s.epochs_done if s.epochs_done else None, gpu=s.gpu,
            )


class JsonlFollower:
    """Feeds a ``History`` from a ``metrics.jsonl`` that another process is still writing.

    Each ``poll`` applies the complete lines appended since the last one (``LineTail``);
    when the file was cut back by a resume, the history starts over with it.
    """

    def __init__(self, path: Path, history: History, max_bytes: int = 8 << 20) -> None:
        self.path, self.history = path, history
        self.lines = LineTail(path, max_bytes=max_bytes)
        self.skipped = 0

    def poll(self) -> int:
        """Apply what was appended since the last call; returns the number of complete lines read."""
        lines, restarted = self.lines.read()
        if restarted:
            self.history.reset()
        for raw in lines:
            event = self._parse(raw)
            if event is not None:
                self.history.handle(event)
        return len(lines)

    def _parse(self, raw: bytes) -> ev.Event | None:
        """A malformed or unknown line becomes a warning in the log: one bad line must not blind the watcher."""
        if not raw.strip():
            return None
        try:
            return ev.event_from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            self.skipped += 1
            return ev.Message(level="warning", text=f"{self.path}: skipped line {raw[:60]!r} ({exc!r})")


def follow(path: Path, history: History, stop: threading.Event, interval: float = 0.25) -> None:
    """Poll ``path`` into ``history`` until ``stop`` is set; a large backlog is read without pausing."""
    follower = JsonlFollower(path, history)
    while not stop.is_set():
        if follower.poll() == 0:
            stop.wait(interval)


def load(path: Path, history: History) -> int:
    """Read a whole metrics file into ``history`` (e.g. before resuming a run in the dashboard)."""
    follower = JsonlFollower(path, history)
    total = 0
    while (n := follower.poll()) > 0:
        total += n
    return total
