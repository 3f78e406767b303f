"""benchmarks/gpu_check.py runs on a GPU only when one is lent; its checks' own code runs here, on the CPU."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture
def gpu_check(monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "DEVICE", "cpu")
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the script runs for real instead")
def test_without_cuda_it_says_so_in_one_line_and_exits_2() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stdout.strip().count("\n") == 0 and "no CUDA device" in done.stdout


def test_the_checks_compare_what_they_claim_to(gpu_check, tmp_path: Path) -> None:
    propagation = gpu_check.check_propagation(tmp_path)
    assert set(propagation) >= {"mean-bag", "hops-perturbed-sparse", "last-bag", "max_relative_difference_cuda_vs_cpu"}
    assert propagation["mean-bag"] == propagation["last-perturbed-bag"] == 0.0  # the CPU against itself
    assert 0 < propagation["max_relative_difference_cuda_vs_cpu"] < 1e-5  # the other kernel rounds otherwise
    evaluation = gpu_check.check_evaluation(tmp_path / "e")
    assert evaluation["max_abs_difference"] == 0.0 and 0 < evaluation["cpu"]["recall@20"] < 1
    assert gpu_check.check_resume(tmp_path / "r")["bit_equal"]  # on the CPU a resume is exact


def test_the_memory_check_builds_its_catalogue_and_plans_it(gpu_check, tmp_path: Path) -> None:
    """At a size the CPU can hold: the run trains on the random catalogue and the plan is of that shape."""
    memory = gpu_check.check_memory(tmp_path, users=400, items=300, interactions=6000, dim=24)
    assert memory["shape"].startswith("400 users + 300 items × 24, ")
    assert memory["planned_step_peak_gb"] > 0 and memory["planned_eval_peak_gb"] > 0
