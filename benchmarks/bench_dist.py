"""Steps per second and per-rank peak memory of one process against several, DDP and FSDP.

For each world size and strategy the script launches ``torch.distributed.run --standalone
--nproc-per-node N`` on itself in worker mode. Each worker trains the preset through the
real ``Run`` (the same loop, collectives and publish points as ``train --nproc``), times
the steps after ``--warmup`` from the step events, stops the run after ``--steps`` and
reports: steps/s, global triples/s, its peak resident memory (``ru_maxrss``: data, graph,
popularity baseline and training together), on CUDA its peak allocated GPU memory, and
the bytes of the tables and Adam state it holds (exact, from its own tensors).

    python benchmarks/bench_dist.py                          # Gowalla (gowalla-paper), 1 vs 2 processes on CPU
    python benchmarks/bench_dist.py --nprocs 1,2,4,8 --device cuda    # a GPU box: 1 vs all GPUs
    python benchmarks/bench_dist.py --preset demo --steps 40

``optim.batch_size`` is the global batch, so N processes do the same work per step as one,
each on 1/N of the rows: the speed-up is what the split buys against what the collectives
cost. On a CPU machine the processes share its cores: ``--threads`` (default 1) is set in
every worker, so 2 processes use 2 cores where 1 process uses 1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> None:
    import torch
    from torch.distributed.tensor import DTensor

    from lgcn_tui import config as cfgmod
    from lgcn_tui import presets
    from lgcn_tui.contract import commands as cmd
    from lgcn_tui.contract import events as ev
    from lgcn_tui.run.lifecycle import Run

    path = presets.find(args.preset)
    cfg = cfgmod.resolve(cfgmod.load_toml(path), str(path), [
        f"run.threads={args.threads}", f'run.device="{args.device}"', "run.epochs=1", "run.publish_every=1",
        f'run.out_dir="{args.out}"', f'dist.strategy="{args.strategy}"', "eval.sim_pairs=0", *args.set])
    times: list[float] = []

    class Clock:
        def handle(self, event: ev.Event) -> None:
            if isinstance(event, ev.StepMetrics):
                times.append(time.perf_counter())
                if len(times) == args.warmup + args.steps:
                    run.send(cmd.Stop(save=False))

        def flush(self) -> None:
            return None

        def close(self) -> None:
            return None

    run = Run(cfg, preset=args.preset, sinks=[Clock()])
    run.setup()
    try:
        run.train()
        local = lambda t: t.to_local() if isinstance(t, DTensor) else t
        tables = sum(local(p).numel() * p.element_size() for p in (run.model.user, run.model.item))
        adam = sum(local(t).numel() * t.element_size() for state in run.optimizer.state.values()
                   for t in state.values() if torch.is_tensor(t) and t.dim() > 0)
        timed = times[args.warmup:]
        steps_per_s = (len(timed) - 1) / (timed[-1] - timed[0])
        gpu = torch.cuda.max_memory_allocated(run.device) if run.device.type == "cuda" else None
        record = {"rank": run.world.rank, "world": run.world.size, "strategy": args.strategy,
                  "steps_per_s": steps_per_s, "triples_per_s": steps_per_s * cfg.optim.batch_size,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "gpu_mb": gpu / 2**20 if gpu is not None else None,
                  "tables_mb": tables / 2**20, "adam_mb": adam / 2**20}
    finally:
        run.cleanup()
    with open(args.results, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def launch(args: argparse.Namespace, nproc: int, strategy: str, out: Path) -> list[dict]:
    results = out / f"{nproc}-{strategy}.jsonl"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               __file__, "--worker", "--results", str(results), "--out", str(out / "runs"),
               "--preset", args.preset, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--threads", str(args.threads), "--device", args.device, "--strategy", strategy,
               *(f"--set={s}" for s in args.set)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run(command, cwd=ROOT, check=True, env=env, stdout=subprocess.DEVNULL)
    return sorted((json.loads(line) for line in results.read_text().splitlines()), key=lambda r: r["rank"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gowalla-paper")
    parser.add_argument("--nprocs", default="1,2", help="comma-separated world sizes")
    parser.add_argument("--strategies", default="ddp,fsdp")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", action="append", default=[], help="extra section.key=value")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--results", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="ddp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in (int(n) for n in args.nprocs.split(",")):
            for strategy in args.strategies.split(",") if nproc > 1 else ["ddp"]:
                rows.append(launch(args, nproc, strategy, Path(tmp)))
    load = os.getloadavg()[0]
    print(f"\n`python benchmarks/bench_dist.py --preset {args.preset} --nprocs {args.nprocs} --device {args.device} "
          f"--threads {args.threads} --steps {args.steps}` (load average {load:.1f} at the end)\n")
    print("| processes | strategy | steps/s | triples/s | peak RSS per rank (MB) | peak GPU per rank (MB) "
          "| tables per rank (MB) | Adam state per rank (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for ranks in rows:
        first = ranks[0]
        name = first["strategy"] if first["world"] > 1 else "one process"
        rss = " / ".join(f"{r['rss_mb']:.0f}" for r in ranks)
        gpu = " / ".join(f"{r['gpu_mb']:.0f}" for r in ranks) if first["gpu_mb"] is not None else "—"
        print(f"| {first['world']} | {name} | {first['steps_per_s']:.2f} | {first['triples_per_s']:.0f} | {rss} "
              f"| {gpu} | {first['tables_mb']:.1f} | {first['adam_mb']:.1f} |")


if __name__ == "__main__":
    main()
