#!/usr/bin/env python
"""Engine benchmark on the Gowalla split: graph build, one training step (64-d and 768-d)
against its sparse-product floor and the textbook step, in the default locality order and
in node order (``graph.reorder=false``), a whole epoch, a test evaluation and peak memory,
in one run on one machine.

Run from the repository root:

    python benchmarks/bench_engine.py            # full run (a few minutes on 2 cores)
    python benchmarks/bench_engine.py --quick    # fewer repeats, epoch extrapolated

Only public tools are used (time.perf_counter, torch, numpy, resource). Timings on a
shared machine are noisy: candidates are alternated within each repeat (A B C, B C A, ...)
and medians are reported; the load average is printed at start and end.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lgcn_tui import config as cfgmod
from lgcn_tui.data import load
from lgcn_tui.graph import propagate as prop
from lgcn_tui.graph.adjacency import build_adjacency
from lgcn_tui.contract import commands as cmd
from lgcn_tui.contract import events as ev
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.train.ranking import evaluate_split

warnings.filterwarnings("ignore", message="Sparse (CSR tensor support|invariant checks)")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "gowalla"
PRESET = ROOT / "presets" / "gowalla-paper.toml"

# The gowalla-paper setting (used when presets/gowalla-paper.toml does not exist yet).
PAPER = ["data.format=lightgcn", "data.valid_into_train=true", "model.item_init=xavier", "model.dim=64",
         "model.layers=3", "optim.batch_size=2048", "optim.user_lr=1e-3", "optim.reg=1e-4",
         'eval.best_metric="test/recall@20"']

# The public PyTorch reference implementation on such a 2-core machine (issue 2).
REF_EPOCH_S, REF_BUILD_S, REF_EVAL_S = 448.0, 122.0, 155.0


# ----- helpers -----------------------------------------------------------------------------
def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def alternate(cands: dict[str, Callable[[int], object]], repeats: dict[str, int]) -> dict[str, list[float]]:
    """Run each candidate ``repeats[name]`` times, rotating the order every round; seconds per call."""
    out: dict[str, list[float]] = {k: [] for k in cands}
    names = list(cands)
    for r in range(max(repeats.values())):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            if len(out[name]) < repeats[name]:
                t = time.perf_counter()
                cands[name](r)
                out[name].append(time.perf_counter() - t)
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def ms(x: float) -> str:
    return f"{x * 1000:,.0f} ms" if x < 10 else f"{x:,.1f} s"


def secs(x: float) -> str:
    return f"{x:.2f} s"


def make_config(data: Path, out_dir: str, dim: int, extra: list[str]) -> tuple[cfgmod.Config, str]:
    base: dict = {}
    source = "overrides in bench_engine.py (no presets/gowalla-paper.toml)"
    if PRESET.is_file():
        base, source = cfgmod.load_toml(PRESET), str(PRESET.relative_to(ROOT))
    overrides = ([] if base else PAPER) + [f"data.path={data}", f"model.dim={dim}", "run.device=cpu",
                                           f"run.out_dir={out_dir}", *extra]
    return cfgmod.resolve(base, "bench", overrides), source


# ----- the textbook step -------------------------------------------------------------------
class Textbook:
    """The reference way: per-user Python sampler, COO ``torch.sparse.mm`` through all layers
    with autograd's own backward (3 products forward + 3 backward), BPR + L2, Adam."""

    def __init__(self, dataset, user: torch.Tensor, item: torch.Tensor, adj_csr: torch.Tensor, layers: int,
                 reg: float, lr: float, seed: int = 0) -> None:
        self.graph = adj_csr.to_sparse_coo().coalesce()
        self.user = torch.nn.Parameter(user.detach().clone())
        self.item = torch.nn.Parameter(item.detach().clone())
        self.opt = torch.optim.Adam([self.user, self.item], lr=lr)
        train = dataset.train[np.argsort(dataset.train[:, 0], kind="stable")]
        ends = np.cumsum(np.bincount(train[:, 0], minlength=dataset.n_users))
        self.all_pos = np.split(train[:, 1], ends[:-1])
        self.pos_sets = [set(a.tolist()) for a in self.all_pos]
        self.n_users, self.n_items, self.layers, self.reg = dataset.n_users, dataset.n_items, layers, reg
        self.rng = np.random.RandomState(seed)
        self.sample_s: list[float] = []

    def sample(self, batch: int) -> torch.Tensor:
        """Like the reference's UniformSample_original_python: one Python iteration per triple."""
        rng, out = self.rng, []
        for user in rng.randint(0, self.n_users, batch):
            pos_for_user = self.all_pos[user]
            if len(pos_for_user) == 0:
                continue
            pos = pos_for_user[rng.randint(0, len(pos_for_user))]
            while True:
                neg = rng.randint(0, self.n_items)
                if neg in self.pos_sets[user]:
                    continue
                break
            out.append((user, pos, neg))
        return torch.tensor(out, dtype=torch.int64)

    def step(self, batch: int) -> float:
        t = time.perf_counter()
        s = self.sample(batch)
        self.sample_s.append(time.perf_counter() - t)
        h = torch.cat([self.user, self.item])
        embs = [h]
        for _ in range(self.layers):
            h = torch.sparse.mm(self.graph, h)
            embs.append(h)
        out = torch.stack(embs, 1).mean(1)
        ego = torch.cat([self.user, self.item])
        u, p, n = s[:, 0], s[:, 1] + self.n_users, s[:, 2] + self.n_users
        margin = (out[u] * out[p]).sum(-1) - (out[u] * out[n]).sum(-1)
        penalty = self.reg * 0.5 * (ego[u].pow(2).sum() + ego[p].pow(2).sum() + ego[n].pow(2).sum()) / len(u)
        loss = F.softplus(-margin).mean() + penalty
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


