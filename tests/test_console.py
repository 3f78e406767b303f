"""The headless console: what a user reads in the terminal (or a log file) of a `--no-ui` run."""

from __future__ import annotations

import io
import time

from conftest import train_to_end
from rich.console import Console

from lgcn_tui.contract import events as ev
from lgcn_tui.contract.schedule import LrSchedule
from lgcn_tui.contract.state import RunState
from lgcn_tui.sinks.console import ConsoleSink, TrainingTimeColumn
from lgcn_tui.sinks.jsonl import load_events

SCHEDULE = LrSchedule(user_lr=1e-2, item_lr=3e-3, min_lr=1e-5, warmup_steps=10, item_start_step=0,
                      total_steps=10_000)


def started(item_mode: str = "learnable") -> ev.RunStarted:
    return ev.RunStarted(run_dir="/runs/r", name="r", preset="demo", dataset={"users": 5, "items": 4, "train": 9,
                         "valid": 2, "test": 2}, device="cpu", item_mode=item_mode, epochs=1000, steps_per_epoch=10,
                         start_step=0, resumed=False, clip_norm=5.0, schedule=SCHEDULE)


def step(n: int) -> ev.StepMetrics:
    return ev.StepMetrics(epoch=n // 10, step=n, loss=0.5, grad_user=1.0, grad_item=1.0, lr_user=1e-2,
                          lr_item=3e-3, alpha=None)


def printed(*events: ev.Event) -> str:
    out = io.StringIO()
    sink = ConsoleSink(Console(file=out, width=120, force_terminal=False))
    for event in events:
        sink.handle(event)
    sink.close()
    return out.getvalue()


def test_a_run_stopped_early_leaves_its_bars_where_it_ended_not_an_eta_for_the_rest() -> None:
    text = printed(started(), *(step(n) for n in range(475)),
                   ev.StateChanged(state=RunState.STOPPED, epoch=47, step=475))
    bars = [line for line in text.splitlines() if line.startswith("run")]
    assert bars and "475/475" in bars[-1] and "stopped in epoch 48 of 1000" in bars[-1]
    assert "ETA 0:00:00" in bars[-1]
    assert "stopped at epoch 47, step 475" in text


def test_the_best_mark_stands_on_the_split_that_chose_the_checkpoint_only(tiny_config) -> None:
    out = io.StringIO()
    run, state = train_to_end(tiny_config("run.epochs=2"), ConsoleSink(Console(file=out, width=120)))
    assert state == "done"
    lines = [line for line in out.getvalue().splitlines() if "recall@20" in line and "epoch" in line]
    assert any("valid" in line and "(best)" in line for line in lines)
    assert not any("test" in line and "(best)" in line for line in lines)
    evals = [e for e in load_events(run.run_dir.metrics) if isinstance(e, ev.EvalResult) and e.model == "lightgcn"]
    assert {e.split for e in evals if e.best} == {"valid"}


def test_retention_is_printed_only_for_items_that_started_from_pretrained_vectors() -> None:
    kept = ev.Diagnostics(epoch=1, step=10, retention=0.9, retention_p10=0.8, sim_edges=[], sim_counts=[])
    assert "retention 0.900" in printed(started(), kept)
    none = ev.Diagnostics(epoch=1, step=10, retention=None, retention_p10=None, sim_edges=[], sim_counts=[])
    assert "retention" not in printed(started("xavier"), none)


def test_the_training_time_leaves_out_the_time_the_run_was_paused() -> None:
    sink = ConsoleSink(Console(file=io.StringIO(), width=120))
    sink.handle(started())
    sink.handle(step(0))
    sink.handle(ev.StateChanged(state=RunState.PAUSED, epoch=0, step=1))
    time.sleep(1.2)
    sink.handle(ev.StateChanged(state=RunState.RUNNING, epoch=0, step=1))
    task = sink.progress.tasks[0]
    assert task.elapsed >= 1.2, "the wall clock ran on"
    assert str(TrainingTimeColumn().render(task)) == "0:00:00"
    sink.close()
