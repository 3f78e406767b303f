"""Training numbers stay what they were: a pinned small run against a recorded file.

``tests/golden/tiny_run.json`` holds every step's loss terms and every evaluation's
metrics of the run below (the test fixture's data, one thread, CPU, seed 7), recorded
before the run lifecycle was refactored. A change that means to alter training numbers
regenerates it with ``LGCN_REGENERATE_GOLDEN=1 pytest tests/test_golden.py`` and says why
in its commit; any other change must leave it green.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from lgcn_tui.headless import run_headless
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.sinks.jsonl import read_events

GOLDEN = Path(__file__).parent / "golden" / "tiny_run.json"


def record(metrics: Path) -> dict:
    """The numbers that must not change, without timings or event layout."""
    steps, evals = [], []
    for e in read_events(metrics):
        if e["event"] == "step":
            steps.append({"step": e["step"], "loss": e["loss"], "terms": e["terms"]})
        elif e["event"] == "eval":
            evals.append({"epoch": e["epoch"], "split": e["split"], "model": e["model"], "metrics": e["metrics"]})
    return {"steps": steps, "evals": evals}


def test_a_pinned_run_reproduces_the_recorded_losses_and_metrics(tiny_config) -> None:
    run = Run(tiny_config("run.threads=1", 'run.device="cpu"', "run.seed=7"), preset="golden")
    assert run_headless(run, Console(quiet=True)) == 0
    assert run.run_dir is not None
    got = record(run.run_dir.metrics)
    if os.environ.get("LGCN_REGENERATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1))
    want = json.loads(GOLDEN.read_text())
    assert [s["step"] for s in got["steps"]] == [s["step"] for s in want["steps"]]
    for g, w in zip(got["steps"], want["steps"]):
        assert g["loss"] == pytest.approx(w["loss"], rel=1e-6), f"step {g['step']}"
        assert g["terms"] == pytest.approx(w["terms"], rel=1e-6), f"step {g['step']}"
    assert [(e["epoch"], e["split"], e["model"]) for e in got["evals"]] == \
        [(e["epoch"], e["split"], e["model"]) for e in want["evals"]]
    for g, w in zip(got["evals"], want["evals"]):
        assert g["metrics"] == pytest.approx(w["metrics"], rel=1e-6), f"{g['model']} epoch {g['epoch']} {g['split']}"