# ----- the floor ---------------------------------------------------------------------------
def floor_fn(A: torch.Tensor, At: torch.Tensor, sliced: torch.Tensor, transposed: torch.Tensor, x: torch.Tensor,
             gb: torch.Tensor, mm: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[int], object]:
    """The bare products of a 3-layer step: 2 full forward, 2 full backward, slice fwd + bwd."""
    def run(_r: int) -> None:
        mm(A, x)
        mm(A, x)
        mm(sliced, x)
        mm(transposed, gb)
        mm(At, x)
        mm(At, x)
    return run


# ----- sections ----------------------------------------------------------------------------
def step_section(dim: int, data: Path, out_dir: str, repeats: dict[str, int], dataset, lines: list[str]) -> dict[str, float]:
    """Our step in locality order (the default) and in node order (``graph.reorder=false``),
    each with its own floor, the textbook step, all alternated."""
    trainers: dict[str, Run] = {}
    for name, reorder in (("ours", "true"), ("node", "false")):
        cfg, _ = make_config(data, out_dir, dim, [f"graph.reorder={reorder}"])
        trainers[name] = Run(cfg, preset="bench")
        trainers[name].setup()
    trainer = trainers["ours"]
    bs, nu = cfg.optim.batch_size, dataset.n_users
    g = torch.Generator().manual_seed(cfg.run.seed)
    t = time.perf_counter()
    users, pos, neg = trainer.sampler.epoch(g)
    sample_epoch = time.perf_counter() - t
    # the first batch's rows, for the floors' slice products
    rows = torch.unique(torch.cat([users[:bs], pos[:bs] + nu, neg[:bs] + nu]))
    x = torch.randn(trainer.adj.n_nodes, dim)
    gb = torch.randn(len(rows), dim)
    floors = {}
    for name, tr in trainers.items():
        at = rows if tr.adj.position is None else tr.adj.position[rows]
        sliced, transposed = prop.row_slice(tr.adj.matrix, at)
        floors[name] = (tr.adj.matrix, tr.adj.transpose, sliced, transposed, x, gb)
    node = trainers["node"].model
    textbook = Textbook(dataset, node.user, node.item, floors["node"][0], cfg.model.layers, cfg.optim.reg,
                        cfg.optim.user_lr)
    for tr in trainers.values():
        tr._step(users[:bs], pos[:bs], neg[:bs])  # warm-up (allocations, optimizer state)
    counter = {name: 1 for name in trainers}
    faults: list[int] = []

    def step(name: str) -> Callable[[int], None]:
        def run(_r: int) -> None:
            s = counter[name]
            counter[name] += 1
            sl = slice(s * bs, (s + 1) * bs)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            trainers[name]._step(users[sl], pos[sl], neg[sl])
            if name == "ours":
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return run

    cands = {
        "ours": step("ours"),
        "floor": floor_fn(*floors["ours"], prop.spmm),
        "node": step("node"),
        "floor_node": floor_fn(*floors["node"], prop.spmm),
        "floor_sparse_mm": floor_fn(*floors["ours"], torch.sparse.mm),
        "textbook": lambda _r: textbook.step(bs),
    }
    times = alternate(cands, {k: repeats.get(k, repeats["ours"]) for k in cands})
    r = {k: med(v) for k, v in times.items()}
    r["sampler_per_step"] = sample_epoch / trainer.steps_per_epoch
    r["textbook_sampler"] = med(textbook.sample_s)
    r["n"] = {k: len(v) for k, v in times.items()}  # type: ignore[assignment]
    lines.append(f"  step {dim}-d: {len(rows)} unique nodes in the batch, slice nnz "
                 f"{floors['ours'][2].values().numel():,}; repeats {r['n']}; "
                 f"optimizer {type(trainer.optimizer).__name__}")
    lines.append(f"    ours {ms(r['ours'])} (all {', '.join(ms(v) for v in times['ours'])}); floor {ms(r['floor'])}; "
                 f"the same products via torch.sparse.mm {ms(r['floor_sparse_mm'])}")
    lines.append(f"    node order (graph.reorder=false) {ms(r['node'])}, its floor {ms(r['floor_node'])}; "
                 f"textbook {ms(r['textbook'])} (of which Python sampler {ms(r['textbook_sampler'])})")
    lines.append(f"    page faults per step of ours (median): {med([float(f) for f in faults]):,.0f} "
                 f"({med([float(f) for f in faults]) * resource.getpagesize() / 2**20:,.1f} MiB faulted in)")
    lines.append(f"    vectorised sampler: {ms(sample_epoch)} per epoch = {ms(r['sampler_per_step'])} per step "
                 "(drawn once per epoch, outside the step)")
    for tr in trainers.values():
        tr.cleanup()
    del trainers, trainer, node, textbook
    gc.collect()
    return r


