"""The dashboard: one screen of panes over a run's history, and keys that steer the run.

Live (``lgcn-tui train``): the run trains in a Textual thread worker and appends its events
to a buffer that the UI drains into a ``History`` on its timer; keys put commands on its queue. Watch (``lgcn-tui watch RUN_DIR``): a
thread worker follows the run's ``metrics.jsonl`` into the same history; keys append
commands to the run's control file, and quitting detaches without touching the run.

Either way the UI never hears from the training thread per step: a timer checks the
history a few times a second. Events worth seeing at once (a state change, an LR change, a
checkpoint, an evaluation) are drawn on the next tick; new steps alone redraw the text at
most once a second and the charts every two, which keeps the UI thread at a few percent of
a core (see benchmarks/bench_dashboard.py).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import Footer
from textual.worker import Worker, WorkerState, get_current_worker

from .. import rundir
from ..contract import commands as cmd
from ..contract import events as ev
from ..contract.control_file import CONTROL_FILE
from ..contract.state import FINISHED, RunState
from ..errors import UserError
from ..run import catalog
from ..run.lifecycle import Run
from ..rundir import RunDir
from ..sinks.history import History, Snapshot, load
from .components.charts import Chart, GradChart, LossChart, LrChart
from .components.dialogs import CLEAR, LrDialog, QuitDialog, RunPicker
from .components.embeddings import EmbeddingPane
from .components.evals import EvalPane
from .components.eventlog import EventLog
from .components.gpu import GpuLine
from .components.header import RunHeader
from .components.help import HelpScreen
from .components.progress import ProgressLine
from .overlay import Overlay, read_overlay
from .sources import LiveSource, Source, WatchSource

TICK_HZ = 4.0
STEP_INTERVAL = 1.0
CHART_INTERVAL = 2.0
SWITCH_INTERVAL = 0.0005
CLEAN_OUTCOMES = ("done", "stopped", "detached")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Dashboard(App[int]):
    """The same screen for live training and for watching; ``source`` decides which."""

    CSS_PATH = "app.tcss"
    TITLE = "lgcn-tui"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [
        Binding("p", "pause", "pause", id="pause", tooltip="pause or resume; the step in flight finishes first"),
        Binding("c", "checkpoint", "ckpt", id="checkpoint", tooltip="save a checkpoint now; the log shows its path"),
        Binding("l", "set_lr('item')", "item lr", id="item-lr", tooltip="set the item learning rate"),
        Binding("u", "set_lr('user')", "user lr", id="user-lr", tooltip="set the user learning rate"),
        Binding("left_square_bracket", "scale_lr(0.5)", "lr/2", key_display="[", id="halve-item-lr",
                tooltip="halve the item learning rate"),
        Binding("right_square_bracket", "scale_lr(2.0)", "lr×2", key_display="]", id="double-item-lr",
                tooltip="double the item learning rate"),
        Binding("e", "evaluate", "eval", id="evaluate", tooltip="evaluate now on valid and test"),
        Binding("r", "toggle_raw", "raw", id="raw-loss", tooltip="show or hide the raw loss under the smoothed one"),
        Binding("o", "overlay", "overlay", id="overlay", show=False,
                tooltip="overlay another run's loss and R@20 (picked from the runs beside this one)"),
        Binding("question_mark", "help", "help", key_display="?", id="help", tooltip="this screen"),
        Binding("q", "quit", "quit", id="quit",
                tooltip="quit: live, asks about a checkpoint and stops the trainer; watch, detaches"),
        Binding("ctrl+c", "interrupt", "quit", show=False, priority=True, key_display="ctrl+c", id="interrupt",
                tooltip="as q; a second ctrl+c saves a checkpoint and quits"),
    ]

    def __init__(self, source: Source, history: History, *, tick_hz: float = TICK_HZ) -> None:
        super().__init__()
        self.source, self.history = source, history
        self.control = source.control
        self.tick_hz = tick_hz
        self.quitting = False
        self.worker: Worker[str] | None = None
        self.outcome: str | None = None
        self.failure: BaseException | None = None
        self._drawn = self._charted = self._events_seen = -1
        self._drawn_at = self._charted_at = 0.0
        self._charted_schedule: object = None
        self._switch_interval = sys.getswitchinterval()

    @property
    def watching(self) -> bool:
        return not self.control.live

    # ----- layout and refresh ---------------------------------------------------------
    def compose(self) -> ComposeResult:
        """Panes are kept as attributes: a dialog may be the active screen when they must redraw."""
        self.header = RunHeader(id="header")
        self.loss = LossChart(id="loss")
        self.charts: list[Chart] = [self.loss, GradChart(id="grad"), LrChart(id="lr")]
        progress = ProgressLine(id="progress")
        gpu = GpuLine(id="gpu")
        self.evals = EvalPane(id="evals")
        panes = [self.evals, EventLog(id="log"), EmbeddingPane(id="embeddings")]
        self.redraws: list[Callable[[Snapshot], None]] = [pane.show for pane in (*panes, progress, gpu)]
        yield self.header
        yield progress
        yield gpu
        with Grid(id="panes"):
            yield from self.charts
            yield from panes
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        """Start the worker and the refresh timer.

        The switch interval drops from 5 ms to 0.5 ms while the dashboard is open: the
        training thread hands the GIL back and forth around every torch call, and each
        hand-off would otherwise wait up to 5 ms behind a redraw.
        """
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.worker = self._work()
        self.set_interval(1 / self.tick_hz, self.refresh_panes)
        self.call_after_refresh(self.refresh_panes, True)
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self.stop_on_signal, signum)

    def stop_on_signal(self, signum: int) -> None:
        """SIGTERM or SIGHUP (an SSH session that dropped): a live run stops after the step in flight
        with a checkpoint, then the app exits and restores the terminal; watching just detaches."""
        self.history.handle(ev.Message(level="warning", text=f"{signal.Signals(signum).name}: stopping "
                                                             "after this step and saving a checkpoint"))
        if self.watching or self.worker is None or self.worker.is_finished:
            self.exit(self.exit_code, return_code=self.exit_code)
            return
        if not self.quitting:
            self.quitting = True
            self.control.send(cmd.Stop(save=True, source=signal.Signals(signum).name))

    def on_resize(self) -> None:
        """Panes that skip unchanged data must still redraw for a new size, once it is laid out."""
        self.call_after_refresh(self.refresh_panes, True)

    @work(thread=True, exclusive=True, exit_on_error=False, name="source")
    def _work(self) -> str:
        return self.source.work(self.history, get_current_worker().cancelled_event)

    def refresh_panes(self, force: bool = False) -> None:
        """Redraw what is due from a fresh snapshot; most ticks of a busy run do nothing.

        Charts, the costliest panes to draw, follow new steps at most once per
        ``CHART_INTERVAL``, but a changed learning rate shows in the LR pane at once.
        """
        self.source.pull(self.history)
        version, events, now = self.history.version, self.history.events, time.monotonic()
        steps_due = version != self._drawn and now - self._drawn_at >= STEP_INTERVAL
        charts_due = version != self._charted and now - self._charted_at >= CHART_INTERVAL
        if not (force or steps_due or charts_due or events != self._events_seen):
            return
        snap = self.history.snapshot()
        if force or charts_due or snap.schedule != self._charted_schedule:
            for chart in self.charts:
                chart.show(snap)
            self._charted, self._charted_at, self._charted_schedule = snap.version, now, snap.schedule
        self._drawn, self._drawn_at, self._events_seen = snap.version, now, events
        for redraw in self.redraws:
            redraw(snap)
        self.header.show(snap, fallback_name=self.source.run_dir.name, watching=self.watching,
                         state=self._state(snap))

    def _state(self, snap: Snapshot) -> str:
        if self.quitting and snap.state not in FINISHED:
            return "stopping"
        return "error" if self.outcome == "error" else snap.state

    # ----- the worker ---------------------------------------------------------------
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self.worker or not event.worker.is_finished:
            return
        if event.state == WorkerState.SUCCESS:
            self.outcome = event.worker.result
        else:
            self.outcome = "error"
            self.failure = event.worker.error
            if self.history.snapshot().error is None:
                self.history.handle(ev.Message(level="error", text=f"{type(self.failure).__name__}: {self.failure}"))
        self.refresh_panes(force=True)
        if self.quitting:
            self.exit(self.exit_code, return_code=self.exit_code)

    @property
    def exit_code(self) -> int:
        """0 for a run that finished, was stopped, or was only watched; 1 when it failed."""
        if self.watching:
            return 1 if self.outcome == "error" else 0
        return 0 if self.outcome in CLEAN_OUTCOMES else 1

    def on_unmount(self) -> None:
        """Whatever ended the app, a live trainer must stop, or its thread would keep the process alive."""
        sys.setswitchinterval(self._switch_interval)
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        if self.control.live and self.worker is not None and not self.worker.is_finished:
            self.control.send(cmd.Stop(save=True, source="the dashboard closing"))

    # ----- commands -----------------------------------------------------------------
    def _can_send(self, what: str) -> bool:
        if self.quitting:
            self.notify(f"stopping the run; cannot {what} now", severity="warning")
            return False
        state = self.history.state
        if state in FINISHED or (self.control.live and self.worker and self.worker.is_finished):
            self.notify(f"the run is {state}: nothing to {what}", severity="warning")
            return False
        return True

    def _by(self, key: str) -> str:
        """Who asked, for the run's log: the key, and whether it was pressed in ``watch``."""
        return f"key {key} in watch" if self.watching else f"key {key}"

    def _send(self, command: cmd.Command, what: str) -> None:
        if not self._can_send(what):
            return
        self.control.send(command)
        if self.watching:
            # In the log, not a toast: a toast would sit over the embeddings pane at 80×24.
            self.history.handle(ev.Message(level="info", text=f"sent {what} to the run's {CONTROL_FILE} file"))
            self.refresh_panes(force=True)

    def action_pause(self) -> None:
        if self.history.state == RunState.PAUSED:
            self._send(cmd.Resume(source=self._by("p")), "resume")
        else:
            self._send(cmd.Pause(source=self._by("p")), "pause")

    def action_checkpoint(self) -> None:
        self._send(cmd.SaveCheckpoint(source=self._by("c")), "save a checkpoint")

    def action_evaluate(self) -> None:
        self._send(cmd.Evaluate(source=self._by("e")), "evaluate")

    def current_lr(self, group: str) -> float | None:
        """The group's rate now; before the item group starts, the rate it will start from."""
        snap = self.history.snapshot()
        if snap.schedule is None:
            return None
        now = snap.lr_now.get(group, 0.0)
        return now if now > 0 else snap.schedule.starting_rate(group)

    def action_set_lr(self, group: str) -> None:
        if not self._can_send(f"set the {group} learning rate"):
            return
        current = self.current_lr(group)
        if current is None:
            self.notify("the run has not started yet; try again in a moment", severity="warning")
            return

        def apply(value: float | None) -> None:
            if value is not None:
                self._send(cmd.SetLr(group, value, source=self._by("l" if group == "item" else "u")),
                           f"{group} lr {value:.4g}")

        self.push_screen(LrDialog(group, current), apply)

    def action_scale_lr(self, factor: float) -> None:
        current = self.current_lr("item")
        if current is None:
            self.notify("the run has not started yet; try again in a moment", severity="warning")
            return
        try:
            command = cmd.SetLr("item", current * factor, source=self._by("[" if factor < 1 else "]"))
        except UserError as exc:
            self.notify(f"item lr {current:.4g} × {factor:g} refused: {exc}", severity="error")
            return
        self._send(command, f"item lr {current * factor:.4g}")

    def action_toggle_raw(self) -> None:
        self.loss.raw = not self.loss.raw
        self.refresh_panes(force=True)

    @work(thread=True, exclusive=True, group="overlay")
    def action_overlay(self) -> None:
        """Listing the runs reads each one's metrics file (a second a GB): off the UI thread."""
        folder = self.source.run_dir.parent
        others = [s for s in catalog.list_runs(folder) if s.path.resolve() != self.source.run_dir.resolve()]
        self.call_from_thread(self._offer_overlays, folder, others)

    def _offer_overlays(self, folder: Path, others: list[catalog.RunSummary]) -> None:
        if not others and self.loss.overlay is None:
            self.notify(f"no other run in {folder} to overlay", severity="warning")
            return
        lines = [(str(s.path), f"{s.name}  {s.state}  best R@20 "
                  + (f"{s.record.best_recall:.4f}" if s.record.best_recall is not None else "-")) for s in others]

        def picked(path: str | None) -> None:
            if path == CLEAR:
                self._show_overlay(None)
            elif path is not None:
                self._load_overlay(Path(path), catalog.label(Path(path), folder))

        self.push_screen(RunPicker(lines, clearable=self.loss.overlay is not None), picked)

    @work(thread=True, exclusive=True, group="overlay")
    def _load_overlay(self, path: Path, name: str) -> None:
        """A long run's file takes a moment to read: off the UI thread."""
        self.call_from_thread(self._show_overlay, read_overlay(path, name))

    def _show_overlay(self, overlay: Overlay | None) -> None:
        self.loss.overlay = self.evals.overlay = overlay
        self.refresh_panes(force=True)

    def action_help(self) -> None:
        keys = [(self.get_key_display(b), b.tooltip or b.description) for b in self.BINDINGS if isinstance(b, Binding)]
        self.push_screen(HelpScreen(keys, self.watching))

    # ----- quitting -----------------------------------------------------------------
    async def action_quit(self) -> None:
        """Watch detaches at once; live asks about a checkpoint, stops the trainer, then exits."""
        if self.quitting:
            self.notify("waiting for the trainer to finish its step and stop…")
            return
        if isinstance(self.screen, QuitDialog):
            return
        if self.watching or self.worker is None or self.worker.is_finished:
            self.exit(self.exit_code, return_code=self.exit_code)
            return
        self.push_screen(QuitDialog(), self._quit_answered)

    async def action_interrupt(self) -> None:
        """Ctrl-C asks as q does, since a terminal user expects it to stop the run, not to be told
        about ctrl+q; a second Ctrl-C while the question is open answers it: save and quit."""
        if isinstance(self.screen, QuitDialog):
            self.screen.dismiss(True)
            return
        await self.action_quit()

    def _quit_answered(self, save: bool | None) -> None:
        if save is None:
            return
        self.quitting = True
        self.control.send(cmd.Stop(save=save, source=self._by("q")))
        self.refresh_panes(force=True)
        if self.worker is None or self.worker.is_finished:
            self.exit(self.exit_code, return_code=self.exit_code)


