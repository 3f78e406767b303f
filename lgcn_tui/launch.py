"""``lgcn-tui train --nproc N``: the workers started through ``torch.distributed.run`` (torchrun) and watched from here.

The launcher is no rank: it decides the run directory (a fresh one, or the one resumed)
and hands it to the workers (``--run-dir``), starts ``python -m torch.distributed.run
--standalone --nproc-per-node N -m lgcn_tui train … --no-ui`` as a child, and then either
relays the workers' output and exit code (``--no-ui``), or opens the dashboard on the run
directory as ``watch`` does, with the workers' output going to ``RUN_DIR/workers.log``.

torchrun tears the job down when a worker dies and reports the first failure; the
launcher turns that report into one line that names the rank, how it ended and the last
checkpoint, and exits with the worker's exit code where it has a meaning of ours
(2: a user error, 3: diverged, 130: interrupted), else 1.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO

from rich.console import Console
from rich.markup import escape

from . import rundir
from .run import checkpoints as ckpt

WORKERS_LOG = "workers.log"
MEANINGFUL_EXITS = {2, 3, 130}
ROOT_CAUSE = re.compile(r"^\s*(rank|exitcode)\s*:\s*(-?\d+)")


def torchrun_command(nproc: int, worker_args: list[str]) -> list[str]:
    """The child's command line: one machine, a free rendezvous port, ``nproc`` workers."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "lgcn_tui", *worker_args]


class Relay:
    """Copies the child's output line by line to ``out`` and notes torchrun's first-failure report."""

    def __init__(self, stream: IO[str], out: IO[str]) -> None:
        self.stream, self.out = stream, out
        self.failure: dict[str, int] = {}
        self._in_root_cause = False
        self.thread = threading.Thread(target=self._copy, daemon=True)
        self.thread.start()

    def _copy(self) -> None:
        for line in self.stream:
            self.out.write(line)
            self.out.flush()
            if "Root Cause" in line:
                self._in_root_cause = True
            m = ROOT_CAUSE.match(line)
            if self._in_root_cause and m and m.group(1) not in self.failure:
                self.failure[m.group(1)] = int(m.group(2))


def launch(nproc: int, worker_args: list[str], run_dir: Path, dashboard: bool, console: Console) -> int:
    """Run the job to its end; the exit code to leave with."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log: IO[str] = sys.stdout
    if dashboard:
        run_dir.mkdir(parents=True, exist_ok=True)
        log = open(run_dir / WORKERS_LOG, "a", encoding="utf-8")
    # Its own session: the launcher passes on signals itself, once, so a Ctrl-C reaches the
    # workers as one request to stop with a checkpoint rather than two.
    proc = subprocess.Popen(torchrun_command(nproc, worker_args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)
    assert proc.stdout is not None
    relay = Relay(proc.stdout, log)

    def forward(signum: int, _frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, forward) for s in signals}
    try:
        if dashboard:
            _watch_when_ready(proc, run_dir, log, console)
        code = proc.wait()
        relay.thread.join(timeout=5)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if log is not sys.stdout:
            log.close()
    return _outcome(code, relay.failure, run_dir, nproc, console)


def _watch_when_ready(proc: subprocess.Popen[str], run_dir: Path, log: IO[str], console: Console) -> None:
    """The dashboard on the run directory once rank 0 has written its config; the job goes on after it closes."""
    from .ui.app import run_watch

    while not (run_dir / "config.toml").is_file():
        if proc.poll() is not None:
            return
        time.sleep(0.1)
    run_watch(run_dir)
    if proc.poll() is None:
        console.print(f"the dashboard closed; the run goes on (workers' output: {escape(str(run_dir / WORKERS_LOG))}). "
                      f"Ctrl-C stops it with a checkpoint; `lgcn-tui watch {escape(str(run_dir))}` reopens the dashboard.")


def _outcome(code: int, failure: dict[str, int], run_dir: Path, nproc: int, console: Console) -> int:
    if code == 0:
        return 0
    rank, exit_code = failure.get("rank"), failure.get("exitcode")
    if exit_code is None:
        how = f"torchrun exited with code {code}"
    elif exit_code < 0:
        how = f"rank {rank} was killed by {signal.Signals(-exit_code).name}"
    else:
        how = f"rank {rank} exited with code {exit_code}"
    newest = ckpt.latest(rundir.RunDir(run_dir).checkpoints) if run_dir.is_dir() else None
    if newest is None:
        saved = "no checkpoint was written."
    else:
        saved = (f"the newest checkpoint is {newest}. Resume with: lgcn-tui train --resume {run_dir} "
                 f"--nproc {nproc} --no-ui")
    console.print(f"[bold red]the job stopped:[/] {escape(how)}; torchrun stopped the other ranks; {escape(saved)}",
                  highlight=False)
    return exit_code if exit_code in MEANINGFUL_EXITS else 1
