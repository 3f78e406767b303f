"""The contract a run shares with everything that steers or watches it: commands, the schedule value, events."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from lgcn_tui.contract import commands as cmd
from lgcn_tui.contract import control_file
from lgcn_tui.contract import events as ev
from lgcn_tui.contract.schedule import LrSchedule, lr_at
from lgcn_tui.contract.state import RunState
from lgcn_tui.errors import UserError

PLAN = LrSchedule.plan(user_lr=1e-3, item_lr=3e-4, min_lr=1e-5, warmup_epochs=1.5, item_start_epoch=2,
                       steps_per_epoch=10, epochs=8)


@pytest.mark.parametrize(("data", "words"), [
    ({"cmd": "set_lr", "group": "item", "lr": True}, "not a finite number"),
    ({"cmd": "set_lr", "group": "item", "lr": 1e-300}, "outside the sensible range"),
    ({"cmd": "set_lr", "group": "item", "lr": 5.0}, "outside the sensible range"),
    ({"cmd": "set_lr", "group": "item", "lr": -1}, "must be positive"),
    ({"cmd": "set_lr", "group": "item", "lr": "1e-3"}, "not a finite number"),
    ({"cmd": "set_lr", "group": "bias", "lr": 1e-3}, "unknown parameter group 'bias'; valid groups: user, item"),
    ({"cmd": "set_lr", "group": "item"}, "command 'set_lr' needs lr"),
    ({"cmd": "pause", "now": True}, "command 'pause' takes no fields, not now"),
    ({"cmd": "stop", "save": "yes"}, "save must be true or false"),
    ({"cmd": "explode"}, "unknown command 'explode'; valid commands: pause, resume, checkpoint, evaluate, stop, set_lr"),
    (["pause"], "must be a JSON object"),
])
def test_every_way_in_refuses_the_same_bad_commands_by_name(data: object, words: str) -> None:
    with pytest.raises(UserError) as caught:
        cmd.parse(data, source="the control file")
    assert words in str(caught.value)


def test_a_command_survives_its_json_form_and_keeps_its_source() -> None:
    for command in (cmd.Pause(), cmd.Resume(), cmd.SaveCheckpoint(), cmd.Evaluate(), cmd.Stop(save=False),
                    cmd.SetLr("user", 2e-3)):
        again = cmd.parse(json.loads(json.dumps(cmd.to_dict(command))), source="send")
        assert again == type(command)(**{**vars(command), "source": "send"})
    assert cmd.to_dict(cmd.SetLr("item", 1e-4)) == {"cmd": "set_lr", "group": "item", "lr": 1e-4}


def test_the_control_file_turns_lines_into_commands_and_bad_lines_into_reasons(tmp_path: Path) -> None:
    control_file.send(tmp_path, cmd.Pause())  # before the reader: never replayed
    reader = control_file.ControlFileReader(tmp_path)
    control_file.send(tmp_path, cmd.SetLr("item", 1e-4))
    with open(tmp_path / control_file.CONTROL_FILE, "a") as fh:
        fh.write('{"cmd": "set_lr", "group": "item", "lr": true}\nnot json\n')
    got = reader.poll()
    assert got[0] == cmd.SetLr("item", 1e-4, source="the control file")
    assert isinstance(got[1], str) and "not a finite number" in got[1]
    assert isinstance(got[2], str) and "not json" in got[2]


def test_the_schedule_is_the_rule_with_its_delayed_item_start() -> None:
    assert PLAN.warmup_steps == 15 and PLAN.item_start_step == 20 and PLAN.total_steps == 80
    for step in range(80):
        assert PLAN.lr("user", step) == lr_at(step, 1e-3, 15, 80, 1e-5)
        assert PLAN.lr("item", step) == lr_at(step, 3e-4, 15, 80, 1e-5, start=20)
    assert PLAN.lr("item", 19) == 0.0 and PLAN.lr("item", 20) > 0.0


def test_a_rate_set_by_hand_holds_at_its_step_and_rescales_the_rest() -> None:
    changed = PLAN.with_rate("item", 1e-4, step=40)
    assert changed.lr("item", 40) == pytest.approx(1e-4)
    ratio = 1e-4 / PLAN.lr("item", 40)
    steps = np.arange(40, 80)
    assert changed.planned("item", steps) == pytest.approx(ratio * PLAN.planned("item", steps))
    assert changed.planned("user", steps) == pytest.approx(PLAN.planned("user", steps))
    early = PLAN.with_rate("item", 1e-4, step=5)  # before the item group starts: rescales its base
    assert early.starting_rate("item") == pytest.approx(1e-4) and early.lr("item", 5) == 0.0


def test_events_carry_the_schedule_and_state_through_metrics_jsonl() -> None:
    changed = PLAN.with_rate("user", 5e-4, step=3)
    events = [ev.LrChanged(group="user", lr=5e-4, step=3, source="command", schedule=changed),
              ev.StateChanged(state=RunState.PAUSED, epoch=0, step=3)]
    for event in events:
        line = json.dumps(event.to_dict())
        again = ev.event_from_dict(json.loads(line))
        assert again == event
    assert json.loads(json.dumps(events[1].to_dict()))["state"] == "paused"
    old = {"event": "lr_changed", "group": "user", "lr": 5e-4, "step": 3, "source": "command", "t": 1.0}
    assert ev.event_from_dict(old).schedule is None  # files written before the schedule was carried


def test_a_12_mib_line_cannot_jam_the_control_file(tmp_path: Path) -> None:
    reader = control_file.ControlFileReader(tmp_path)
    with open(tmp_path / control_file.CONTROL_FILE, "ab") as fh:
        fh.write(b'{"cmd": "' + b"p" * (12 << 20) + b'"}\n')
    control_file.send(tmp_path, cmd.Pause())
    got = reader.poll() + reader.poll()
    assert got[-1] == cmd.Pause(source="the control file")
    assert any(isinstance(g, str) and "skipped a line of 12,582,924 bytes" in g for g in got)


def test_a_directory_in_place_of_the_control_file_is_reported_once_and_reading_goes_on(tmp_path: Path) -> None:
    reader = control_file.ControlFileReader(tmp_path)
    path = tmp_path / control_file.CONTROL_FILE
    path.unlink()
    path.mkdir()
    first = reader.poll()
    assert len(first) == 1 and "cannot read" in first[0] and str(path) in first[0]
    assert reader.poll() == []
    path.rmdir()
    control_file.send(tmp_path, cmd.Resume())
    assert reader.poll() == [cmd.Resume(source="the control file")]


def test_the_control_file_is_private_to_its_owner_under_any_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        control_file.ControlFileReader(tmp_path / "a")  # the run creates it
        control_file.send(tmp_path / "b", cmd.Pause())  # or `send` does, first
    finally:
        os.umask(old)
    for folder in ("a", "b"):
        assert stat.S_IMODE((tmp_path / folder / control_file.CONTROL_FILE).stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a file to another user needs root")
def test_commands_in_a_control_file_owned_by_another_user_are_refused(tmp_path: Path) -> None:
    reader = control_file.ControlFileReader(tmp_path)
    path = tmp_path / control_file.CONTROL_FILE
    control_file.send(tmp_path, cmd.Stop())
    os.chown(path, 4242, -1)
    got = reader.poll()
    assert len(got) == 1 and "belongs to uid 4242" in got[0] and "ignored 1 line" in got[0]


def test_an_event_kind_names_one_class_so_old_lines_read_back_as_what_wrote_them() -> None:
    with pytest.raises(ValueError, match="event kind 'eval' is taken by EvalResult"):
        @ev.event("eval")
        class Another(ev.Progress):
            value: float

    assert ev.EVENT_TYPES["eval"] is ev.EvalResult
    line = {"event": "eval", "epoch": 1, "step": 9, "split": "test", "metrics": {"recall@20": 0.5}, "t": 2.0}
    assert ev.event_from_dict(line) == ev.EvalResult(epoch=1, step=9, split="test", metrics={"recall@20": 0.5}, t=2.0)


def test_the_control_file_carries_who_asked_so_the_run_logs_it_in_their_words(tmp_path: Path) -> None:
    reader = control_file.ControlFileReader(tmp_path)
    control_file.send(tmp_path, cmd.Pause(source="key p in watch"))
    control_file.send(tmp_path, cmd.SetLr("item", 5e-4, source="lgcn-tui send"))
    with open(tmp_path / control_file.CONTROL_FILE, "a") as fh:
        fh.write('{"cmd": "evaluate"}\n')
    assert reader.poll() == [cmd.Pause(source="key p in watch"), cmd.SetLr("item", 5e-4, source="lgcn-tui send"),
                             cmd.Evaluate(source="the control file")]
