"""Several processes: real ``torchrun`` jobs of two workers on gloo (CPU), launched by ``train --nproc 2``.

``optim.batch_size`` is the global batch: each of N ranks trains on rows r, r+N, … of it,
from one permutation of the epoch drawn alike on every rank. So two ranks with 64 rows
each must train like one process with the whole 128-row batch: the same losses and the
same tables, to float rounding (the tiny data's 960 pairs also leave an uneven last batch).
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from lgcn_tui import config as cfgmod
from lgcn_tui import presets
from lgcn_tui.contract import commands as cmd
from lgcn_tui.contract import control_file
from lgcn_tui.run import checkpoints as ckpt
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.sinks.jsonl import read_events

from conftest import TINY, spawn, train_to_end

ROOT = Path(__file__).resolve().parents[1]
REL = 1e-5


def overrides(out: Path, *extra: str) -> list[str]:
    return [*TINY, "run.threads=1", 'run.device="cpu"', "checkpoint.keep_last=10", f'run.out_dir="{out}"', *extra]


def demo(out: Path, *extra: str) -> cfgmod.Config:
    """The config ``train --preset demo`` resolves with ``overrides(out, *extra)``, built in this process."""
    path = presets.find("demo")
    return cfgmod.resolve(cfgmod.load_toml(path), str(path), overrides(out, *extra))


def cli_sets(items: list[str]) -> list[str]:
    return [f"--set={item}" for item in items]


def torchrun(args: list[str], timeout: float = 120) -> str:
    """``lgcn-tui ARGS`` (with ``--nproc``) to its end; everything it printed. Fails on a non-zero exit."""
    proc, lines = spawn(args, ROOT)
    out = finish(proc, lines, timeout)
    assert proc.returncode == 0, out
    return out


def finish(proc, lines, timeout: float) -> str:
    """Everything the job printed once it ended; killed, with what it printed, if it does not end in time."""
    import subprocess

    try:
        return lines.rest(timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the launcher passes it to torchrun, which stops its workers
        try:
            proc.wait(45)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise AssertionError(f"the job did not end within {timeout:.0f} s:\n{''.join(lines.seen)}") from None


def the_run(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(e["step"], e["loss"]) for e in read_events(run_dir / "metrics.jsonl") if e["event"] == "step"]


def tables(run_dir: Path) -> dict[str, torch.Tensor]:
    """The user and item tables of a run's newest checkpoint, file or sharded folder."""
    from lgcn_tui.run.loader import load_model

    model = load_model(run_dir, "last").model
    return {"user": model.user.detach(), "item": model.item.detach()}


