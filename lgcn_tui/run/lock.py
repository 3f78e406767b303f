"""One trainer per run directory: a lock file that says who holds it.

Two trainers on the same run would interleave lines in metrics.jsonl and race on the
checkpoint files, so a trainer takes ``RUN_DIR/lock`` before it writes anything and keeps
it until it stops. Viewers (``watch``, ``send``) only read the run and never take it.

The file names its holder (pid, host, start time, command) so a refusal can tell the user
what to wait for or stop. A trainer that was killed never removes its file, so a lock whose
process is gone is taken over with a notice rather than blocking the run for ever; that can
only be checked on the holder's own host, so a lock from another host needs --break-lock.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UserError

LOCK_FILE = "lock"


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started: float
    command: str

    def describe(self) -> str:
        """Enough for a user to find the process: which one, where, since when, doing what."""
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on host {self.host} since {since} ({self.command})"


class RunLock:
    """Held for the lifetime of a trainer on one run directory."""

    def __init__(self, path: Path, holder: Holder) -> None:
        self.path = path
        self.holder = holder

    @classmethod
    def acquire(cls, run_dir: Path, *, break_lock: bool = False,
                notify: Callable[[str], None] = lambda _: None) -> RunLock:
        """Take the lock, taking over one whose holder is provably gone; refuse a live one.

        ``notify`` hears every takeover, so a user can see that a lock was not honoured.
        """
        if not run_dir.is_dir():
            raise UserError(f"run directory {run_dir} does not exist; create the run first")
        path = run_dir / LOCK_FILE
        mine = Holder(os.getpid(), socket.gethostname(), time.time(), " ".join(sys.argv))
        if _create(path, mine):
            return cls(path, mine)
        _clear(run_dir, path, break_lock, notify)
        if _create(path, mine):
            return cls(path, mine)
        # Another trainer took over the same stale lock between our removal and our create.
        raise _busy(run_dir, read_holder(run_dir))

    def release(self) -> None:
        """Remove the lock file, unless it was broken and taken since: then it is not ours.

        Calling it again does nothing, so it is safe from both ``finally`` and ``__exit__``.
        """
        try:
            current = _load(self.path)
        except FileNotFoundError:
            return
        mine = self.holder
        # The start time tells our taking from a later one by a process that reused our pid.
        if current is not None and (current.pid, current.host, current.started) == (
                mine.pid, mine.host, mine.started):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(run_dir: Path) -> Holder | None:
    """Who holds the run; None when nobody does, including when the file is garbled."""
    try:
        return _load(run_dir / LOCK_FILE)
    except FileNotFoundError:
        return None


def live_holder(run_dir: Path) -> Holder | None:
    """The holder if it may still be training: its process is alive on this host, or it runs on
    another host, where that cannot be checked from here. None for a free, garbled or dead lock,
    so a run whose record says running but returns None here was interrupted."""
    holder = read_holder(run_dir)
    if holder is None or (holder.host == socket.gethostname() and not _alive(holder.pid)):
        return None
    return holder


def _load(path: Path) -> Holder | None:
    """The holder in ``path``, or None when its contents are not one (a crash mid-write).

    A missing file raises FileNotFoundError, so callers can tell "released" from "garbled".
    """
    try:
        data = json.loads(path.read_bytes())
        holder = Holder(**data)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError):
        return None
    valid = (type(holder.pid) is int and holder.pid > 0  # pid 0 or -1 would signal a group
             and isinstance(holder.host, str) and isinstance(holder.command, str)
             and isinstance(holder.started, (int, float)) and not isinstance(holder.started, bool))
    return holder if valid else None


def _create(path: Path, holder: Holder) -> bool:
    """Create the lock file holding ``holder``; False when it already exists.

    O_EXCL makes the existence check and the creation one step, so two trainers starting
    together cannot both succeed.
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(holder), fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        path.unlink(missing_ok=True)  # a half-written lock would only be taken over later
        raise
    return True


def _clear(run_dir: Path, path: Path, break_lock: bool, notify: Callable[[str], None]) -> None:
    """Remove an existing lock whose holder is gone (or broken by request); raise if it is live."""
    try:
        holder = _load(path)
    except FileNotFoundError:
        return  # released between our create and this read
    if holder is None:
        notify(f"lock file {path} is empty or garbled (its trainer likely died while writing it); "
               "taking the lock over")
    elif holder.host != socket.gethostname():
        if not break_lock:
            raise UserError(
                f"run {run_dir} is locked by {holder.describe()}; whether that process is still "
                f"running cannot be checked from this host ({socket.gethostname()}). If that "
                "process is really gone, pass --break-lock")
        notify(f"broke the lock of {holder.describe()} on run {run_dir}")
    elif _alive(holder.pid):
        raise _busy(run_dir, holder)
    else:
        notify(f"pid {holder.pid} that held the lock of run {run_dir} is gone; taking the lock over")
    path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host; signal 0 only checks."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, but belongs to another user
    return True


def _busy(run_dir: Path, holder: Holder | None) -> UserError:
    who = holder.describe() if holder else "another trainer"
    return UserError(
        f"run {run_dir} is already being trained by {who}; wait for it to finish, stop it with "
        f"`lgcn-tui send {run_dir} stop`, or watch it with `lgcn-tui watch {run_dir}`")
