"""The headless console: a Rich progress bar for the run and the epoch, and a line per event worth reading."""

from __future__ import annotations

import time
from datetime import timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from ..contract import events as ev

LOUD_CHECKPOINTS = {"manual", "stop", "diverged", "best"}


def format_metrics(metrics: dict[str, float], keys: tuple[str, ...] = ("recall@20", "ndcg@20")) -> str:
    shown = [k for k in keys if k in metrics] or sorted(metrics)[:2]
    return "  ".join(f"{k} {metrics[k]:.4f}" for k in shown)


class TrainingTimeColumn(ProgressColumn):
    """Elapsed time less the time the run was paused: how long it has trained, not how long ago it began.

    The sink keeps ``paused`` (seconds held so far) and ``paused_since`` (a ``time.monotonic``
    instant, or None) in the task's fields.
    """

    def render(self, task: Task) -> Text:
        since = task.fields.get("paused_since")
        held = task.fields.get("paused", 0.0) + (time.monotonic() - since if since is not None else 0.0)
        seconds = max((task.elapsed or 0.0) - held, 0.0)
        return Text(str(timedelta(seconds=int(seconds))), style="progress.elapsed")


class ConsoleSink:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TrainingTimeColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.run_task: int | None = None
        self.epoch_task: int | None = None
        self.steps_per_epoch = 1
        self.epochs = 1

    def print(self, text: str) -> None:
        self.progress.console.print(text)

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self._started(event)
        elif isinstance(event, ev.StepMetrics):
            self._step(event)
        elif isinstance(event, ev.EvalResult):
            tag = f"{event.model} baseline" if event.model != "lightgcn" else f"epoch {event.epoch}"
            best = "  [green](best)[/]" if event.best else ""
            self.print(f"{tag:>20}  {event.split:<5} {format_metrics(event.metrics)}{best}")
        elif isinstance(event, ev.Diagnostics) and event.retention is not None:
            self.print(f"{'':>20}  retention {event.retention:.3f} (p10 {event.retention_p10:.3f})")
        elif isinstance(event, ev.CheckpointSaved) and event.reason in LOUD_CHECKPOINTS:
            self.print(f"[cyan]checkpoint ({event.reason})[/] {event.path}")
        elif isinstance(event, ev.StateChanged):
            self._state(event)
        elif isinstance(event, ev.LrChanged):
            self.print(f"[magenta]{event.group} lr set to {event.lr:.3g}[/] at step {event.step}")
        elif isinstance(event, ev.Message):
            style = {"error": "bold red", "warning": "yellow"}.get(event.level, "")
            self.print(f"[{style}]{event.text}[/]" if style else event.text)

    def _started(self, event: ev.RunStarted) -> None:
        d = event.dataset
        verb = "resuming" if event.resumed else "training"
        self.print(f"[bold]{verb}[/] {event.name} in {event.run_dir}\n"
                   f"  data: {d['users']} users, {d['items']} items, {d['train']} train / {d['valid']} valid / "
                   f"{d['test']} test interactions; items: {event.item_mode}; device: {event.device}")
        self.steps_per_epoch, self.epochs = event.steps_per_epoch, event.epochs
        total = event.steps_per_epoch * event.epochs
        self.progress.start()
        self.run_task = self.progress.add_task("run", total=total, completed=event.start_step, info="")
        self.epoch_task = self.progress.add_task("epoch", total=event.steps_per_epoch,
                                                 completed=event.start_step % event.steps_per_epoch, info="")

    def _step(self, event: ev.StepMetrics) -> None:
        if self.run_task is None or self.epoch_task is None:
            return
        done_in_epoch = event.step + 1 - event.epoch * self.steps_per_epoch
        if done_in_epoch == 1:
            self.progress.reset(self.epoch_task, total=self.steps_per_epoch, info="")
        self.progress.update(self.run_task, completed=event.step + 1, info=f"epoch {event.epoch + 1}/{self.epochs}")
        self.progress.update(self.epoch_task, completed=done_in_epoch, info=f"loss {event.loss:.4f}")

    def _state(self, event: ev.StateChanged) -> None:
        if event.state in ("paused", "running"):
            self._hold(event.state == "paused")
        if event.state in ("stopped", "done"):
            self._settle(event)
        if event.state in ("paused", "stopped", "done"):
            self.print(f"[yellow]{event.state}[/] at epoch {event.epoch}, step {event.step}")

    def _task(self, task_id: int) -> Task:
        return next(t for t in self.progress.tasks if t.id == task_id)

    def _hold(self, paused: bool) -> None:
        """Start or end a pause in both bars' training time."""
        now = time.monotonic()
        for task_id in (self.run_task, self.epoch_task):
            if task_id is None:
                continue
            fields = self._task(task_id).fields
            since = fields.get("paused_since")
            if paused and since is None:
                fields["paused_since"] = now
            elif not paused and since is not None:
                fields["paused"] = fields.get("paused", 0.0) + now - since
                fields["paused_since"] = None

    def _settle(self, event: ev.StateChanged) -> None:
        """A run that ends early must not leave "epoch 48/1000 … ETA 0:12:18" on screen: the bars
        end where the run did, full, and say so."""
        if self.run_task is None or self.epoch_task is None:
            return
        done = event.step
        if done < self.steps_per_epoch * self.epochs:
            info = f"{event.state} in epoch {event.epoch + 1} of {self.epochs}"
            self.progress.update(self.run_task, total=max(done, 1), completed=done, info=info)
            epoch_done = self._task(self.epoch_task).completed
            self.progress.update(self.epoch_task, total=max(epoch_done, 1), completed=epoch_done)
        self.progress.stop()

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.progress.stop()
