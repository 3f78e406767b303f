"""The one prepared GPU check: run it when a GPU is lent; it writes a JSON report in under 8 minutes.

    python benchmarks/gpu_check.py --out gpu_check.json          # one GPU
    python benchmarks/gpu_check.py --out gpu_check.json --dist   # also 1 vs all GPUs (bench_dist.py)

Each check runs on its own and records its figures or its error, so one failure does not
hide the others:

- ``propagation``: CUDA forward rows and gradients of a small graph (the accelerator's path of
  full products, both kernels) against the CPU's row-slice path, for each layer combination,
  clean and through the perturbed path; and the bf16 products' error.
- ``evaluation``: full-ranking Recall/NDCG of one trained tiny model scored on CUDA and on the CPU.
- ``resume``: a tiny run trained to its end against the same run stopped and resumed on CUDA,
  with ``run.deterministic`` on and XSimGCL's step noise.
- ``syncs``: host–device synchronisations per training step between publish points
  (``set_sync_debug_mode``), for BPR, softmax and XSimGCL.
- ``step``: Gowalla step time at d=64 and d=768, fp32 and bf16 (``run.amp``), for each product
  kernel (``graph.kernel``), by CUDA events, against the step's product floor (the 2K full
  products it runs, timed alone with the same kernel and dtype), and what ``auto`` chose.
- ``epoch``: two epochs of ``gowalla-xsimgcl``: seconds per epoch, test Recall@20, peak memory.
- ``memory``: one synthetic catalogue of 1M users + 1M items × 768 (10M interactions, Adafactor):
  three steps (the guard keeping a state before each) and one evaluation, their peaks by
  ``torch.cuda.max_memory_allocated`` against ``lgcn-tui plan``'s figures for the same shape.

Without CUDA it says so in one line and exits with code 2. Figures that need data read
``../shared/data`` beside the repository (as the presets do).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lgcn_tui import config as cfgmod  # noqa: E402
from lgcn_tui import presets  # noqa: E402
from lgcn_tui.contract import commands as cmd  # noqa: E402
from lgcn_tui.contract import events as ev  # noqa: E402
from lgcn_tui.graph.adjacency import build_adjacency  # noqa: E402
from lgcn_tui.graph.propagate import spmm  # noqa: E402
from lgcn_tui.model.lightgcn import LightGCN  # noqa: E402
from lgcn_tui.run.lifecycle import Run  # noqa: E402
from lgcn_tui.train.ranking import evaluate_split  # noqa: E402

# The device the checks run on; tests/test_gpu_check.py sets "cpu" to run the checks' own code in CI.
DEVICE = "cuda"
TINY = ["data.synthetic_users=300", "data.synthetic_items=200", "data.synthetic_per_user=10", "optim.batch_size=128",
        "run.epochs=3", "eval.sim_pairs=0", "eval.ks=[20]"]


def tiny(out: Path, *extra: str) -> cfgmod.Config:
    return cfgmod.resolve({}, "gpu_check", [*TINY, f"run.device={DEVICE}", f'run.out_dir="{out}"', *extra])


def gowalla(out: Path, preset: str, *extra: str) -> cfgmod.Config:
    return cfgmod.from_preset(presets.find(preset), [f'run.out_dir="{out}"', f"run.device={DEVICE}",
                                                     "eval.sim_pairs=0", *extra])


def trained(cfg: cfgmod.Config, *sinks: ev.Sink, resume: Path | None = None) -> Run:
    """The run of ``cfg`` set up, trained until it ends or a ``StopAt`` sink stops it, cleaned up."""
    run = Run(cfg, preset="gpu_check", sinks=list(sinks), resume=resume)
    for sink in sinks:
        if isinstance(sink, StopAt):
            sink.run = run
    run.complete()
    return run


def check_propagation(_out: Path) -> dict[str, Any]:
    pairs = np.unique(np.stack([np.arange(400) % 37, (np.arange(400) * 7) % 53], 1), axis=0)
    users, items = torch.tensor([0, 5, 5, 36]), torch.tensor([1, 52, 3, 3, 17])
    result: dict[str, Any] = {}

    def outputs(device: str, combine: str, perturbed: bool, kernel: str, dtype: torch.dtype) -> list[torch.Tensor]:
        torch.manual_seed(0)
        adj = build_adjacency(pairs, 37, 53, "symmetric", reorder=True).to(torch.device(device), dtype)
        adj.kernel = kernel
        model = LightGCN(37, 53, 16, 3, combine, "learnable", None, position=adj.position).to(device)
        hook = (lambda _k, h: h) if perturbed else None
        rows = model(adj, users.to(device), items.to(device), perturb=hook)
        sum((o.double() * torch.arange(o.numel(), device=device).view_as(o)).sum() for o in rows[:4]).backward()
        return [t.detach().double().cpu() for t in (*rows[:4], model.user.grad, model.item.grad)]

    def gap(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
        return max(float((x - y).abs().max() / y.abs().max().clamp_min(1e-12)) for x, y in zip(a, b))

    for combine in ("mean", "hops", "last"):
        for perturbed in (False, True):
            name = f"{combine}{'-perturbed' if perturbed else ''}"
            reference = outputs("cpu", combine, perturbed, "bag", torch.float32)
            for kernel in ("bag", "sparse"):
                result[f"{name}-{kernel}"] = gap(outputs(DEVICE, combine, perturbed, kernel, torch.float32), reference)
            if DEVICE == "cuda":
                result[f"{name}-bf16-relative_error"] = gap(outputs(DEVICE, combine, perturbed, "bag", torch.bfloat16),
                                                            reference)
    result["max_relative_difference_cuda_vs_cpu"] = max(v for k, v in result.items() if "bf16" not in k)
    return result


def check_evaluation(out: Path) -> dict[str, Any]:
    run = trained(tiny(out / "eval"))
    users, items = run.model.final_embeddings(run.adj)
    on_cuda = evaluate_split(users, items, run.dataset, "test", [20], 64)
    on_cpu = evaluate_split(users.cpu(), items.cpu(), run.dataset, "test", [20], 64)
    return {"cuda": on_cuda, "cpu": on_cpu,
            "max_abs_difference": max(abs(on_cuda[k] - on_cpu[k]) for k in on_cuda)}


class StopAt:
    """Stops its run, with a checkpoint, after ``step`` steps."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.run: Run | None = None

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepMetrics) and event.step + 1 == self.step and self.run is not None:
            self.run.send(cmd.Stop(save=True))

    def flush(self) -> None: ...

    def close(self) -> None: ...


