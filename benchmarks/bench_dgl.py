#!/usr/bin/env python
"""One training step with the DGL backend against the default backend: same graph, same
machine, same Python environment, as a ratio.

DGL's PyPI wheels need torch ≤ 2.2.1, so run this with the DGL environment the tests
build (``tests/dgl_stack/env.py`` prints its interpreter, building it on first use), from
the repository root:

    PYTHONPATH=. $(python tests/dgl_stack/env.py) benchmarks/bench_dgl.py            # Gowalla
    PYTHONPATH=. $(python tests/dgl_stack/env.py) benchmarks/bench_dgl.py --data ml-100k

Both backends run ``Run._step`` (forward, BPR + L2, backward, clipping, optimizer step)
on the same triples with the ``gowalla-paper`` settings (64-d, 3 layers, batch 2048). On
torch 2.2 the CPU optimizer is the unfused loop for both. Steps alternate between the
backends (A B, B A, ...) and medians are reported, with the load average before and after.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from lgcn_tui import config as cfgmod
from lgcn_tui.run.lifecycle import Run

warnings.filterwarnings("ignore", message="Sparse (CSR tensor support|invariant checks)")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SETTINGS = {
    "gowalla": ["data.format=lightgcn", "data.valid_into_train=true", 'eval.best_metric="test/recall@20"'],
    "ml-100k": ["data.format=recbole", "data.split=loo"],
}
PAPER = ["model.item_init=xavier", "model.dim=64", "model.layers=3", "optim.batch_size=2048", "run.device=cpu",
         "eval.sim_pairs=0"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", choices=sorted(SETTINGS), default="gowalla", help="a dataset under ../shared/data")
    ap.add_argument("--repeats", type=int, default=15, help="timed steps per backend (default 15)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's own)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    path = DATA / args.data
    if not path.exists():
        print(f"data not found at {path}; see ../shared/data/README.md", file=sys.stderr)
        return 2
    print(f"$ {shlex.join(['benchmarks/bench_dgl.py', *sys.argv[1:]])}")
    print(f"torch {torch.__version__}, dgl {importlib.metadata.version('dgl')}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="lgcn-bench-dgl-") as out:
        trainers = {}
        for backend in ("torch", "dgl"):
            cfg = cfgmod.resolve({}, "bench", [*SETTINGS[args.data], f"data.path={path}", *PAPER,
                                               f"run.out_dir={out}", f"graph.backend={backend}"])
            trainers[backend] = Run(cfg, preset="bench")
            trainers[backend].setup()
        first = trainers["torch"]
        print(f"graph: {first.dataset.n_users} users, {first.dataset.n_items} items, nnz {first.adj.nnz:,}")
        users, pos, neg = first.sampler.epoch(torch.Generator().manual_seed(0))
        bs = first.cfg.optim.batch_size
        times: dict[str, list[float]] = {name: [] for name in trainers}
        for r in range(args.repeats + 1):  # the first round warms up (allocations, optimizer state)
            sl = slice(r * bs, (r + 1) * bs)
            for name in (("torch", "dgl") if r % 2 == 0 else ("dgl", "torch")):
                started = time.perf_counter()
                trainers[name]._step(users[sl], pos[sl], neg[sl])
                if r:
                    times[name].append(time.perf_counter() - started)
        for trainer in trainers.values():
            trainer.cleanup()
    # Other jobs on a shared machine only ever add time, so the fastest step is shown beside the median.
    for label, stat in (("median", statistics.median), ("fastest", min)):
        torch_ms, dgl_ms = (stat(times[n]) * 1e3 for n in ("torch", "dgl"))
        print(f"one training step, {label} of {args.repeats}: default (torch) {torch_ms:.0f} ms, "
              f"dgl {dgl_ms:.0f} ms: dgl / default = {dgl_ms / torch_ms:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
