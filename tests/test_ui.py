"""The dashboard driven through its keys: a real run on a tiny dataset, a fixed run for the
layout snapshot, and a headless run in a subprocess for `watch`.

Every wait is for a state or an event, with a deadline, never a fixed sleep, so a test is as
fast as the machine allows and fails with what it was waiting for. Live runs start paused:
after each key the Pilot waits for the process to go idle, which a training thread never
does, so keys are pressed while the run holds wherever a test can.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import spawn
from rich.console import Console
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widgets import Input, Static
from textual.worker import WorkerState

from lgcn_tui import config as cfgmod
from lgcn_tui import presets, rundir
from lgcn_tui.contract import commands as cmd
from lgcn_tui.contract import control_file
from lgcn_tui.contract import events as ev
from lgcn_tui.contract.schedule import LrSchedule
from lgcn_tui.errors import UserError
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.sinks.jsonl import JsonlSink, read_events
from lgcn_tui.ui.app import Dashboard, farewell, live_app, watch_app
from lgcn_tui.ui.components.charts import LossChart, LrChart
from lgcn_tui.ui.components.dialogs import LrDialog, QuitDialog, RunPicker
from lgcn_tui.ui.components.evals import EvalPane
from lgcn_tui.ui.components.eventlog import EventLog
from lgcn_tui.ui.components.help import HelpScreen

TINY = ["run.device=cpu", "run.epochs=1000", "data.synthetic_users=200", "data.synthetic_items=150",
        "data.synthetic_per_user=10", "data.synthetic_dim=16", "model.dim=16", "model.layers=2",
        "optim.batch_size=64", "eval.every=1000", "eval.sim_pairs=500", "eval.sim_bins=10",
        "checkpoint.keep_last=1"]


def tiny_config(out: Path, *extra: str) -> cfgmod.Config:
    path = presets.find("demo")
    return cfgmod.resolve(cfgmod.load_toml(path), str(path), [*TINY, f"run.out_dir={out}", *extra])


def live(out: Path, *extra: str, paused: bool = True) -> Dashboard:
    """The dashboard on a tiny run; ``paused``: the run holds before its first step."""
    run = Run(tiny_config(out, *extra), preset="demo")
    if paused:
        run.send(cmd.Pause())
    return live_app(run, tick_hz=10)


def drive(app: Dashboard, scenario: Callable[[Pilot], Awaitable[None]], size: tuple[int, int] = (80, 24)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)

    asyncio.run(main())


async def until(pilot: Pilot, predicate: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    """Poll app state (not the screen: ``pilot.pause`` would force a repaint each time)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


def text_of(app: Dashboard, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def item_lr(app: Dashboard) -> float:
    return app.source.run.optimizer.param_groups[1]["lr"]


async def started_and_paused(pilot: Pilot, app: Dashboard) -> None:
    await until(pilot, lambda: app.history.state == "paused", "the paused state")


# ----- live: keys reach the run ----------------------------------------------------------
def test_p_resumes_then_pauses_and_the_run_holds(tmp_path: Path) -> None:
    app = live(tmp_path)
    run = app.source.run
    folder = run.run_dir.checkpoints

    async def scenario(pilot: Pilot) -> None:
        await started_and_paused(pilot, app)
        await pilot.press("p")
        await until(pilot, lambda: run.state.step > 2, "steps after resuming")
        assert app.history.state == "running"
        loss = app.query_one(LossChart)
        await until(pilot, lambda: "bpr " in str(loss.border_title) and "reg " in str(loss.border_title),
                    "the objective's terms in the loss pane's title")
        await pilot.press("p")
        await until(pilot, lambda: app.history.state == "paused", "the paused state")
        await until(pilot, lambda: "paused" in text_of(app, "#header-state"), "the header to say paused")
        held = app.history.snapshot().step
        # A paused run still takes commands: the checkpoint it then saves shows where it holds.
        await pilot.press("c")
        await until(pilot, lambda: list(folder.glob("*-manual.pt")), "a manual checkpoint file")
        assert next(folder.glob("*-manual.pt")).name == f"step-{held:09d}-manual.pt"
        assert run.state.step == held, "the step counter advanced while paused"
        await until(pilot, lambda: {"paused by key p", "resumed by key p", "checkpoint asked by key c"}
                    <= {line.text for line in app.history.snapshot().log}, "the log to say which key asked")

    drive(app, scenario)


def test_a_dashboard_run_obeys_its_control_file_as_a_headless_run_does(tmp_path: Path) -> None:
    app = live(tmp_path, paused=False)

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: app.history.state == "running", "the run to start")
        control_file.send(app.source.run_dir, cmd.Pause(source="lgcn-tui send"))
        await until(pilot, lambda: app.history.state == "paused", "the pause sent through the control file")
        await until(pilot, lambda: "paused by lgcn-tui send" in {line.text for line in app.history.snapshot().log},
                    "the log to say who paused it")
        await pilot.press("q", "n")
        await until(pilot, lambda: app.worker.is_finished, "the worker to finish")

    drive(app, scenario)


