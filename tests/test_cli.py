"""The command line as a new user meets it: real processes, real files, plain errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Lines, spawn

from lgcn_tui.sinks.jsonl import read_events

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "data.synthetic_users=150", "--set", "data.synthetic_items=100", "--set", "optim.batch_size=64",
        "--set", "eval.sim_pairs=300"]


def lgcn(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lgcn_tui", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "120"})


def only_run(out: Path) -> Path:
    runs = list(out.iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_demo_preset_headless_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    done = lgcn("train", "--preset", "demo", "--no-ui", "--epochs", "1", "--name", "first", "--set", f"run.out_dir={out}")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "popularity baseline" in done.stdout and "recall@20" in done.stdout
    run = only_run(out)
    assert run.name.startswith("first-") and "epochs = 1\n" in (run / "config.toml").read_text()
    assert (run / "config.toml").is_file() and (run / "checkpoints" / "best.pt").is_file()
    events = read_events(run / "metrics.jsonl")
    kinds = {e["event"] for e in events}
    assert {"run_started", "step", "eval", "diagnostics", "checkpoint", "state"} <= kinds
    assert events[-1] == {**events[-1], "event": "state", "state": "done"}

    evaluated = lgcn("eval", str(run), "--split", "both")
    assert evaluated.returncode == 0, evaluated.stderr
    best_step = [e for e in events if e["event"] == "eval" and e["best"]][-1]["step"]
    best_test = [e for e in events if e["event"] == "eval" and e["step"] == best_step and e["split"] == "test"][-1]
    assert f"{best_test['metrics']['recall@20']:.4f}" in evaluated.stdout
    head_row = next(line for line in evaluated.stdout.splitlines() if "test head" in line)
    assert f"{best_test['metrics']['recall@20/head']:.4f}" in head_row

    exported = lgcn("export", str(run), "--checkpoint", "last")
    assert exported.returncode == 0, exported.stderr
    users = np.load(run / "export" / "user_emb.npy")
    items = np.load(run / "export" / "item_emb.npy")
    item_ids = json.loads((run / "export" / "item_ids.json").read_text())
    assert users.shape == (6000, 64) and items.shape == (len(item_ids), 64)

    # A run's checkpoints keep their table row order: read with another one, it is refused by name.
    config = run / "config.toml"
    config.write_text(config.read_text().replace("reorder = true", "reorder = false"))
    refused = lgcn("eval", str(run))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "best.pt" in refused.stderr and "graph.reorder" in refused.stderr


@pytest.mark.parametrize("args, words", [
    (["train", "--preset", "nope", "--no-ui"], "unknown preset 'nope'; available:"),
    (["train", "--no-ui", "--set", "optim.lr=1"], "unknown config key 'optim.lr'; valid keys:"),
    (["train", "--no-ui", "--set", "model.layers=x"], "model.layers must be an integer"),
    (["train", "--no-ui", "--set", "data.format=lightgcn", "--set", "data.path=/nonexistent/dir"], "/nonexistent/dir"),
    (["eval", "/nonexistent/run"], "is not a run directory"),
    (["train", "--no-ui", "--set", "objective.loss=nope"], "objective.loss = 'nope' is not a ranking loss"),
    (["train", "--no-ui", "--from", "x.pt"], "--from x.pt picks the checkpoint of a run to resume; add --resume"),
    pytest.param(["train", "--no-ui", "--set", "run.device=cuda"], "run.device = 'cuda' but PyTorch sees no CUDA",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    (["presets", "show", "nope"], "unknown preset"),
])
def test_user_errors_are_one_plain_message(tmp_path: Path, args: list[str], words: str) -> None:
    result = lgcn(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "runs").exists()  # refused before any work


def test_presets_list_and_show() -> None:
    listed = lgcn("presets")
    assert listed.returncode == 0
    for name in ("demo", "gowalla-paper", "ml100k", "beauty-finetune"):
        assert name in listed.stdout
    shown = lgcn("presets", "show", "gowalla-paper", "--set", "model.layers=2")
    assert shown.returncode == 0
    gowalla = (ROOT.parent / "shared" / "data" / "gowalla").resolve()
    assert f'path = "{gowalla}"' in shown.stdout and "layers = 2" in shown.stdout
    assert "[checkpoint]" in shown.stdout  # resolved: defaults included


def test_a_shipped_preset_finds_its_data_from_any_directory(tmp_path: Path) -> None:
    done = lgcn("train", "--preset", "ml100k", "--no-ui", "--epochs", "1", "--set", "model.dim=8",
                "--set", "eval.sim_pairs=300", cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    run = only_run(tmp_path / "runs")
    assert f'path = "{(ROOT.parent / "shared" / "data" / "ml-100k").resolve()}"' in (run / "config.toml").read_text()


def events_of(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return read_events(path) if path.exists() else []


def start_headless(out: Path, epochs: int) -> tuple[subprocess.Popen, Lines, Path]:
    """A headless demo run, once it has said where it trains."""
    proc, lines = spawn(["train", "--preset", "demo", "--no-ui", *TINY, "--set", f"run.epochs={epochs}",
                         "--set", f"run.out_dir={out}"], cwd=ROOT)
    return proc, lines, Path(lines.until("training demo in ").split(" in ", 1)[1].strip())


def test_a_resume_may_lower_a_rate_and_train_longer_but_not_change_the_model(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    done = lgcn("train", "--preset", "demo", "--no-ui", *TINY, "--set", "run.epochs=2", "--set", f"run.out_dir={out}")
    assert done.returncode == 0, done.stderr
    run = only_run(out)
    refused = lgcn("train", "--resume", str(run), "--no-ui", "--set", "model.dim=8")
    assert refused.returncode == 2 and "--resume cannot change model.dim" in refused.stderr
    longer = lgcn("train", "--resume", str(run), "--no-ui", "--set", "run.epochs=3", "--set", "optim.item_lr=1e-4")
    assert longer.returncode == 0, longer.stderr
    said = " ".join(longer.stdout.split())  # the console wraps long lines
    assert "resumed with changed settings" in said and "run.epochs: 2 -> 3; optim.item_lr: 0.003 -> 0.0001" in said
    assert "epochs = 3" in (run / "config.toml").read_text()
    events = events_of(run)
    assert {e["epoch"] for e in events if e["event"] == "step"} == {0, 1, 2}
    assert events[-1]["state"] == "done"
    (run / "run.json").unlink()
    for args in (["train", "--resume", str(run), "--no-ui"], ["eval", str(run)]):
        broken = lgcn(*args)
        assert broken.returncode == 2 and "run.json is missing" in " ".join(broken.stderr.split())
        assert "Traceback" not in broken.stderr


def test_sigint_saves_a_checkpoint_and_resume_finishes_the_run(tmp_path: Path) -> None:
    proc, lines, run = start_headless(tmp_path / "runs", epochs=15)
    try:
        proc.send_signal(signal.SIGINT)
        output = lines.rest()
    finally:
        proc.kill()
    assert proc.returncode == 130, output
    assert f"resume with: lgcn-tui train --resume {run} --no-ui" in output
    stops = list((run / "checkpoints").glob("*-stop.pt"))
    assert len(stops) == 1
    done = len([e for e in events_of(run) if e["event"] == "step"])
    assert stops[0].name == f"step-{done:09d}-stop.pt"

    resumed = lgcn("train", "--resume", str(run), "--no-ui", cwd=ROOT, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming" in resumed.stdout
    events = events_of(run)
    steps = [e["step"] for e in events if e["event"] == "step"]
    per_epoch = events[0]["steps_per_epoch"]
    assert steps == list(range(15 * per_epoch))
    assert events[-1]["state"] == "done"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_also_stop_a_headless_run_with_a_checkpoint(tmp_path: Path, signum: int) -> None:
    proc, lines, run = start_headless(tmp_path / "runs", epochs=50)
    try:
        proc.send_signal(signum)
        output = lines.rest()
    finally:
        proc.kill()
    assert proc.returncode == 130, output
    assert f"{signal.Signals(signum).name}: stopping after this step" in output
    assert len(list((run / "checkpoints").glob("*-stop.pt"))) == 1
    assert f"resume with: lgcn-tui train --resume {run} --no-ui" in output


def test_control_file_steers_a_headless_run(tmp_path: Path) -> None:
    proc, lines, run = start_headless(tmp_path / "runs", epochs=200)
    try:
        assert lgcn("send", str(run), "pause").returncode == 0
        lines.until("paused at epoch")
        assert lgcn("send", str(run), "lr", "item", "0.002").returncode == 0
        assert lgcn("send", str(run), "checkpoint").returncode == 0
        saved = lines.until("checkpoint (manual)")
        # Paused means held: the checkpoint taken while paused is at the step the pause began.
        paused_at = [e for e in events_of(run) if e["event"] == "state" and e["state"] == "paused"][-1]["step"]
        count = len([e for e in events_of(run) if e["event"] == "step"])
        assert count == paused_at and f"step-{paused_at:09d}-manual.pt" in saved
        second = lgcn("train", "--resume", str(run), "--no-ui")  # the run is still owned by proc
        assert second.returncode == 2 and f"pid {proc.pid} on host " in second.stderr, second.stderr
        assert "Traceback" not in second.stderr and "lgcn-tui watch" in second.stderr
        assert lgcn("send", str(run), "resume").returncode == 0
        lines.until(" valid ")  # an evaluation: the run trained on after resuming
        for value, reason in (("0", "must be positive"), ("-1", "must be positive"), ("x", "not a number")):
            bad = lgcn("send", str(run), "lr", "item", value)
            assert bad.returncode == 2 and reason in bad.stderr, bad.stderr
            assert "Traceback" not in bad.stderr
        with open(run / "control", "a") as fh:
            fh.write('{"cmd": "explode"}\n{"cmd": "stop"}\n')
        output = lines.rest()
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert "unknown command 'explode'" in output
    events = events_of(run)
    commands = [e["command"] for e in events if e["event"] == "command"]
    assert commands == ["pause", "set_lr", "checkpoint", "resume", "stop"]
    assert [e["lr"] for e in events if e["event"] == "lr_changed"] == [0.002]
    first_after = [e for e in events if e["event"] == "step"][count]
    assert first_after["lr_item"] == pytest.approx(0.002)
    assert list((run / "checkpoints").glob("*-manual.pt"))


def test_runs_are_named_from_the_folder_that_holds_runs(tmp_path: Path) -> None:
    """run.out_dir defaults to runs/ of the working directory; every command takes a run's name from there."""
    done = lgcn("train", "--preset", "demo", "--no-ui", *TINY, "--set", "run.epochs=1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = only_run(tmp_path / "runs").relative_to(tmp_path)
    assert f"lgcn-tui watch {run}" in done.stdout and "resume with" not in done.stdout
    listed = lgcn("runs", cwd=tmp_path)
    assert listed.returncode == 0 and f"{run.name} " in listed.stdout and " done " in listed.stdout
    evaluated = lgcn("eval", "latest", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"{run}/checkpoints/best.pt" in "".join(evaluated.stdout.split())  # the table's title wraps
    refused = lgcn("send", "demo", "stop", cwd=tmp_path)
    assert refused.returncode == 2 and "is done" in refused.stderr and "Traceback" not in refused.stderr
    missing = lgcn("export", "nothing-like-it", cwd=tmp_path)
    assert missing.returncode == 2 and "no run named 'nothing-like-it' under runs/" in missing.stderr
