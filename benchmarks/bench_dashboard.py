"""How much the open dashboard slows the training thread.

The same short run is trained headless (only the metrics.jsonl sink, as with --no-ui) and
inside the dashboard (App.run_test: a real screen size, the real refresh timer, every pane
drawn), alternating so that machine noise hits both alike. Throughput counts only the
time between steps inside an epoch, so evaluation and checkpoints, identical in both
modes, do not dilute the difference; the first epoch is left out of both, so start-up
(the dashboard's first full layout, the first sampler and optimiser calls) is too.

    python benchmarks/bench_dashboard.py                       # 4 epochs of 3000×2000 synthetic, 5 pairs
    python benchmarks/bench_dashboard.py --repeats 5 --size 80x24 --set optim.batch_size=512

The data and batch size are pinned here (not taken from the demo preset, which may change)
so that figures stay comparable; evaluation runs once, at the end. One pair runs first
unmeasured: the process's first dashboard pays one-time costs (widget imports, style
parsing, caches) that a real run pays once and a short benchmark run would overcount.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path

from lgcn_tui import config as cfgmod
from lgcn_tui import presets
from lgcn_tui.contract import events as ev
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.ui.app import live_app

PINNED = ["run.device=cpu", "data.format=synthetic", "data.synthetic_users=3000", "data.synthetic_items=2000",
          "data.synthetic_per_user=30", "optim.batch_size=1024", "eval.every=1000"]


class StepClock:
    """A sink that times the gaps between consecutive steps of the same epoch, from the second epoch on."""

    def __init__(self) -> None:
        self.last: tuple[int, float] | None = None
        self.gaps: list[float] = []
        self.started = threading.Event()

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepMetrics):
            now = time.perf_counter()
            if event.epoch == 0:
                return
            if self.last is not None and self.last[0] == event.epoch:
                self.gaps.append(now - self.last[1])
            self.last = (event.epoch, now)
            self.started.set()

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    @property
    def steps_per_second(self) -> float:
        return len(self.gaps) / sum(self.gaps)


def headless(cfg: cfgmod.Config) -> float:
    clock = StepClock()
    run = Run(cfg, preset="bench", sinks=[clock])
    run.setup()
    thread = threading.Thread(target=run.train)
    thread.start()
    thread.join()
    run.cleanup()
    return clock.steps_per_second


def dashboard(cfg: cfgmod.Config, size: tuple[int, int]) -> tuple[float, float]:
    """Steps/s, and the share of one core the UI thread (the asyncio loop on this thread) used
    from the second epoch to the end of the run."""
    clock = StepClock()
    app = live_app(Run(cfg, preset="bench", sinks=[clock]))
    usage: list[float] = []

    async def main() -> None:
        async with app.run_test(size=size):
            while not clock.started.is_set():
                await asyncio.sleep(0.01)
            cpu, wall = time.thread_time(), time.perf_counter()
            while app.worker is None or not app.worker.is_finished:
                await asyncio.sleep(0.1)  # not pilot.pause: its idle checks would cost UI time here
            usage.append((time.thread_time() - cpu) / (time.perf_counter() - wall))
            app.exit(0)

    asyncio.run(main())
    return clock.steps_per_second, usage[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--epochs", type=int, default=4, help="at least 2: the first is not measured")
    parser.add_argument("--repeats", type=int, default=5, help="headless/dashboard pairs")
    parser.add_argument("--size", default="120x40", help="terminal size of the dashboard, WxH")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override, repeatable")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    out = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    path = presets.find(args.preset)
    cfg = cfgmod.resolve(cfgmod.load_toml(path), str(path),
                         [*PINNED, f"run.epochs={args.epochs}", f"run.out_dir={out}", *args.sets])
    headless(cfg)
    dashboard(cfg, (width, height))
    rates: dict[str, list[float]] = {"headless": [], "dashboard": []}
    for i in range(args.repeats):
        for mode in ("headless", "dashboard") if i % 2 == 0 else ("dashboard", "headless"):
            note = ""
            if mode == "headless":
                rate = headless(cfg)
            else:
                rate, ui = dashboard(cfg, (width, height))
                note = f"  (UI thread: {100 * ui:.1f}% of a core)"
            rates[mode].append(rate)
            print(f"pair {i + 1}  {mode:<9}  {rate:7.2f} steps/s{note}", flush=True)
    h, d = statistics.median(rates["headless"]), statistics.median(rates["dashboard"])
    pairs = [b / a for a, b in zip(rates["headless"], rates["dashboard"], strict=True)]
    ratio = statistics.median(pairs)
    print(f"\nmedian steps/s: headless {h:.2f}, dashboard {d:.2f} ({width}x{height})")
    print(f"dashboard/headless per pair: {', '.join(f'{r:.3f}' for r in pairs)}")
    print(f"slowdown with the dashboard open (median of pairs): {100 * (1 - ratio):+.1f}%  (ratio {ratio:.3f})")
    print(f"runs written under {out}")


if __name__ == "__main__":
    main()