def test_c_saves_a_checkpoint_and_logs_its_path(tmp_path: Path) -> None:
    app = live(tmp_path)
    folder = app.source.run.run_dir.checkpoints

    async def scenario(pilot: Pilot) -> None:
        await started_and_paused(pilot, app)  # no epoch checkpoints to push the line out of view
        await pilot.press("c")
        await until(pilot, lambda: list(folder.glob("*-manual.pt")), "a manual checkpoint file")
        path = str(next(folder.glob("*-manual.pt")))
        await until(pilot, lambda: any(path in line for line in app.query_one(EventLog).plain), "the path in the log")

    drive(app, scenario)


def test_l_sets_the_item_lr_and_refuses_invalid_input_with_the_reason(tmp_path: Path) -> None:
    app = live(tmp_path)

    async def scenario(pilot: Pilot) -> None:
        await started_and_paused(pilot, app)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LrDialog), "the LR dialog")
        field = app.screen.query_one(Input)
        assert float(field.value) == pytest.approx(app.current_lr("item"), rel=1e-3), "not prefilled"
        for typed, reason in (("abc", "not a number"), ("-1", "must be positive"), ("5", "outside the sensible range"),
                              ("1e-300", "outside the sensible range")):
            await pilot.press("end", "ctrl+u", *typed, "enter")
            assert isinstance(app.screen, LrDialog), f"{typed!r} was accepted"
            assert reason in text_of(app, "#lr-reason")
        await pilot.press("end", "ctrl+u", *"0.0005", "enter")
        await until(pilot, lambda: not isinstance(app.screen, LrDialog), "the dialog to close")
        await until(pilot, lambda: item_lr(app) == pytest.approx(5e-4), "the optimizer's item LR")
        await until(pilot, lambda: "item 5e-4" in app.query_one(LrChart).border_title, "the LR pane")

    drive(app, scenario)


def test_brackets_halve_and_double_the_item_lr_and_u_sets_the_user_lr(tmp_path: Path) -> None:
    app = live(tmp_path)
    optimizer = app.source.run.optimizer

    async def scenario(pilot: Pilot) -> None:
        await started_and_paused(pilot, app)
        start = app.current_lr("item")
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: item_lr(app) == pytest.approx(2 * start), "a doubled item LR")
        await until(pilot, lambda: app.current_lr("item") == pytest.approx(2 * start), "the history to follow")
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: item_lr(app) == pytest.approx(start), "the item LR halved back")
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, LrDialog), "the LR dialog")
        await pilot.press("end", "ctrl+u", *"0.003", "enter")
        await until(pilot, lambda: optimizer.param_groups[0]["lr"] == pytest.approx(3e-3), "the user LR")

    drive(app, scenario)


def test_e_evaluates_now(tmp_path: Path) -> None:
    app = live(tmp_path)

    async def scenario(pilot: Pilot) -> None:
        await started_and_paused(pilot, app)
        assert not app.history.snapshot().evals
        await pilot.press("e")
        await until(pilot, lambda: len(app.history.snapshot().evals) == 2, "valid and test results")
        await until(pilot, lambda: "eval valid · ep" in app.query_one(EvalPane).border_title, "the eval pane")

    drive(app, scenario)


