"""Shared test fixtures."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from lgcn_tui.run.lifecycle import Run

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Callable[[str], Path]:
    """Locate real data under ``../shared/data``; a missing dataset fails the test that needs it.

    Failing (not skipping) keeps CI honest: the data is meant to be there, and a silent skip
    would hide that the real-data checks stopped running.
    """

    def locate(name: str) -> Path:
        path = SHARED_DATA / name
        if not path.exists():
            pytest.fail(f"real test data missing: {path} (expected ../shared/data/{name} beside "
                        "the repository; see shared/data/README.md)", pytrace=False)
        return path

    return locate


TINY = [
    "run.device=cpu",  # the tests' figures (bit-equal resume above all) are the CPU's, even on a GPU box
    "data.synthetic_users=120",
    "data.synthetic_items=90",
    "data.synthetic_per_user=10",
    "data.synthetic_dim=16",
    "optim.batch_size=128",
    "run.epochs=3",
    "eval.sim_pairs=500",
]


@pytest.fixture
def tiny_config(tmp_path: Path):
    """A seconds-long synthetic config writing its runs under ``tmp_path``; extra overrides win."""
    from lgcn_tui import config

    def make(*overrides: str) -> config.Config:
        return config.resolve({}, "test", [*TINY, f'run.out_dir="{tmp_path / "runs"}"', *overrides])

    return make


class Lines:
    """A child process's output, line by line, for tests that wait on what it says rather than sleeping.

    A reader thread hands each line to a queue; ``until`` blocks on that queue (never on a
    fixed sleep) and fails with everything the process printed when the line does not come.
    """

    def __init__(self, proc: "subprocess.Popen[str]") -> None:
        self.proc, self.seen = proc, []
        self._queue: "queue.Queue[str | None]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def until(self, needle: str, timeout: float = 120.0) -> str:
        """The first line from now on that contains ``needle``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise AssertionError(f"no line with {needle!r} within {timeout:.0f} s:\n{''.join(self.seen)}") from None
            if line is None:
                raise AssertionError(f"the process ended without printing {needle!r}:\n{''.join(self.seen)}")
            self.seen.append(line)
            if needle in line:
                return line

    def rest(self, timeout: float = 120.0) -> str:
        """Everything printed, once the process has ended."""
        self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=timeout)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


def spawn(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> "tuple[subprocess.Popen[str], Lines]":
    """``python -m lgcn_tui ARGS`` with its output followed by ``Lines``; wide, so no line is wrapped."""
    proc = subprocess.Popen([sys.executable, "-m", "lgcn_tui", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "1000", **(env or {})})
    return proc, Lines(proc)


class Recording:
    """A sink that keeps every event a run publishes, for tests that read them back."""

    def __init__(self) -> None:
        self.events: list = []

    def handle(self, event) -> None:
        self.events.append(event)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def train_to_end(cfg, *sinks, **run_args) -> "tuple[Run, str]":
    """A run of ``cfg`` set up, trained until it finishes or stops, and cleaned up; with how it ended.
    ``run_args`` go to ``Run`` (e.g. ``resume=RUN_DIR``)."""
    from lgcn_tui.run.lifecycle import Run

    run = Run(cfg, preset="test", sinks=list(sinks), **run_args)
    return run, str(run.complete())