class Clock:
    """A sink that timestamps the trainer's events (and can stop the run after N steps)."""

    def __init__(self, stop_after: int | None) -> None:
        self.run: Run | None = None
        self.stop_after = stop_after
        self.start: float | None = None
        self.steps: list[float] = []
        self.epoch_end: float | None = None
        self.eval_s: dict[str, float] = {}
        self.metrics: dict[str, float] = {}

    def handle(self, e: ev.Event) -> None:
        now = time.perf_counter()
        if isinstance(e, ev.StateChanged) and e.state == "running" and self.start is None:
            self.start = now
        elif isinstance(e, ev.StepMetrics):
            self.steps.append(now)
            if self.stop_after and len(self.steps) == self.stop_after and self.run is not None:
                self.run.send(cmd.Stop(save=False))
        elif isinstance(e, ev.EpochEnd):
            self.epoch_end = now
        elif isinstance(e, ev.EvalResult) and e.model != "popularity":
            self.eval_s[e.split], self.metrics = e.seconds, e.metrics

    def flush(self) -> None: ...

    def close(self) -> None: ...


def epoch_section(data: Path, out_dir: str, dataset, stop_after: int | None):
    cfg, source = make_config(data, out_dir, 64, ["run.epochs=1", "eval.every=1000"])
    clock = Clock(stop_after)
    trainer = Run(cfg, preset="bench", sinks=[clock])
    clock.run = trainer
    trainer.setup()
    trainer._baselines = lambda: None  # type: ignore[method-assign]  # the popularity baseline is not part of an epoch
    t = time.perf_counter()
    state = trainer.train()
    total = time.perf_counter() - t
    trainer.cleanup()
    assert clock.start is not None
    if state == "done":
        epoch = clock.epoch_end - clock.start
        how = f"whole epoch, {len(clock.steps)} steps"
    else:
        per = (clock.steps[-1] - clock.steps[0]) / (len(clock.steps) - 1)
        first = clock.steps[0] - clock.start  # epoch sampling + first step
        epoch = first + per * (trainer.steps_per_epoch - 1)
        how = f"extrapolated from {len(clock.steps)} of {trainer.steps_per_epoch} steps"
    return trainer, cfg, source, epoch, how, clock, total