@pytest.mark.parametrize(("ask", "answer"), [("q", "y"), ("ctrl+c", "ctrl+c")])
def test_q_or_ctrl_c_asks_about_saving_then_stops_the_worker_and_exits(tmp_path: Path, ask: str, answer: str) -> None:
    """A second ctrl+c answers the question: save and quit."""
    app = live(tmp_path)
    folder = app.source.run.run_dir.checkpoints

    async def scenario(pilot: Pilot) -> None:
        await started_and_paused(pilot, app)
        await pilot.press(ask)
        await until(pilot, lambda: isinstance(app.screen, QuitDialog), "the quit question")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, QuitDialog), "the question to close")
        assert not app.worker.is_finished, "escape must keep training"
        await pilot.press(ask)
        await until(pilot, lambda: isinstance(app.screen, QuitDialog), "the quit question again")
        assert not app.worker.is_finished, "asking must not stop the run"
        await pilot.press(answer)
        await until(pilot, lambda: app.worker.is_finished, "the worker to finish")

    drive(app, scenario)
    assert app.worker.state == WorkerState.SUCCESS and app.worker.result == "stopped"
    assert app.return_code == 0
    assert list(folder.glob("*-stop.pt")), "the answer must save a checkpoint before stopping"


def test_q_then_n_stops_without_saving(tmp_path: Path) -> None:
    app = live(tmp_path)
    folder = app.source.run.run_dir.checkpoints

    async def scenario(pilot: Pilot) -> None:
        await started_and_paused(pilot, app)
        await pilot.press("q", "n")
        await until(pilot, lambda: app.worker.is_finished, "the worker to finish")

    drive(app, scenario)
    assert app.return_code == 0 and not list(folder.glob("*-stop.pt"))


def test_a_trainer_error_keeps_the_dashboard_open_and_exits_non_zero(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    app = live(tmp_path, paused=False)
    trainer = app.source.run
    original, calls = trainer._step, itertools.count()

    def failing(*args: object) -> object:
        if next(calls) == 5:
            raise RuntimeError("boom in step 5")
        return original(*args)

    monkeypatch.setattr(trainer, "_step", failing)

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: app.worker.is_finished, "the failure")
        await until(pilot, lambda: "boom in step 5" in text_of(app, "#progress"), "the error on screen")
        assert "error.pt" in text_of(app, "#progress"), "the last checkpoint must be shown"
        assert "error" in text_of(app, "#header-state")
        assert app.is_running
        await pilot.press("q")

    drive(app, scenario)
    assert app.return_code == 1


def test_a_config_error_is_raised_before_the_dashboard_opens_and_writes_nothing(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "runs", "data.valid_into_train=true")
    with pytest.raises(UserError, match="eval.best_metric"):
        live_app(Run(cfg, preset="demo"))
    assert not (tmp_path / "runs").exists(), "a failed start must not leave a run directory"


# ----- a finished run from a fixed metrics file ------------------------------------------
T0 = 1_700_000_000.0
EPOCHS, SPE = 4, 60
SCHEDULE = LrSchedule(user_lr=1e-2, item_lr=3e-3, min_lr=1e-5, warmup_steps=SPE, item_start_step=0,
                      total_steps=EPOCHS * SPE)


