"""The run-directory lock: one trainer per run, dead holders taken over, live ones refused."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from lgcn_tui.errors import UserError
from lgcn_tui.run.lock import LOCK_FILE, Holder, RunLock, read_holder

HOLD_UNTIL_STDIN_CLOSES = """
import sys
from pathlib import Path
from lgcn_tui.run.lock import RunLock
with RunLock.acquire(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def write_holder(run_dir: Path, holder: Holder) -> None:
    (run_dir / LOCK_FILE).write_text(json.dumps(asdict(holder)))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped, so its pid names no process
    return child.pid


def test_acquire_writes_our_pid_and_host_and_release_frees_the_run(tmp_path: Path) -> None:
    lock = RunLock.acquire(tmp_path)
    holder = read_holder(tmp_path)
    assert holder is not None
    assert (holder.pid, holder.host) == (os.getpid(), socket.gethostname())
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()
    lock.release()  # idempotent
    with RunLock.acquire(tmp_path):
        assert (tmp_path / LOCK_FILE).exists()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_second_lock_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with RunLock.acquire(tmp_path):
        with pytest.raises(UserError) as err:
            RunLock.acquire(tmp_path)
    message = str(err.value)
    assert f"pid {os.getpid()}" in message and socket.gethostname() in message
    assert "lgcn-tui send" in message and "lgcn-tui watch" in message


def test_a_lock_held_by_a_live_process_is_refused_until_it_exits(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", HOLD_UNTIL_STDIN_CLOSES, str(tmp_path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "held\n"
        with pytest.raises(UserError, match=f"pid {child.pid} on host"):
            RunLock.acquire(tmp_path)
        child.stdin.close()
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
        child.wait()
    assert read_holder(tmp_path) is None
    with RunLock.acquire(tmp_path):
        pass


def test_a_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path: Path) -> None:
    pid = dead_pid()
    write_holder(tmp_path, Holder(pid, socket.gethostname(), time.time(), "lgcn-tui train"))
    notices: list[str] = []
    with RunLock.acquire(tmp_path, notify=notices.append):
        holder = read_holder(tmp_path)
        assert holder is not None and holder.pid == os.getpid()
    assert len(notices) == 1 and str(pid) in notices[0]


def test_a_lock_from_another_host_needs_break_lock(tmp_path: Path) -> None:
    other = Holder(os.getpid(), "some-other-host", time.time(), "lgcn-tui train")
    write_holder(tmp_path, other)
    with pytest.raises(UserError) as err:
        RunLock.acquire(tmp_path)
    assert "some-other-host" in str(err.value) and "--break-lock" in str(err.value)
    assert read_holder(tmp_path) == other
    notices: list[str] = []
    with RunLock.acquire(tmp_path, break_lock=True, notify=notices.append):
        holder = read_holder(tmp_path)
        assert holder is not None and holder.host == socket.gethostname()
    assert len(notices) == 1 and other.describe() in notices[0]


def test_an_empty_lock_file_is_taken_over_with_a_notice_naming_it(tmp_path: Path) -> None:
    path = tmp_path / LOCK_FILE
    path.write_bytes(b"")
    assert read_holder(tmp_path) is None
    notices: list[str] = []
    with RunLock.acquire(tmp_path, notify=notices.append):
        holder = read_holder(tmp_path)
        assert holder is not None and holder.pid == os.getpid()
    assert len(notices) == 1 and str(path) in notices[0]


def test_release_leaves_a_lock_that_was_broken_and_taken_by_another(tmp_path: Path) -> None:
    lock = RunLock.acquire(tmp_path)
    other = Holder(os.getpid() + 1, "some-other-host", time.time(), "lgcn-tui train --break-lock")
    write_holder(tmp_path, other)
    lock.release()
    assert read_holder(tmp_path) == other


def test_a_missing_run_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    with pytest.raises(UserError, match=re.escape(str(missing))):
        RunLock.acquire(missing)
    assert not missing.exists()
