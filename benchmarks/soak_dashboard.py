"""A long dashboard run at full speed: memory, the event backlog and the UI's frame time must stay flat.

The demo trains inside the real dashboard (App.run_test: a real screen size and refresh
timer) for ``--minutes`` (30 by default) without pause. Once a minute it records the
process's resident memory, the events waiting in the live buffer for the UI, the size of
the history the UI draws from, the steps per second, and the time the UI took per refresh
(mean and worst of that minute). It then stops the run through the same command a key
sends and prints the table and the change from the second minute to the last: the first
minute holds one-time start-up costs.

    python benchmarks/soak_dashboard.py                  # 30 minutes, demo preset, 120x40
    python benchmarks/soak_dashboard.py --minutes 5 --json soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from lgcn_tui import config as cfgmod
from lgcn_tui import presets
from lgcn_tui.contract import commands as cmd
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.ui.app import Dashboard, live_app


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--size", default="120x40")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override, repeatable")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    out = Path(tempfile.mkdtemp(prefix="soak-dashboard-"))
    path = presets.find(args.preset)
    cfg = cfgmod.resolve(cfgmod.load_toml(path), str(path),
                         ["run.epochs=1000000", f"run.out_dir={out}", "checkpoint.keep_last=1", *args.sets])
    rows = asyncio.run(soak(live_app(Run(cfg, preset=args.preset)), args.minutes, (width, height)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if len(rows) >= 3:
        first, last = rows[1], rows[-1]
        print(f"\nfrom minute {first['minute']} to {last['minute']}: RSS {first['rss_mb']:.0f} -> {last['rss_mb']:.0f} MB, "
              f"buffered events {first['buffered_events']} -> {last['buffered_events']}, frame mean "
              f"{first['frame_ms_mean']:.1f} -> {last['frame_ms_mean']:.1f} ms, steps/s "
              f"{first['steps_per_s']:.1f} -> {last['steps_per_s']:.1f}")
    print(f"run directory under {out}")


if __name__ == "__main__":
    main()