def fixture_events() -> list[ev.Event]:
    """A whole 4-epoch run in the residual mode, every value a function of the step."""
    out: list[ev.Event] = [ev.RunStarted(
        run_dir="/runs/fixture-20240101-120000", name="fixture", preset="demo",
        dataset={"users": 3000, "items": 2000, "train": 72000, "valid": 9000, "test": 9000},
        device="cpu (2 threads)", item_mode="residual", epochs=EPOCHS, steps_per_epoch=SPE, start_step=0,
        resumed=False, clip_norm=1.0, schedule=SCHEDULE, t=T0)]
    pop = {f"{m}@{k}": v * k / 20 for m, v in (("recall", 0.032), ("ndcg", 0.016)) for k in (10, 20, 50)}
    out += [ev.EvalResult(epoch=0, step=0, split=s, metrics=pop, model="popularity", t=T0) for s in ("valid", "test")]
    out.append(ev.StateChanged(state="running", epoch=0, step=0, t=T0))
    schedule = SCHEDULE
    t = T0 + 1
    for i in range(EPOCHS * SPE):
        epoch = i // SPE
        if i == 150:
            new = schedule.lr("item", i) / 2
            schedule = schedule.with_rate("item", new, i)
            out.append(ev.CommandReceived(command="set_lr", args={"cmd": "set_lr", "group": "item", "lr": new},
                                          source="control", t=t))
            out.append(ev.LrChanged(group="item", lr=new, step=i, source="command", schedule=schedule, t=t))
        t += 0.05
        out.append(ev.StepMetrics(
            epoch=epoch, step=i, loss=0.2 + 0.49 * math.exp(-i / 80) + 0.03 * math.sin(i),
            grad_user=0.3 * math.exp(-i / 150) * (1 + 0.3 * math.sin(i / 3)), grad_item=0.1 * math.exp(-i / 150),
            lr_user=schedule.lr("user", i), lr_item=schedule.lr("item", i), alpha=max(0.8 - 0.2 * epoch, 0.0), t=t))
        if (i + 1) % SPE == 0:
            done = epoch + 1
            out.append(ev.EpochEnd(epoch=epoch, step=i + 1, mean_loss=0.3, seconds=3.0, t=t))
            for split in ("valid", "test"):
                metrics = {f"{m}@{k}": base * (1 + 0.3 * done) * k / 20
                           for m, base in (("recall", 0.1), ("ndcg", 0.05)) for k in (10, 20, 50)}
                out.append(ev.EvalResult(epoch=done, step=i + 1, split=split, metrics=metrics, best=done < 4,
                                         seconds=0.5, t=t))
            counts = [int(1000 * math.exp(-((b - 8 - done) ** 2) / 8)) for b in range(20)]
            out.append(ev.Diagnostics(epoch=done, step=i + 1, retention=1 - 0.05 * done,
                                      retention_p10=0.9 - 0.05 * done, sim_edges=[-1 + b / 10 for b in range(21)],
                                      sim_counts=counts, t=t))
            out.append(ev.CheckpointSaved(path=f"/runs/fixture-20240101-120000/checkpoints/step-{i + 1:09d}-epoch.pt",
                                          reason="epoch", epoch=done, step=i + 1, t=t))
    out.append(ev.StateChanged(state="done", epoch=EPOCHS, step=EPOCHS * SPE, t=t))
    return out


