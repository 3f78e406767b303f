"""The dashboard's history store and the metrics.jsonl follower, without any UI."""

from __future__ import annotations

import inspect
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from lgcn_tui import config as cfgmod
from lgcn_tui import presets
from lgcn_tui.contract import commands as cmd
from lgcn_tui.contract import events as ev
from lgcn_tui.contract.schedule import LrSchedule
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.sinks.history import History, JsonlFollower, describe, load

SCHEDULE = LrSchedule(user_lr=1e-2, item_lr=3e-3, min_lr=1e-5, warmup_steps=10, item_start_step=20, total_steps=200)


def started(**over) -> ev.RunStarted:
    fields = dict(run_dir="/runs/r", name="r", preset="demo", dataset={"users": 5, "items": 4, "train": 9,
                  "valid": 2, "test": 2}, device="cpu", item_mode="learnable", epochs=4, steps_per_epoch=50,
                  start_step=0, resumed=False, clip_norm=5.0, schedule=SCHEDULE, t=1000.0)
    fields.update(over)
    return ev.RunStarted(**fields)


def step(i: int, loss: float = 0.5, grad: float = 1.0, t: float | None = None) -> ev.StepMetrics:
    return ev.StepMetrics(epoch=i // 50, step=i, loss=loss, terms={"bpr": loss}, grad_user=grad, grad_item=grad / 2,
                          lr_user=1e-3, lr_item=1e-4, alpha=None, t=1000.0 + 0.1 * i if t is None else t)


def test_step_series_stay_bounded_and_keep_means_and_spikes() -> None:
    history = History(capacity=64)
    history.handle(started())
    losses = np.linspace(1.0, 0.1, 10_000)
    for i, loss in enumerate(losses):
        history.handle(step(i, float(loss), grad=100.0 if i == 5000 else 1.0))
    s = history.snapshot().steps
    assert len(s) <= 65
    assert s.stride & (s.stride - 1) == 0 and s.stride > 1
    assert s.step[-1] == 9999 and s.step[0] < s.stride
    assert np.all(np.diff(s.step) > 0)
    assert s.grad_user.max() == 100.0, "a spike must survive merging (bucket max)"
    assert abs(np.mean(s.loss[:-1]) - np.mean(losses[: len(s.loss[:-1]) * s.stride])) < 1e-3


def test_smoothed_loss_is_debiased_from_the_first_step() -> None:
    history = History()
    for i in range(3):
        history.handle(step(i, 0.5))
    assert history.snapshot().steps.loss_ema.tolist() == pytest.approx([0.5, 0.5, 0.5])


def test_rate_and_eta_follow_step_times_and_skip_pauses() -> None:
    history = History()
    history.handle(started())
    history.handle(ev.StateChanged(state="running", epoch=0, step=0, t=1000.0))
    for i in range(20):
        history.handle(step(i))
    snap = history.snapshot()
    assert snap.rate == pytest.approx(10.0)
    epoch_left, run_left = snap.eta()
    assert epoch_left == pytest.approx(30 / 10.0) and run_left == pytest.approx(180 / 10.0)
    history.handle(ev.StateChanged(state="paused", epoch=0, step=20))
    paused = history.snapshot()
    assert paused.state == "paused" and paused.eta() == (None, None)
    assert paused.rate == pytest.approx(10.0), "the rate before the pause stands until new steps come"
    history.handle(ev.StateChanged(state="running", epoch=0, step=20, t=1100.0))
    for i in range(20, 30):
        history.handle(step(i, t=1100.0 + 0.5 * (i - 20)))
    assert history.snapshot().rate == pytest.approx(2.0), "the gap of the pause must not count"


class Steps:
    """The rates a run really used, step by step."""

    def __init__(self) -> None:
        self.lr: dict[int, tuple[float, float]] = {}

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepMetrics):
            self.lr[event.step] = (event.lr_user, event.lr_item)

    def flush(self) -> None: ...

    def close(self) -> None: ...


def test_planned_lr_is_the_rate_the_run_then_uses_after_a_manual_change(tmp_path: Path) -> None:
    """Drive a real (tiny) run: set the item rate before the first step and train to the end."""
    path = presets.find("demo")
    cfg = cfgmod.resolve(cfgmod.load_toml(path), str(path), [
        f"run.out_dir={tmp_path}", "run.device=cpu", "run.epochs=3", "data.synthetic_users=60",
        "data.synthetic_items=40", "data.synthetic_per_user=10", "model.dim=8", "optim.batch_size=32",
        "optim.item_start_epoch=1"])
    history, used = History(), Steps()
    run = Run(cfg, preset="demo", sinks=[history, used])
    run.setup()
    run.send(cmd.SetLr("item", 7e-4))
    try:
        assert run.train() == "done"
    finally:
        run.cleanup()
    snap = history.snapshot()
    steps = np.arange(run.total_steps)
    planned = {g: snap.schedule.planned(g, steps) for g in ("user", "item")}
    assert planned["item"][-1] != pytest.approx(7e-4)  # the plan goes on decaying from the rate set
    assert [planned["user"][s] for s in steps] == pytest.approx([used.lr[s][0] for s in steps], rel=1e-12)
    assert [planned["item"][s] for s in steps] == pytest.approx([used.lr[s][1] for s in steps], rel=1e-12)
    first_item_step = run.steps_per_epoch
    assert used.lr[first_item_step - 1][1] == 0.0 and used.lr[first_item_step][1] > 0.0
    assert max(lr for _, lr in used.lr.values()) == pytest.approx(7e-4), "the run peaks at the rate set by hand"