def sparse_check(A: torch.Tensor, local: torch.Tensor, repeats: int) -> dict[str, float]:
    """One 64-d product Â·X in several forms, alternated (the GUIDE's ~20 ms claim); ``A`` in
    node order, ``local`` the same matrix in the locality order of ``graph.layout``."""
    n = A.shape[0]
    x = torch.randn(n, 64)
    a64 = torch.sparse_csr_tensor(A.crow_indices(), A.col_indices(), A.values().double(), A.shape)
    x64 = x.double()
    coo = A.to_sparse_coo().coalesce()
    threads = torch.get_num_threads()

    def one_thread(_r: int) -> None:
        torch.set_num_threads(1)
        try:
            torch.sparse.mm(A, x)
        finally:
            torch.set_num_threads(threads)

    def eb_one_thread(_r: int) -> None:
        torch.set_num_threads(1)
        try:
            prop.spmm(A, x)
        finally:
            torch.set_num_threads(threads)

    cands = {
        f"CSR int32 fp32 ({threads} threads)": lambda _r: torch.sparse.mm(A, x),
        "CSR int32 fp32 (1 thread)": one_thread,
        "CSR int32 fp64": lambda _r: torch.sparse.mm(a64, x64),
        "COO fp32": lambda _r: torch.sparse.mm(coo, x),
        f"embedding_bag(per_sample_weights) ({threads} threads)": lambda _r: prop.spmm(A, x),
        "embedding_bag (1 thread)": eb_one_thread,
        "embedding_bag, locality order (graph.layout)": lambda _r: prop.spmm(local, x),
    }
    for f in cands.values():  # warm-up
        f(0)
    return {k: med(v) for k, v in alternate(cands, {k: repeats for k in cands}).items()}


# ----- main --------------------------------------------------------------------------------
def main() -> int:
    out_dir = tempfile.mkdtemp(prefix="lgcn-bench-")
    try:
        return bench(out_dir)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)  # run directories and checkpoints of the timed runs