def check_resume(out: Path) -> dict[str, Any]:
    noisy = ['objective.terms=["reg", "xsimgcl"]', "objective.cl_noisy_ranking=true", "run.deterministic=true"]
    whole = trained(tiny(out / "whole", *noisy))
    first = trained(tiny(out / "parts", *noisy), StopAt(5))
    resumed = trained(tiny(out / "parts", *noisy), resume=first.run_dir.path)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    return {"bit_equal": all(torch.equal(a[k], b[k]) for k in a),
            "max_abs_difference": max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())}


def check_syncs(out: Path) -> dict[str, Any]:
    result = {}
    for name, extra in {"bpr": [], "softmax": ['objective.loss="softmax"'],
                        "xsimgcl": ['objective.terms=["reg", "xsimgcl"]', "objective.cl_noisy_ranking=true"]}.items():
        run = Run(tiny(out / f"syncs-{name}", *extra), preset="gpu_check")
        run.setup()
        try:
            users, pos, neg = (run._on_device(t) for t in run.sampler.epoch(torch.Generator().manual_seed(0)))
            run._step(users[:128], pos[:128], neg[:128])
            torch.cuda.set_sync_debug_mode("warn")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for s in range(1, 11):
                    run._step(users[s * 128:(s + 1) * 128], pos[s * 128:(s + 1) * 128], neg[s * 128:(s + 1) * 128])
            torch.cuda.set_sync_debug_mode("default")
        finally:
            run.cleanup()
        result[name] = {"syncs_per_step": len(caught) / 10,
                        "kinds": sorted({str(w.message).splitlines()[0][:160] for w in caught})}
    return result