def assert_same_training(got: Path, want: Path) -> None:
    """Loss trajectory and final tables of two run directories agree to ``REL``."""
    g, w = losses(got), losses(want)
    assert [s for s, _ in g] == [s for s, _ in w]
    assert [loss for _, loss in g] == pytest.approx([loss for _, loss in w], rel=REL)
    last_g, last_w = ckpt.latest(got / "checkpoints"), ckpt.latest(want / "checkpoints")
    assert last_g is not None and last_w is not None and last_g.stem == last_w.stem
    for name, table in tables(got).items():
        torch.testing.assert_close(table, tables(want)[name], rtol=REL, atol=REL * table.abs().max().item())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 3-epoch run trained by one process (in this one) and by two ranks (torchrun)."""
    base = tmp_path_factory.mktemp("dist")
    one, _ = train_to_end(demo(base / "one"))
    assert one.run_dir is not None
    out = torchrun(["train", "--nproc", "2", "--no-ui", *cli_sets(overrides(base / "two"))])
    return {"one": one.run_dir.path, "two": the_run(base / "two"), "out": Path(out), "base": base}


def test_two_ranks_with_half_batches_train_like_one_process_with_the_whole(runs) -> None:
    assert_same_training(runs["two"], runs["one"])
    evals = lambda d: [e["metrics"] for e in read_events(d / "metrics.jsonl") if e["event"] == "eval"]
    for got, want in zip(evals(runs["two"]), evals(runs["one"]), strict=True):
        assert got == pytest.approx(want, rel=1e-6)  # split over the ranks by user, gathered
    started = [e for e in read_events(runs["two"] / "metrics.jsonl") if e["event"] == "run_started"]
    assert "2 ranks (ddp)" in started[0]["device"]
    # Rank 0 alone wrote the directory: one metrics file, one lock released, nothing per rank.
    assert sorted(p.name for p in runs["two"].iterdir()) == ["checkpoints", "config.toml", "control", "metrics.jsonl",
                                                         "run.json"]


def test_a_run_of_two_ranks_resumes_on_one_and_one_resumes_on_two(runs, tmp_path: Path) -> None:
    """From the end of epoch 1, each run continues on the other world size to the same end."""
    import shutil

    two, one = tmp_path / "two", tmp_path / "one"
    shutil.copytree(runs["two"], two)
    shutil.copytree(runs["one"], one)
    first_epoch = lambda d: next(p for _, reason, p in ckpt.listed(d / "checkpoints") if reason == "epoch")

    saved = demo(tmp_path)
    resumed = Run(saved, preset="test", resume=two, checkpoint=first_epoch(two))
    resumed.setup()
    try:
        assert resumed.state.epoch == 1 and resumed.train() == "done"
    finally:
        resumed.cleanup()
    assert_same_training(two, runs["one"])

    torchrun(["train", "--nproc", "2", "--no-ui", "--resume", str(one), "--from", str(first_epoch(one))])
    assert_same_training(one, runs["one"])
    assert [e["resumed"] for e in read_events(one / "metrics.jsonl") if e["event"] == "run_started"] == [False, True]


def test_pause_and_lr_change_from_the_control_file_land_on_both_ranks_at_the_same_step(tmp_path: Path) -> None:
    args = ["train", "--nproc", "2", "--no-ui",
            *cli_sets(overrides(tmp_path / "runs", "run.epochs=400", "eval.every=100"))]
    proc, lines = spawn(args, ROOT)
    try:
        lines.until("rank 0 of 2")  # rank 0 follows the control file from here on
        run_dir = the_run(tmp_path / "runs")
        control_file.send(run_dir, cmd.Pause(source="send"))
        paused = {rank_of(lines.until("paused at")) for _ in range(2)}
        control_file.send(run_dir, cmd.SetLr("user", 0.05, source="send"))
        changed = {rank_of(lines.until("lr set to")) for _ in range(2)}
        control_file.send(run_dir, cmd.Resume(source="send"))
        lines.until("rank 1: running")
        control_file.send(run_dir, cmd.Stop(save=True, source="send"))
        lines.until("rank 1: stopped")
        out = finish(proc, lines, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    # Each rank's own record: its console line, with the step it acted at.
    assert {rank for rank, _ in paused} == {0, 1} and len({step for _, step in paused}) == 1, out
    assert {rank for rank, _ in changed} == {0, 1} and len({step for _, step in changed}) == 1, out
    events = read_events(run_dir / "metrics.jsonl")
    (lr,) = [e for e in events if e["event"] == "lr_changed" and e["source"] == "command"]
    assert lr["step"] == next(iter(changed))[1]
    assert [e["state"] for e in events if e["event"] == "state"][-1] == "stopped"


def rank_of(line: str) -> tuple[int, int]:
    """``(rank, step)`` of a console line: rank 1 prefixes its lines with ``rank 1:``, rank 0 does not."""
    m = re.search(r"step (\d+)", line)
    assert m is not None, line
    return (1 if line.lstrip().startswith("rank 1:") else 0), int(m.group(1))


def test_a_killed_rank_ends_the_job_within_a_minute_with_the_checkpoint_intact(tmp_path: Path) -> None:
    args = ["train", "--nproc", "2", "--no-ui",
            *cli_sets(overrides(tmp_path / "runs", "run.epochs=400", "eval.every=100", "checkpoint.every_steps=5"))]
    proc, lines = spawn(args, ROOT)
    try:
        pid = int(re.search(r"pid (\d+)", lines.until("rank 1 of 2")).group(1))
        checkpoints = lambda: list((tmp_path / "runs").glob("*/checkpoints/step-*-interval.pt"))
        deadline = time.monotonic() + 60
        while not checkpoints() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert checkpoints(), "no interval checkpoint within 60 s"
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        out = finish(proc, lines, 90)
        took = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    assert took < 60, f"the job took {took:.0f} s to stop"
    assert "the job stopped:" in out and "resume with: lgcn-tui train --resume" in out.lower(), out
    (run_dir,) = {p.parents[1] for p in checkpoints()}
    newest = ckpt.latest(run_dir / "checkpoints")
    assert newest is not None
    ckpt.load(newest)  # intact: it loads
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def test_fsdp_trains_like_ddp_with_a_half_of_the_optimizer_state_on_each_rank(runs, tmp_path: Path) -> None:
    from torch.distributed.checkpoint import FileSystemReader

    from lgcn_tui.run.loader import load_model

    out = tmp_path / "fsdp"
    torchrun(["train", "--nproc", "2", "--no-ui", *cli_sets(overrides(out, 'dist.strategy="fsdp"'))])
    fsdp = the_run(out)
    assert losses(fsdp) == pytest.approx(losses(runs["two"]), rel=REL)
    sharded = load_model(fsdp, "last")
    assert sharded.checkpoint.suffix == ".dcp"
    for name, table in tables(fsdp).items():
        torch.testing.assert_close(table, tables(runs["two"])[name], rtol=REL, atol=1e-7)

    # Each rank saved the Adam state it held: its chunk of every state tensor, by row offset.
    meta = FileSystemReader(str(sharded.checkpoint)).read_metadata().state_dict_metadata
    per_rank = [0, 0]
    for key, item in meta.items():
        if key.startswith("optimizer.state.") and key.endswith(("exp_avg", "exp_avg_sq")):
            chunks = sorted(item.chunks, key=lambda c: c.offsets[0])
            assert len(chunks) == 2, key
            for rank, chunk in enumerate(chunks):
                per_rank[rank] += chunk.sizes.numel()
    whole = sum(t.numel() for state in ckpt.load(ckpt.latest(runs["one"] / "checkpoints"))["optimizer"]["state"].values()
                for k, t in state.items() if k in ("exp_avg", "exp_avg_sq"))
    assert sum(per_rank) == whole
    assert all(0.45 * whole <= n <= 0.55 * whole for n in per_rank), (per_rank, whole)

    # DCP reshards on load: the two ranks' checkpoint of epoch 1 resumes in one process to the same end.
    first = next(p for _, reason, p in ckpt.listed(fsdp / "checkpoints") if reason == "epoch")
    resumed = Run(demo(out, 'dist.strategy="fsdp"'), preset="test", resume=fsdp, checkpoint=first)
    resumed.setup()
    try:
        assert resumed.state.epoch == 1 and resumed.train() == "done"
    finally:
        resumed.cleanup()
    assert_same_training(fsdp, runs["one"])