def bench(out_dir: str) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats; epoch extrapolated from 40 steps")
    ap.add_argument("--data", type=Path, default=DATA, help=f"Gowalla directory (default {DATA})")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's own)")
    ap.add_argument("--no-768", action="store_true", help="skip the 768-d step")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.data / "train.txt").is_file():
        print(f"Gowalla data not found at {args.data} (expected train.txt, valid.txt, test.txt); "
              "see ../shared/data/README.md or pass --data DIR", file=sys.stderr)
        return 2
    q = args.quick
    rep = {"build": 2 if q else 5, "sparse": 3 if q else 7, "step64": 3 if q else 7, "tb64": 2 if q else 5,
           "step768": 1 if q else 3, "tb768": 1 if q else 2, "eval": 1 if q else 2}
    print(f"$ python {shlex.join(['benchmarks/bench_engine.py', *sys.argv[1:]])}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average at start {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    notes: list[str] = []
    wall0 = time.perf_counter()

    # 0/1: data and graph
    cfg, source = make_config(args.data, out_dir, 64, [])
    print(f"config: {source}; data {args.data}")
    t = time.perf_counter()
    dataset = load(cfg)
    read_s = time.perf_counter() - t
    builds = []
    for _ in range(rep["build"]):
        t = time.perf_counter()
        adj = build_adjacency(dataset.train, dataset.n_users, dataset.n_items, cfg.graph.norm)
        builds.append(time.perf_counter() - t)
    build_s = med(builds)
    print(f"graph: N = {adj.n_nodes:,} nodes, nnz = {adj.nnz:,}; build {', '.join(secs(b) for b in builds)}",
          flush=True)

    # the single-product check
    sp = sparse_check(build_adjacency(dataset.train, dataset.n_users, dataset.n_items, cfg.graph.norm,
                                      reorder=False).matrix, adj.matrix, rep["sparse"])
    print("one 64-d product Â·X (median of %d, alternated):" % rep["sparse"])
    for k, v in sp.items():
        print(f"  {k:48s} {ms(v):>9s}")
    del adj
    gc.collect()

    # 2: the 64-d step
    print("step 64-d ...", flush=True)
    r64 = step_section(64, args.data, out_dir, {"ours": rep["step64"], "floor": rep["step64"],
                                                 "floor_sparse_mm": rep["step64"], "textbook": rep["tb64"]},
                       dataset, notes)
    print("\n".join(notes), flush=True)
    notes.clear()

    # 3: the epoch (through Run.train), 4: test evaluation
    print("epoch ...", flush=True)
    trainer, ecfg, _, epoch_s, how, clock, total = epoch_section(args.data, out_dir, dataset, 40 if q else None)
    print(f"  epoch: {secs(epoch_s)} ({how}; includes the epoch's negative sampling, the JSONL sink, "
          f"excludes evaluation and checkpoint); run() total {secs(total)}", flush=True)
    if "test" in clock.eval_s:
        print(f"  evaluation inside run(): test {secs(clock.eval_s['test'])}, recall@20 "
              f"{clock.metrics.get('recall@20', float('nan')):.4f}")
    evals = [clock.eval_s["test"]] if "test" in clock.eval_s else []  # the in-loop evaluation counts as one
    for _ in range(rep["eval"]):
        t = time.perf_counter()
        metrics = evaluate_split(*trainer.model.final_embeddings(trainer.adj), dataset, "test", ecfg.eval.ks,
                                 ecfg.eval.chunk_users)
        evals.append(time.perf_counter() - t)
    eval_s = med(evals)
    print(f"  test evaluation (evaluate_split, train masked, ks {ecfg.eval.ks}, chunk {ecfg.eval.chunk_users}): "
          f"{', '.join(secs(e) for e in evals)}; recall@20 {metrics['recall@20']:.4f}", flush=True)
    del trainer
    gc.collect()
    rss_paper = peak_rss_mb()

    # 2b: the 768-d step
    r768 = None
    if not args.no_768:
        print("step 768-d ...", flush=True)
        r768 = step_section(768, args.data, out_dir, {"ours": rep["step768"], "floor": rep["step768"],
                                                       "floor_sparse_mm": rep["step768"], "textbook": rep["tb768"]},
                            dataset, notes)
        print("\n".join(notes), flush=True)
    rss_all = peak_rss_mb()

    # the table
    def ok(good: bool) -> str:
        return "yes" if good else "NO"

    rows = [("figure", "ours", "target", "reference / ratio", "met")]
    rows.append(("data read (Gowalla text, train+valid+test)", secs(read_s), "-", "-", "-"))
    rows.append(("graph build (N=70,839, nnz=1,620,256)", secs(build_s), "<= 2 s",
                 f"ref {REF_BUILD_S:.0f} s ({REF_BUILD_S / build_s:,.0f}x)", ok(build_s <= 2)))
    threads = torch.get_num_threads()
    rows.append(("one 64-d product Â·X, CSR sparse.mm", ms(sp[f"CSR int32 fp32 ({threads} threads)"]), "-",
                 "GUIDE says ~20 ms", "-"))
    rows.append(("one 64-d product Â·X, ours (embedding_bag)",
                 ms(sp[f"embedding_bag(per_sample_weights) ({threads} threads)"]), "-", "-", "-"))
    rows.append(("the same in locality order", ms(sp["embedding_bag, locality order (graph.layout)"]), "-",
                 f"{sp[f'embedding_bag(per_sample_weights) ({threads} threads)'] / sp['embedding_bag, locality order (graph.layout)']:.2f}x faster", "-"))
    for d, r in ((64, r64), (768, r768)):
        if r is None:
            continue
        rows.append((f"step {d}-d ours (Run._step)", ms(r["ours"]), "-", "-", "-"))
        rows.append((f"step {d}-d ours + sampler share", ms(r["ours"] + r["sampler_per_step"]), "-", "-", "-"))
        rows.append((f"step {d}-d floor (its 4 full + 2 slice products)", ms(r["floor"]), "-", "-", "-"))
        rows.append((f"step {d}-d ours / floor", f"{r['ours'] / r['floor']:.2f}x", "<= 1.5x",
                     f"incl. sampler {(r['ours'] + r['sampler_per_step']) / r['floor']:.2f}x",
                     ok(r["ours"] / r["floor"] <= 1.5)))
        rows.append((f"step {d}-d in node order (graph.reorder=false)", ms(r["node"]), "-",
                     f"{r['node'] / r['ours']:.2f}x ours; / its floor {r['node'] / r['floor_node']:.2f}x", "-"))
        rows.append((f"step {d}-d textbook (COO+autograd, Python sampler)", ms(r["textbook"]), "-",
                     f"{r['n']['textbook']} repeat(s)", "-"))
        rows.append((f"step {d}-d textbook / ours", f"{r['textbook'] / r['ours']:.1f}x", ">= 5x",
                     f"vs ours+sampler {r['textbook'] / (r['ours'] + r['sampler_per_step']):.1f}x",
                     ok(r["textbook"] / r["ours"] >= 5)))
        rows.append((f"step {d}-d same products via torch.sparse.mm (info)", ms(r["floor_sparse_mm"]), "-",
                     f"{r['floor_sparse_mm'] / r['floor']:.1f}x our floor", "-"))
    rows.append(("epoch, gowalla-paper (396 steps)", secs(epoch_s), "<= 45 s",
                 f"ref {REF_EPOCH_S:.0f} s ({REF_EPOCH_S / epoch_s:.1f}x)", ok(epoch_s <= 45)))
    rows.append(("test evaluation (full ranking, train masked)", secs(eval_s), "<= 5 s",
                 f"ref {REF_EVAL_S:.0f} s ({REF_EVAL_S / eval_s:.0f}x)", ok(eval_s <= 5)))
    rows.append(("peak RSS after 64-d sections", f"{rss_paper:,.0f} MB", "-", "-", "-"))
    if r768 is not None:
        rows.append(("peak RSS incl. 768-d step (and textbook)", f"{rss_all:,.0f} MB", "-", "-", "-"))
        alone = json.loads(subprocess.run([sys.executable, str(Path(__file__).with_name("step_memory.py")),
                                           "--data", str(args.data)], capture_output=True, text=True,
                                          check=True).stdout)
        rows.append(("peak RSS, our 768-d step alone (step_memory.py)", f"{alone['peak_rss_steps_mb']:,} MB", "-",
                     f"after set-up {alone['peak_rss_setup_mb']:,} MB", "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    print()
    print(f"$ python {shlex.join(['benchmarks/bench_engine.py', *sys.argv[1:]])}")
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"wall {time.perf_counter() - wall0:.0f} s; load average at end "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