def cuda_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def check_step(out: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for dim in (64, 768):
        for amp in (False, True):
            for kernel in ("auto", "bag", "sparse"):
                label = f"d{dim}-{'bf16' if amp else 'fp32'}-{kernel}"
                cfg = gowalla(out / label, "gowalla-paper", f"model.dim={dim}", f"run.amp={str(amp).lower()}",
                              f"graph.kernel={kernel}")
                run = Run(cfg, preset="gpu_check")
                run.setup()
                try:
                    if kernel == "auto":
                        result[label] = {"chose": run.adj.kernel, "measured": run._facts}
                        continue
                    users, pos, neg = (run._on_device(t) for t in run.sampler.epoch(torch.Generator().manual_seed(0)))
                    bs, count = cfg.optim.batch_size, [0]

                    def step() -> None:
                        s = count[0] % 300
                        count[0] += 1
                        run._unchecked.append(
                            run._step(users[s * bs:(s + 1) * bs], pos[s * bs:(s + 1) * bs], neg[s * bs:(s + 1) * bs]))

                    step_ms = cuda_ms(step, 30)
                    run._unchecked.clear()
                    x = torch.randn(run.adj.n_nodes, dim, device="cuda", dtype=run.adj.dtype)
                    products = 2 * cfg.model.layers
                    floor = cuda_ms(lambda: [spmm(run.adj.matrix, x, kernel) for _ in range(products)], 10)
                    result[label] = {
                        "step_ms": step_ms, "floor_ms": floor, "products_per_step": products,
                        "step_over_floor": step_ms / floor, "epoch_s_estimate": step_ms * run.steps_per_epoch / 1000,
                        "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30}
                finally:
                    run.cleanup()
                torch.cuda.reset_peak_memory_stats()
    return result


class Epochs:
    def __init__(self) -> None:
        self.started: float | None = None
        self.points: list[dict[str, float]] = []

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepMetrics) and self.started is None:
            self.started = time.perf_counter()
        elif isinstance(event, ev.EvalResult) and event.model == "lightgcn" and event.split == "test":
            self.points.append({"epoch": event.epoch, "seconds": time.perf_counter() - (self.started or 0.0),
                                "recall@20": event.metrics["recall@20"]})

    def flush(self) -> None: ...

    def close(self) -> None: ...


def check_epoch(out: Path) -> dict[str, Any]:
    torch.cuda.reset_peak_memory_stats()
    epochs = Epochs()
    trained(gowalla(out / "epoch", "gowalla-xsimgcl", "run.epochs=2"), epochs)
    return {"preset": "gowalla-xsimgcl", "evaluations": epochs.points,
            "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30}


def check_memory(out: Path, users: int = 10**6, items: int = 10**6, interactions: int = 10**7,
                 dim: int = 768) -> dict[str, Any]:
    """``lgcn-tui plan``'s step and evaluation peaks against the allocator's, on a catalogue too large
    for the synthetic generator (it builds a dense users × items matrix): random pairs and vectors."""
    from lgcn_tui import plan
    from lgcn_tui.data.dataset import build_dataset
    from lgcn_tui.run import lifecycle

    rng = np.random.default_rng(0)
    pairs = {split: (rng.integers(0, users, n), rng.integers(0, items, n))
             for split, n in (("train", interactions), ("valid", interactions // 50), ("test", interactions // 50))}
    dataset = build_dataset("gpu-check-memory", pairs)
    dataset.pretrained = rng.standard_normal((dataset.n_items, dim), dtype=np.float32)
    original = lifecycle.data.load
    lifecycle.data.load = lambda _cfg: dataset
    try:
        run = Run(tiny(out, "optim.name=adafactor", "divergence.keep_every=1", "optim.batch_size=2048",
                       "eval.ks=[20]", "run.amp=false"), preset="gpu_check")
        run.setup()
    finally:
        lifecycle.data.load = original
    on_gpu = run.device.type == "cuda"
    try:
        expected = plan.estimate(plan.shape_of(run.cfg, dataset.n_users, dataset.n_items, len(dataset.train),
                                               run.model.dim))
        u, p, n = (run._on_device(t) for t in run.sampler.epoch(run.generator))
        b = run.cfg.optim.batch_size
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        for k in range(3):
            run.guard.keep(k, k, run.model, run.optimizer, run.schedule)
            run._unchecked.append(run._step(u[k * b:(k + 1) * b], p[k * b:(k + 1) * b], n[k * b:(k + 1) * b]))
        run._unchecked.clear()
        step = torch.cuda.max_memory_allocated() if on_gpu else 0
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        run.evaluate()
        evaluation = torch.cuda.max_memory_allocated() if on_gpu else 0
    finally:
        run.cleanup()
    return {"shape": f"{dataset.n_users} users + {dataset.n_items} items × {run.model.dim}, {len(dataset.train)} "
                     "interactions, adafactor, fp32",
            "step_peak_gb": step / 1e9, "planned_step_peak_gb": expected.step_peak / 1e9,
            "eval_peak_gb": evaluation / 1e9, "planned_eval_peak_gb": expected.eval_peak / 1e9,
            "step_over_plan": step / expected.step_peak, "eval_over_plan": evaluation / expected.eval_peak}


def check_dist(out: Path) -> dict[str, Any]:
    count = torch.cuda.device_count()
    if count < 2:
        return {"skipped": f"{count} GPU: nothing to scale over"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_dist.py"), "--device", "cuda",
                           "--nprocs", f"1,{count}", "--steps", "30"], capture_output=True, text=True, timeout=240)
    return {"returncode": done.returncode, "output": done.stdout[-4000:] + done.stderr[-2000:]}


CHECKS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "propagation": check_propagation, "evaluation": check_evaluation, "resume": check_resume,
    "syncs": check_syncs, "step": check_step, "epoch": check_epoch, "memory": check_memory}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="where the JSON report goes")
    parser.add_argument("--dist", action="store_true", help="also time 1 vs all GPUs with bench_dist.py")
    parser.add_argument("--only", help="comma-separated checks to run (default all): " + ", ".join(CHECKS))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device visible to torch {torch.__version__}; run it on a GPU machine")
        return 2
    chosen = args.only.split(",") if args.only else list(CHECKS)
    checks = {name: CHECKS[name] for name in chosen} | ({"dist": check_dist} if args.dist else {})
    report: dict[str, Any] = {"torch": torch.__version__, "device": torch.cuda.get_device_name(),
                              "memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for name, check in checks.items():
            started = time.perf_counter()
            try:
                report[name] = check(Path(tmp) / name)
            except Exception:  # noqa: BLE001 - recorded in the report; the other checks still run
                report[name] = {"error": traceback.format_exc(limit=8)}
            report[name]["seconds"] = time.perf_counter() - started
            print(f"{name}: {time.perf_counter() - started:.1f} s", flush=True)
            args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