def live_app(run: Run, *, tick_hz: float = TICK_HZ) -> Dashboard:
    """Set the run up first, so a config or data error is raised before any screen opens."""
    source = LiveSource(run)
    run.sinks.append(source.buffer)
    run.interactive = True
    run.setup()
    history = History()
    if run.resumed:
        assert run.run_dir is not None
        load(run.run_dir.metrics, history)
    return Dashboard(source, history, tick_hz=tick_hz)


def watch_app(run: RunDir, *, tick_hz: float = TICK_HZ, interval: float = 0.25) -> Dashboard:
    return Dashboard(WatchSource(run, interval), History(), tick_hz=tick_hz)


def farewell(app: Dashboard, console: Console) -> None:
    """After the screen is restored: how the run ended and where it is, plus the traceback of a failure."""
    snap = app.history.snapshot()
    if app.failure is not None:
        console.print("".join(traceback.format_exception(app.failure)), markup=False, highlight=False)
    if snap.error:
        console.print(f"[bold red]error:[/] {escape(snap.error)}", highlight=False)
    state = "detached from" if app.watching else f"{snap.state} at step {snap.step};"
    console.print(f"{state} run directory: {escape(str(app.source.run_dir))}", highlight=False)
    if snap.checkpoint:
        console.print(f"last checkpoint: {escape(snap.checkpoint)}", highlight=False)
    state = catalog.summarise(app.source.run_dir, app.source.run_dir.name).state if app.watching else snap.state
    if state in ("stopped", "error", "interrupted") or (not app.watching and state != RunState.DONE):
        console.print(f"resume with: lgcn-tui train --resume {escape(str(app.source.run_dir))}", highlight=False)


def run_dashboard(run: Run) -> int:
    """``lgcn-tui train`` without ``--no-ui``; returns the process exit code."""
    app = live_app(run)
    app.run(mouse=False)
    app.source.pull(app.history)
    farewell(app, Console())
    return app.return_code or 0


def run_watch(run_dir: Path) -> int:
    """``lgcn-tui watch RUN_DIR``; raises ``UserError`` for a folder that is not a run directory."""
    app = watch_app(rundir.open_run(run_dir))
    app.run(mouse=False)
    farewell(app, Console())
    return app.return_code or 0