def test_log_is_bounded_but_counts_every_line() -> None:
    history = History(log_lines=10)
    for i in range(100):
        history.handle(ev.Message(level="info", text=f"line {i}"))
    snap = history.snapshot()
    assert len(snap.log) == 10 and snap.log_total == 100 and snap.log[-1].text == "line 99"


def test_an_error_message_records_the_error_and_its_checkpoint() -> None:
    history = History()
    history.handle(ev.CheckpointSaved(path="/r/step-1-epoch.pt", reason="epoch", epoch=0, step=1))
    history.handle(ev.Message(level="error", text="training failed: boom", checkpoint="/r/step-2-error.pt"))
    snap = history.snapshot()
    assert snap.error == "training failed: boom" and snap.error_checkpoint == "/r/step-2-error.pt"
    assert describe(ev.Message(level="error", text="x")).level == "error"


def test_snapshots_are_consistent_while_another_thread_writes() -> None:
    history = History(capacity=32)
    done = threading.Event()

    def write() -> None:
        for i in range(20_000):
            history.handle(step(i))
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    while not done.is_set():
        snap = history.snapshot()
        s = snap.steps
        assert len({len(s.step), len(s.loss), len(s.grad_item), len(s.alpha)}) == 1
        if len(s):  # the series, the last step and the position must all come from the same moment
            assert snap.last is not None and snap.last.step == s.step[-1] and snap.step == s.step[-1] + 1
    thread.join()
    assert history.snapshot().steps.step[-1] == 19_999


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def _line(event: ev.Event) -> str:
    return json.dumps(event.to_dict()) + "\n"


def test_follower_reads_complete_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    history = History()
    follower = JsonlFollower(path, history)
    assert follower.poll() == 0, "a missing file is simply not there yet"
    _append(path, _line(started()) + _line(step(0)))
    partial = _line(step(1))
    _append(path, partial[:20])
    assert follower.poll() == 2
    assert history.snapshot().step == 1
    _append(path, partial[20:])
    assert follower.poll() == 1
    assert history.snapshot().step == 2


def test_follower_starts_over_when_a_resume_truncates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    history = History()
    follower = JsonlFollower(path, history)
    _append(path, _line(started()) + "".join(_line(step(i, loss=0.9)) for i in range(10)))
    follower.poll()
    keep = len(_line(started()) + "".join(_line(step(i, loss=0.9)) for i in range(3)))
    with open(path, "r+b") as fh:
        fh.truncate(keep)
    # The resumed run writes more than was cut before the next poll: the size alone would not tell.
    _append(path, _line(started(resumed=True, start_step=3)) + "".join(_line(step(i, loss=0.1)) for i in range(3, 20)))
    follower.poll()
    snap = history.snapshot()
    assert snap.steps.step.tolist() == list(range(20))
    assert snap.steps.loss.tolist() == [0.9] * 3 + [0.1] * 17
    assert snap.run.resumed


def test_follower_skips_a_bad_line_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    _append(path, _line(step(0)) + "{not json\n" + json.dumps({"event": "from_the_future"}) + "\n" + _line(step(1)))
    history = History()
    follower = JsonlFollower(path, history)
    assert follower.poll() == 4
    snap = history.snapshot()
    assert snap.step == 2 and follower.skipped == 2
    warnings = [line.text for line in snap.log if line.level == "warning"]
    assert len(warnings) == 2 and "not json" in warnings[0] and "from_the_future" in warnings[1]


def test_load_reads_a_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    _append(path, _line(started()) + "".join(_line(step(i)) for i in range(50)))
    history = History()
    assert load(path, history) == 51
    assert history.snapshot().step == 50
    # A file larger than one read (the follower's max_bytes) still comes in whole.
    big = tmp_path / "big.jsonl"
    text = "x" * (inspect.signature(JsonlFollower).parameters["max_bytes"].default // 3)
    _append(big, _line(started()) + _line(ev.Message(level="info", text=text)) * 4
            + "".join(_line(step(i)) for i in range(50)))
    history = History()
    assert load(big, history) == 55
    assert history.snapshot().step == 50


def test_alpha_is_nan_where_the_mode_has_none() -> None:
    history = History()
    history.handle(step(0))
    assert math.isnan(history.snapshot().steps.alpha[0])


def test_events_counts_what_must_show_at_once_and_steps_do_not() -> None:
    history = History()
    history.handle(step(0))
    history.handle(step(1))
    assert history.events == 0 and history.version == 2
    history.handle(ev.StateChanged(state="paused", epoch=0, step=2))
    assert history.events == 1


@pytest.mark.parametrize(("command", "source", "line"), [
    (cmd.Pause(), "key p", "paused by key p"),
    (cmd.SetLr("item", 5e-4), "lgcn-tui send", "item lr 0.0005 asked by lgcn-tui send"),
    (cmd.Stop(save=False), "key q", "stop asked (no checkpoint) by key q"),
    (cmd.SaveCheckpoint(), "", "checkpoint asked"),
])
def test_the_log_says_what_was_asked_and_by_whom(command: cmd.Command, source: str, line: str) -> None:
    event = ev.CommandReceived(command=command.name, args=cmd.to_dict(command), source=source)
    assert describe(event).text == line
