"""Runs by name: `lgcn-tui runs`, names and prefixes for every command, `send` that checks the run, `compare`.

Runs are real tiny runs trained in this process; the CLI is a real process in the folder
that holds ``runs/``, so it finds them by name as a user's shell would, and checks the
lock of this process (alive) or of one that is gone.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import train_to_end
from rich.console import Console

from lgcn_tui import __version__
from lgcn_tui.contract import commands as cmd
from lgcn_tui.contract import events as ev
from lgcn_tui.errors import UserError
from lgcn_tui.run import catalog
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.run.lock import LOCK_FILE, Holder
from lgcn_tui.sinks.jsonl import read_events


def lgcn(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lgcn_tui", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200"})


class Fail:
    """A sink that raises ``error`` once, at the ``at``-th step it sees: a failure inside training."""

    def __init__(self, error: BaseException, at: int = 3) -> None:
        self.error, self.left = error, at

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepMetrics):
            self.left -= 1
            if self.left == 0:
                raise self.error

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Killed(BaseException):
    """Not an ``Exception``: the run cannot record it, as it cannot record a SIGKILL."""


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def wait_for_state(run: Run, state: str, timeout: float = 60.0) -> None:
    assert run.run_dir is not None
    deadline = time.monotonic() + timeout
    while catalog.read_record(run.run_dir.metrics).state != state:
        assert time.monotonic() < deadline, f"the run never recorded {state!r}"
        time.sleep(0.05)


def states(cwd: Path) -> dict[str, dict]:
    listed = lgcn("runs", "--json", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    return {row["name"].split("-")[0]: row for row in json.loads(listed.stdout)}


def test_runs_lists_every_state_with_progress_and_best_recall(tmp_path: Path, tiny_config) -> None:
    done, _ = train_to_end(tiny_config('run.name="done"'))
    with pytest.raises(RuntimeError):
        train_to_end(tiny_config('run.name="failed"'), Fail(RuntimeError("boom")))

    killed = Run(tiny_config('run.name="killed"'), preset="test", sinks=[Fail(Killed())])
    killed.setup()
    with pytest.raises(Killed):
        killed.train()
    assert killed.run_dir is not None
    lock = killed.run_dir.path / LOCK_FILE
    lock.write_text(json.dumps(asdict(Holder(dead_pid(), socket.gethostname(), time.time(), "lgcn-tui train"))))
    killed.cleanup()  # the lock is no longer ours, so it stays: as a killed trainer leaves it

    live = Run(tiny_config('run.name="live"', "run.epochs=100000"), preset="test")
    live.setup()
    trainer = threading.Thread(target=live.train)
    live.send(cmd.Pause())
    trainer.start()
    try:
        wait_for_state(live, "paused")
        table = lgcn("runs", cwd=tmp_path)
        assert table.returncode == 0, table.stderr
        rows = {line.split()[0].split("-")[0]: line for line in table.stdout.splitlines() if "-20" in line}
        for name, state in (("done", "done"), ("failed", "error"), ("killed", "interrupted"), ("live", "paused")):
            assert f" {state} " in rows[name], table.stdout
        found = states(tmp_path)
        assert {name: row["state"] for name, row in found.items()} == {
            "done": "done", "failed": "error", "killed": "interrupted", "live": "paused"}
        assert found["killed"]["recorded_state"] == "running" and found["killed"]["holder"] is None
        assert found["live"]["holder"]["pid"] == os.getpid()

        assert done.run_dir is not None
        events = read_events(done.run_dir.metrics)
        best = max(e["metrics"]["recall@20"] for e in events
                   if e["event"] == "eval" and e["model"] == "lightgcn" and e["split"] == "valid")
        assert found["done"]["best_recall"] == best and f"{best:.4f}" in rows["done"]
        per_epoch = events[0]["steps_per_epoch"]
        assert found["done"]["steps"] == found["done"]["total_steps"] == 3 * per_epoch
        assert found["done"]["epochs_done"] == 3 and f"3/3 {3 * per_epoch}/{3 * per_epoch}" in " ".join(rows["done"].split())

        asked = lgcn("send", "live", "resume", cwd=tmp_path)
        assert asked.returncode == 0, asked.stderr
        assert "asked run" in asked.stdout and "to resume" in asked.stdout and "{" not in asked.stdout

        live.send(cmd.Resume())
        wait_for_state(live, "running")
        assert states(tmp_path)["live"]["state"] == "running"
    finally:
        live.send(cmd.Stop())
        trainer.join(60)
        live.cleanup()
    assert states(tmp_path)["live"]["state"] == "stopped"


def test_a_run_is_named_by_path_name_unique_prefix_or_latest(tmp_path: Path, tiny_config) -> None:
    runs = [train_to_end(tiny_config(f'run.name="{name}"'))[0].run_dir for name in ("alpha", "alpha", "beta")]
    assert all(r is not None for r in runs)
    first, second, beta = (r.path for r in runs if r is not None)
    root = tmp_path / "runs"
    assert first.name != second.name and first.name.startswith("alpha-") and second.name.startswith("alpha-")
    assert catalog.resolve("beta", root) == beta
    assert catalog.resolve(second.name, root) == second
    assert catalog.resolve(str(first), root) == first
    assert catalog.resolve("latest", root) == beta

    with pytest.raises(UserError) as ambiguous:
        catalog.resolve("alpha", root)
    assert "'alpha' is the start of 2 run names" in str(ambiguous.value)
    assert first.name in str(ambiguous.value) and second.name in str(ambiguous.value)
    with pytest.raises(UserError) as typo:
        catalog.resolve("bta", root)
    assert "no run named 'bta'" in str(typo.value) and f"closest names: {beta.name}" in str(typo.value)
    with pytest.raises(UserError) as none:
        catalog.resolve("latest", tmp_path / "empty")
    assert "there is none there" in str(none.value)

    refused = lgcn("send", "alpha", "pause", cwd=tmp_path)  # runs/ of the working directory, as by default
    assert refused.returncode == 2 and "is the start of 2 run names" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_send_to_a_finished_run_is_refused_with_a_sentence(tmp_path: Path, tiny_config) -> None:
    done, _ = train_to_end(tiny_config('run.name="finished"'))
    assert done.run_dir is not None
    refused = lgcn("send", "finished", "pause", cwd=tmp_path)
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 2, refused.stdout
    named = Path("runs") / done.run_dir.path.name  # as found from the working directory
    assert f"run {named} is done (finished at " in said and "nothing to send to" in said
    assert f"lgcn-tui train --resume {named}" in said
    assert "{" not in said and "Traceback" not in said
    assert not (done.run_dir.path / "control").exists()


def test_compare_shows_only_differing_keys_and_writes_a_png(tmp_path: Path, tiny_config) -> None:
    a, _ = train_to_end(tiny_config('run.name="three"'))
    b, _ = train_to_end(tiny_config('run.name="two"', "model.layers=2"))
    assert a.run_dir is not None and b.run_dir is not None
    plot = tmp_path / "overlay.png"
    shown = lgcn("compare", "three", "two", "--plot", str(plot), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    first_cells = [line.split("│")[1].strip() for line in shown.stdout.splitlines() if line.startswith("│")]
    keys = [cell for cell in first_cells if "." in cell]  # config keys are section.key; metric rows are not
    assert keys == ["model.layers", "run.name"], shown.stdout
    assert "optim.batch_size" not in shown.stdout and "data.synthetic_users" not in shown.stdout
    final = [e for e in read_events(b.run_dir.metrics) if e["event"] == "eval" and e["model"] == "lightgcn"
             and e["split"] == "test"][-1]["metrics"]["ndcg@20"]
    assert f"{final:.4f}" in next(line for line in shown.stdout.splitlines() if "final test ndcg@20" in line)
    evals = [e for e in read_events(b.run_dir.metrics) if e["event"] == "eval" and e["model"] == "lightgcn"]
    chosen = [e["step"] for e in evals if e["best"]][-1]  # only valid, the split that picks best.pt, is marked
    at_best = next(e for e in evals if e["step"] == chosen and e["split"] == "test")["metrics"]["recall@20"]
    assert f"{at_best:.4f}" in next(line for line in shown.stdout.splitlines() if "best test recall@20" in line)
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and plot.stat().st_size > 10_000
    alone = lgcn("compare", "three", cwd=tmp_path)
    assert alone.returncode == 2 and "compare needs at least two runs" in alone.stderr


def test_version_and_short_help(tmp_path: Path) -> None:
    version = lgcn("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"lgcn-tui {__version__}"
    for args in (["-h"], ["runs", "-h"]):
        helped = lgcn(*args, cwd=tmp_path)
        assert helped.returncode == 0 and "Usage:" in helped.stdout, helped.stderr


def test_headless_says_how_to_watch_at_start_and_how_to_resume_when_stopped(tiny_config) -> None:
    from lgcn_tui.headless import run_headless

    run = Run(tiny_config(), preset="test")
    run.send(cmd.Stop())
    out = io.StringIO()
    assert run_headless(run, Console(file=out, width=60)) == 0
    assert run.run_dir is not None
    said = out.getvalue()
    watch, resume = f"lgcn-tui watch {run.run_dir.path}", f"lgcn-tui train --resume {run.run_dir.path} --no-ui"
    assert watch in said and resume in said and said.index(watch) < said.index(resume)

    finished = Run(tiny_config(), preset="test")
    out = io.StringIO()
    assert run_headless(finished, Console(file=out, width=60)) == 0
    assert "lgcn-tui watch" in out.getvalue() and "resume with" not in out.getvalue()


def test_the_record_ignores_a_line_still_being_written(tiny_config) -> None:
    done, _ = train_to_end(tiny_config())
    assert done.run_dir is not None
    before = catalog.read_record(done.run_dir.metrics)
    with open(done.run_dir.metrics, "a") as fh:
        fh.write('{"event": "state", "t": 1.0, "epoch": 0, "step": 0, "state": "runn')
    assert catalog.read_record(done.run_dir.metrics) == before and before.state == "done"