@pytest.fixture
def finished_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> rundir.RunDir:
    """A run directory holding only the fixture's metrics; log times are shown in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    cfg = tiny_config(tmp_path)
    run = rundir.create(cfg, "demo")
    sink = JsonlSink(run.metrics)
    for event in fixture_events():
        sink.handle(event)
    sink.close()
    yield run
    monkeypatch.undo()
    time.tzset()


async def loaded(pilot: Pilot) -> None:
    app = pilot.app
    await until(pilot, lambda: app.history.state == "done", "the fixture to load")
    app.refresh_panes(force=True)
    await pilot.pause()


def test_layout_at_80x24(finished_run: rundir.RunDir, snap_compare) -> None:
    assert snap_compare(watch_app(finished_run, interval=0.02), terminal_size=(80, 24), run_before=loaded)


def test_layout_adapts_to_a_large_terminal(finished_run: rundir.RunDir, snap_compare) -> None:
    assert snap_compare(watch_app(finished_run, interval=0.02), terminal_size=(160, 48), run_before=loaded)


def rendered(app: Dashboard, selector: str) -> list[str]:
    """The lines a widget puts on the screen, cut to its size as the terminal shows them."""
    widget = app.screen.query_one(selector)
    return [strip.text for strip in widget.render_lines(Region(0, 0, *widget.outer_size))]


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
def test_what_a_user_reads_is_whole_at_80x24_and_at_160x45(finished_run: rundir.RunDir, size: tuple[int, int]) -> None:
    app = watch_app(finished_run, interval=0.02)

    async def scenario(pilot: Pilot) -> None:
        await loaded(pilot)
        header = rendered(app, "#header-run")[0]
        assert "3000×2000 · 72k train" in header and "…" not in header
        if size[0] >= 160:
            assert "fixture-20240101-120000 · demo" in header and "cpu (2 threads)" in header
        log = rendered(app, "#log")
        assert any(line.strip() == "checkpoints/step-000000240-epoch.pt" for line in log), log
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        await pilot.pause()
        body = app.screen.query_one("#help")
        bottom = rendered(app, "#help")[-1]
        assert "esc, ? or q closes" in bottom and "scroll" in bottom
        if body.max_scroll_y:
            await pilot.press("down", "down")
            await until(pilot, lambda: body.scroll_y > 0, "the arrows to scroll the help")
        else:
            assert size[1] >= 45, "at 80×24 the help is longer than the screen"

    drive(app, scenario, size=size)


def test_a_gpu_runs_figures_show_on_their_own_line_at_80x24(finished_run: rundir.RunDir) -> None:
    sink = JsonlSink(finished_run.metrics)
    sink.handle(ev.GpuSample(epoch=4, step=240, allocated=28_100_000_000, peak_allocated=36_000_000_000,
                             utilization=87, memory_used=31_200_000_000, memory_total=79_600_000_000, power_w=310.4,
                             temperature_c=64, t=T0 + 30))
    sink.close()
    app = watch_app(finished_run, interval=0.02)

    async def scenario(pilot: Pilot) -> None:
        await loaded(pilot)
        await until(pilot, lambda: app.history.snapshot().gpu is not None, "the GPU sample")
        app.refresh_panes(force=True)
        await pilot.pause()
        (line,) = rendered(app, "#gpu")
        assert line.strip() == "gpu 87% │ mem 31.2/79.6 GB │ alloc 28.1 GB peak 36.0 │ 310 W │ 64 °C"
        assert "3000×2000 · 72k train" in rendered(app, "#header-run")[0]
        assert any(line.strip() == "checkpoints/step-000000240-epoch.pt" for line in rendered(app, "#log"))

    drive(app, scenario)

@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
def test_the_recall_pane_shows_head_tail_and_cold_recall_of_the_latest_evaluation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]) -> None:
    monkeypatch.setenv("TZ", "UTC")
    run = rundir.create(tiny_config(tmp_path), "demo")
    sink = JsonlSink(run.metrics)
    for event in fixture_events():
        if isinstance(event, ev.EvalResult) and event.model == "lightgcn" and event.epoch == EPOCHS:
            event.metrics = {**event.metrics, "recall@20/head": 0.31234, "recall@20/tail": 0.0526}
        sink.handle(event)
    sink.close()
    app = watch_app(run, interval=0.02)

    async def scenario(pilot: Pilot) -> None:
        await loaded(pilot)
        lines = [line.rstrip() for line in rendered(app, "#evals")]
        table_end = next(n for n, line in enumerate(lines) if line.startswith("50 "))
        assert lines[table_end + 1] == "R@20 head 0.312 tail 0.053 cold -", lines
        assert lines[table_end + 2].startswith("R@20 ▁"), lines
        assert any(line.startswith("N@20 ") for line in lines) == (size[1] >= 45), lines  # the trend that gives way

    drive(app, scenario, size=size)


def test_o_overlays_another_runs_loss_and_recall_and_can_take_it_away(finished_run: rundir.RunDir) -> None:
    cfg = tiny_config(finished_run.path.parent, "run.name=other")
    other = rundir.create(cfg, "demo")
    sink = JsonlSink(other.metrics)
    for event in fixture_events():
        if isinstance(event, ev.StepMetrics):
            event.loss *= 3
        if isinstance(event, ev.EvalResult) and event.model == "lightgcn":
            event.metrics = {k: v / 2 for k, v in event.metrics.items()}
        sink.handle(event)
    sink.close()
    app = watch_app(finished_run, interval=0.02)

    async def scenario(pilot: Pilot) -> None:
        await loaded(pilot)
        loss = app.loss
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, RunPicker), "the run picker")
        await pilot.press("enter")
        await until(pilot, lambda: loss.overlay is not None, "the other run to load")
        assert loss.overlay.name == other.path.name
        assert loss.overlay.snap.steps.loss[0] == pytest.approx(3 * app.history.snapshot().steps.loss[0])
        await until(pilot, lambda: f"vs {other.path.name}" in str(loss.border_title), "the loss title to name it")
        evals = "\n".join(rendered(app, "#evals"))
        assert any(line.startswith("vs ") and line.rstrip().endswith("0.1100") for line in rendered(app, "#evals")), \
            evals  # the other run's best R@20: half of this run's 0.2200
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, RunPicker), "the run picker again")
        await pilot.press("enter")  # the first choice is now "no overlay"
        await until(pilot, lambda: loss.overlay is None, "the overlay to go")
        await pilot.press("q")

    drive(app, scenario)


def test_watching_a_finished_run_shows_its_history_and_sends_nothing(finished_run: rundir.RunDir) -> None:
    app = watch_app(finished_run, interval=0.02)
    control = finished_run.path / control_file.CONTROL_FILE

    async def scenario(pilot: Pilot) -> None:
        await loaded(pilot)
        snap = app.history.snapshot()
        assert snap.step == EPOCHS * SPE and len(snap.evals) == 2 * EPOCHS and snap.diagnostics.epoch == EPOCHS
        await pilot.press("p", "c", "e")
        assert not control.exists() or control.read_text() == ""
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "the help screen to close")
        await pilot.press("q")

    drive(app, scenario)
    assert app.return_code == 0


@pytest.mark.parametrize(("last_state", "says_resume"), [("done", False), ("stopped", True), ("running", True)])
def test_detaching_from_watch_says_how_to_resume_a_run_that_did_not_finish(tmp_path: Path, last_state: str,
                                                                           says_resume: bool) -> None:
    """A record that says running with nobody holding the lock is an interrupted run."""
    run = rundir.create(tiny_config(tmp_path), "demo")
    sink = JsonlSink(run.metrics)
    for event in fixture_events()[:-1]:
        sink.handle(event)
    sink.handle(ev.StateChanged(state=last_state, epoch=EPOCHS, step=EPOCHS * SPE))
    sink.close()
    app = watch_app(run, interval=0.02)

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: app.history.state == last_state, "the record to load")
        await pilot.press("q")

    drive(app, scenario)
    printed = io.StringIO()
    farewell(app, Console(file=printed, width=400))
    assert ("resume with: lgcn-tui train --resume" in printed.getvalue()) == says_resume


# ----- watch: a headless run in another process -------------------------------------------
def test_watch_pauses_a_headless_run_and_detaching_leaves_it_running(tmp_path: Path) -> None:
    sets = [arg for key in [*TINY, f"run.out_dir={tmp_path / 'runs'}"] for arg in ("--set", key)]
    proc, lines = spawn(["train", "--no-ui", "--preset", "demo", *sets], cwd=tmp_path,
                        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        run = rundir.open_run(Path(lines.until("training demo in ").split(" in ", 1)[1].strip()))
        app = watch_app(run, tick_hz=10, interval=0.05)

        def paused_in_file() -> bool:
            return any(e["event"] == "state" and e["state"] == "paused" for e in read_events(run.metrics))

        async def scenario(pilot: Pilot) -> None:
            await until(pilot, lambda: app.history.snapshot().step > 0, "steps from the headless run", 60)
            await pilot.press("p")
            await until(pilot, paused_in_file, "the headless run to record a pause")
            await until(pilot, lambda: "paused" in text_of(app, "#header-state"), "the watcher to show it")
            await pilot.press("q")

        drive(app, scenario)
        assert app.return_code == 0
        assert proc.poll() is None, "quitting watch must never stop the run"
        control_file.send(run.path, cmd.Stop(save=False))
        assert proc.wait(timeout=30) == 0, lines.rest()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_stops_a_live_run_with_a_checkpoint_and_says_how_to_resume(tmp_path: Path,
                                                                                     signum: int) -> None:
    app = live(tmp_path)
    folder = app.source.run.run_dir.checkpoints

    async def scenario(pilot: Pilot) -> None:
        await started_and_paused(pilot, app)
        os.kill(os.getpid(), signum)
        await until(pilot, lambda: app.worker.is_finished, "the run to stop")

    drive(app, scenario)
    assert app.worker.result == "stopped" and app.return_code == 0
    assert list(folder.glob("*-stop.pt")), "a signal must save a checkpoint before stopping"
    printed = io.StringIO()
    farewell(app, Console(file=printed, width=400))
    assert f"resume with: lgcn-tui train --resume {app.source.run_dir}" in printed.getvalue()


def test_the_eval_pane_keeps_up_once_the_history_holds_its_most_evaluations() -> None:
    from lgcn_tui.sinks.history import History

    history, pane = History(max_evals=4), EvalPane()
    titles = []
    for epoch in range(1, 7):
        for split in ("valid", "test"):
            history.handle(ev.EvalResult(epoch=epoch, step=10 * epoch, split=split, metrics={"recall@20": epoch / 10},
                                         t=T0 + epoch))
        pane.show(history.snapshot())
        titles.append(str(pane.border_title))
    assert [f"ep {epoch}" in title for epoch, title in enumerate(titles, start=1)] == [True] * 6, titles
