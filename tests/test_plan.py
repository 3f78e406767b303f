"""`lgcn-tui plan` against reality: the bytes of a real run's tensors, a checkpoint on disk, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lgcn_tui import plan
from lgcn_tui.run import checkpoints as ckpt
from lgcn_tui.run.lifecycle import Run

ROOT = Path(__file__).resolve().parents[1]
BIG = ["--users", "1000000", "--items", "1000000", "--interactions", "100000000", "--dim", "768"]


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors``: what they really hold (views counted once)."""
    seen = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors if t is not None}
    return sum(seen.values())


def tensors_in(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_in(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    return []


def measured(run: Run) -> dict[str, int]:
    """The persistent figures as the run holds them."""
    model, adj = run.model, run.adj
    optim = [t for state in run.optimizer.state.values() for t in state.values()]
    csr = [adj.matrix.crow_indices(), adj.matrix.col_indices(), adj.matrix.values()]
    if adj.transpose is not adj.matrix:
        csr += [adj.transpose.crow_indices(), adj.transpose.col_indices(), adj.transpose.values()]
    kept = [t for good in run.guard.kept for t in tensors_in([good.model, good.optimizer])]
    return {"parameters": storage_bytes(model.parameters()),
            "gradients": storage_bytes(p.grad for p in model.parameters()),
            "optimizer state": storage_bytes(optim),
            "start vectors": storage_bytes([model.pretrained, model.item_start]),
            "adjacency": storage_bytes([*csr, adj.position, model.position]),
            "guard copies": storage_bytes(kept)}


@pytest.mark.parametrize("overrides", [
    [],
    ["model.item_mode=frozen", "optim.name=adam"],
    ["model.item_mode=residual"],
    ["optim.name=adafactor", "graph.norm=mean"],
    ["model.item_init=xavier", "model.dim=48", "graph.reorder=false"],
])
def test_the_plan_matches_the_tensors_of_a_trained_run_and_its_checkpoint(tiny_config, overrides: list[str]) -> None:
    # keep_every=1: the guard holds its two copies by the end of the epoch, as a long run does.
    cfg = tiny_config("data.synthetic_dim=32", "run.epochs=1", "divergence.keep_every=1", *overrides)
    run = Run(cfg, preset="test")
    assert run.complete() == "done" and run.state.step >= 3
    assert len(run.guard.kept) == plan.GUARD_COPIES
    # The last evaluation dropped the gradients, as the next step would; one more step holds them as training does.
    users, pos, neg = run.sampler.epoch(run.generator)
    run._step(users[:64], pos[:64], neg[:64])
    planned = plan.estimate(plan.shape_for(cfg, plan.Options(), preset="test"))
    assert planned.shape.interactions == len(run.dataset.train) and planned.shape.dim == run.model.dim
    for name, real in measured(run).items():
        assert real > 0
        figure = planned.host if name == "guard copies" else planned.figure(name)
        assert abs(figure - real) <= 0.1 * real, (name, figure, real)
    assert run.run_dir is not None
    written = ckpt.latest(run.run_dir.checkpoints)
    assert written is not None
    on_disk = written.stat().st_size
    assert abs(planned.checkpoint - on_disk) <= 0.1 * on_disk, (planned.checkpoint, on_disk)


def test_the_figures_of_a_million_items_by_768_by_hand() -> None:
    shape = plan.Shape(users=10**6, items=10**6, interactions=10**8, dim=768)
    table = 2 * 10**6 * 768 * 4  # one fp32 node table: 6.1 GB
    got = plan.estimate(shape)
    assert got.figure("parameters") == table and got.figure("gradients") == table
    assert got.figure("optimizer state") == 2 * table + 8  # exp_avg + exp_avg_sq (+ two step counters)
    assert got.figure("start vectors") == table // 2 + table // 4  # fp32 pretrained + bf16 item_start
    assert got.figure("adjacency") == (2 * 10**6 + 1) * 4 + 2 * 10**8 * 8 + 2 * 2 * 10**6 * 8
    sharded = plan.estimate(plan.Shape(users=10**6, items=10**6, interactions=10**8, dim=768, strategy="fsdp",
                                       world_size=4))
    assert sharded.figure("parameters") == table // 4 and sharded.figure("optimizer state") == (2 * table + 8) // 4
    assert sharded.figure("adjacency") == got.figure("adjacency")  # every rank holds the whole graph
    assert sharded.checkpoint == got.checkpoint  # all ranks' shards together
    assert plan.estimate(plan.Shape(users=10**6, items=10**6, interactions=10**8, dim=768,
                                    optimizer="adafactor")).figure("optimizer state") == 2 * (10**6 + 768) * 4 + 8


def lgcn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lgcn_tui", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "120"})


def test_plan_names_the_largest_item_the_verdict_and_what_would_shrink_it() -> None:
    small = lgcn("plan", *BIG, "--memory", "40GB")
    assert small.returncode == 0, small.stderr
    assert "largest item: evaluation work (19.2 GB)" in small.stdout
    assert "does not fit: peak 43.9 GB of 40.0 GB" in small.stdout
    assert "guard copies     40.0 GB  pinned host memory, not the device's" in small.stdout
    assert "Adafactor: --set optim.name=adafactor" in small.stdout and "FSDP across 4 GPUs" in small.stdout
    large = lgcn("plan", *BIG, "--memory", "141GB", "--json")
    answer = json.loads(large.stdout)
    assert answer["fits"] and answer["memory"] == 141 * 10**9 and answer["largest"]["name"] == "evaluation work"
    assert answer["items"]["parameters"] == 2 * 10**6 * 768 * 4 and answer["peak"] == answer["eval_peak"]
    assert answer["host_guard_copies"] == 2 * (3 * 2 * 10**6 * 768 * 4 + 10**6 * 768 * 2 + 2 * 10**6 * 8 + 4 + 8)  # (table + two moments) + bf16 item_start + node order + counters


def test_plan_counts_a_presets_data() -> None:
    counted = lgcn("plan", "--preset", "demo", "--memory", "1GB", "--json", "--set", "data.synthetic_users=150",
                   "--set", "data.synthetic_items=100")
    assert counted.returncode == 0, counted.stderr
    shape = json.loads(counted.stdout)["shape"]
    assert shape["users"] == 150 and shape["items"] == 100 and 0 < shape["interactions"] < 150 * 100


@pytest.mark.parametrize("args, words", [
    (["--memory", "80XB"], "--memory '80XB' is not a memory size; write a number and a unit, e.g. 80GB"),
    (["--memory", "0GB"], "--memory '0GB' must be more than zero"),
    (["--users", "10", "--memory", "8GB"], "give all three of --users, --items and --interactions"),
    (["--memory", "8GB"], "plan needs a catalogue: --preset NAME"),
    (["--users", "3", "--items", "3", "--interactions", "10", "--memory", "8GB"], "--interactions 10 is more than"),
    ([*BIG, "--optimizer", "sgd", "--memory", "8GB"], "--optimizer 'sgd' is not valid; choose one of: adam, adamw"),
    pytest.param([*BIG], "--memory is needed here", marks=pytest.mark.skipif(torch.cuda.is_available(),
                                                                              reason="the GPU's memory is the default")),
])
def test_bad_plan_input_is_one_plain_message(args: list[str], words: str) -> None:
    result = lgcn("plan", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert words in " ".join(result.stderr.split()), result.stderr
