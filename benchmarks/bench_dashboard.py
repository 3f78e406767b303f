"""How much the open dashboard slows the training thread, and whether a long run with it stays flat.

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

``--soak MINUTES`` instead trains the preset as it is (its own data and evaluation
cadence) inside the dashboard without pause for that long. Once a minute it records the
process's resident memory, the events waiting in the live buffer for the UI, the size of
the history the UI draws from, the steps per second, and the time the UI took per refresh
(mean and worst of that minute); then it stops the run through the command a key sends
and prints the change from the second minute to the last (the first holds start-up).

    python benchmarks/bench_dashboard.py --soak 30 --json soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from lgcn_tui import config as cfgmod
from lgcn_tui import presets
from lgcn_tui.contract import commands as cmd
from lgcn_tui.contract import events as ev
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.ui.app import Dashboard, live_app

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


def rss_mb() -> float:
    """Resident memory now (not the peak), from /proc."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed_refresh(app: Dashboard, frames: list[float]) -> None:
    """Time every refresh of the panes; the app calls it on its timer and on events."""
    refresh = app.refresh_panes

    def measured(force: bool = False) -> None:
        started = time.perf_counter()
        refresh(force)
        frames.append(time.perf_counter() - started)

    app.refresh_panes = measured  # type: ignore[method-assign]


async def soak(app: Dashboard, minutes: float, size: tuple[int, int]) -> list[dict[str, float]]:
    frames: list[float] = []
    timed_refresh(app, frames)
    rows: list[dict[str, float]] = []
    async with app.run_test(size=size):
        run = app.source.run
        last_step, last_t = run.state.step, time.perf_counter()
        for minute in range(1, int(minutes) + 1):
            await asyncio.sleep(60)
            now, step = time.perf_counter(), run.state.step
            snap = app.history.snapshot()
            rows.append({"minute": minute, "rss_mb": rss_mb(), "buffered_events": len(app.source.buffer),
                         "history_buckets": len(snap.steps), "log_lines": len(snap.log),
                         "steps_per_s": (step - last_step) / (now - last_t), "step": step,
                         "frame_ms_mean": 1e3 * statistics.fmean(frames) if frames else 0.0,
                         "frame_ms_max": 1e3 * max(frames, default=0.0), "frames": len(frames)})
            print("  ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()),
                  flush=True)
            frames.clear()
            last_step, last_t = step, now
        run.send(cmd.Stop(save=False))
        while not app.worker.is_finished:
            await asyncio.sleep(0.1)
        app.exit(0)
    return rows


def report(rows: list[dict[str, float]], json_path: Path | None) -> None:
    if json_path:
        json_path.write_text(json.dumps(rows, indent=1))
    if len(rows) >= 3:
        first, last = rows[1], rows[-1]
        print(f"\nfrom minute {first['minute']} to {last['minute']}: RSS {first['rss_mb']:.0f} -> "
              f"{last['rss_mb']:.0f} MB, buffered events {first['buffered_events']} -> {last['buffered_events']}, "
              f"frame mean {first['frame_ms_mean']:.1f} -> {last['frame_ms_mean']:.1f} ms, steps/s "
              f"{first['steps_per_s']:.1f} -> {last['steps_per_s']:.1f}")


def compare(cfg: cfgmod.Config, repeats: int, size: tuple[int, int]) -> None:
    headless(cfg)
    dashboard(cfg, size)
    rates: dict[str, list[float]] = {"headless": [], "dashboard": []}
    for i in range(repeats):
        for mode in ("headless", "dashboard") if i % 2 == 0 else ("dashboard", "headless"):
            note = ""
            if mode == "headless":
                rate = headless(cfg)
            else:
                rate, ui = dashboard(cfg, size)
                note = f"  (UI thread: {100 * ui:.1f}% of a core)"
            rates[mode].append(rate)
            print(f"pair {i + 1}  {mode:<9}  {rate:7.2f} steps/s{note}", flush=True)
    h, d = statistics.median(rates["headless"]), statistics.median(rates["dashboard"])
    pairs = [b / a for a, b in zip(rates["headless"], rates["dashboard"], strict=True)]
    ratio = statistics.median(pairs)
    print(f"\nmedian steps/s: headless {h:.2f}, dashboard {d:.2f} ({size[0]}x{size[1]})")
    print(f"dashboard/headless per pair: {', '.join(f'{r:.3f}' for r in pairs)}")
    print(f"slowdown with the dashboard open (median of pairs): {100 * (1 - ratio):+.1f}%  (ratio {ratio:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--epochs", type=int, default=4, help="at least 2: the first is not measured")
    parser.add_argument("--repeats", type=int, default=5, help="headless/dashboard pairs")
    parser.add_argument("--size", default="120x40", help="terminal size of the dashboard, WxH")
    parser.add_argument("--soak", type=float, metavar="MINUTES", help="a long run instead: flat memory, backlog, frames")
    parser.add_argument("--json", type=Path, help="with --soak: also write the minutes here")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override, repeatable")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    out = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    path = presets.find(args.preset)
    if args.soak:
        cfg = cfgmod.resolve(cfgmod.load_toml(path), str(path),
                             ["run.epochs=1000000", f"run.out_dir={out}", "checkpoint.keep_last=1", *args.sets])
        report(asyncio.run(soak(live_app(Run(cfg, preset=args.preset)), args.soak, (width, height))), args.json)
    else:
        cfg = cfgmod.resolve(cfgmod.load_toml(path), str(path),
                             [*PINNED, f"run.epochs={args.epochs}", f"run.out_dir={out}", *args.sets])
        compare(cfg, args.repeats, (width, height))
    print(f"runs written under {out}")


if __name__ == "__main__":
    main()
