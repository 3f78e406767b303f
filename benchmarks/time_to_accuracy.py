"""Time to accuracy: test Recall@20 / NDCG@20 against wall-clock seconds and epochs, one curve per objective.

Each curve trains a preset with its overrides, evaluates after every epoch (the time
counts: evaluation is part of getting there) and stops when its budget of wall-clock
minutes is spent. Written to OUT: ``curves.csv`` (one row per evaluation), ``curves.png``
(extra ``plot``) and ``table.md``: seconds and epochs to reach each threshold, and the best
value within the budget.

    python benchmarks/time_to_accuracy.py --minutes 60 \\
        'bpr-paper=gowalla-paper' \\
        'softmax=gowalla-paper;objective.loss="softmax"' \\
        'xsimgcl=gowalla-paper;objective.terms=["reg","xsimgcl"];model.layers=2'

A curve is ``NAME=PRESET`` followed by ``;key=value`` overrides. The presets' own eval
cadence is replaced by one evaluation per epoch and a curve runs until its budget ends
(unless its overrides set ``run.epochs``); the metric is the preset's
``eval.best_metric`` split (test for the Gowalla paper split, which trains on train + valid).
Tune on a validation split, never on test: run the same curves with
``data.valid_into_train=false`` and ``eval.best_metric="valid/recall@20"`` first.

Curves measured in separate runs (two at a time, say, each on one thread) are put into one
table and plot with ``--merge OUT1/curves.csv OUT2/curves.csv --out OUT``.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lgcn_tui import config as cfgmod
from lgcn_tui import presets
from lgcn_tui.contract import commands as cmd
from lgcn_tui.contract import events as ev
from lgcn_tui.run.lifecycle import Run

THRESHOLDS = (0.15, 0.17, 0.1830)


@dataclass
class Curve:
    """Evaluations of one run as they come: ``(seconds since the first step, epoch, recall, ndcg)``."""

    name: str
    split: str
    budget: float
    run: Run | None = None
    started: float | None = None
    points: list[tuple[float, int, float, float]] = field(default_factory=list)

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepMetrics) and self.started is None:
            self.started = time.perf_counter()
        elif isinstance(event, ev.EvalResult) and event.model == "lightgcn" and event.split == self.split:
            assert self.started is not None
            seconds = time.perf_counter() - self.started
            self.points.append((seconds, event.epoch, event.metrics["recall@20"], event.metrics["ndcg@20"]))
            print(f"{self.name:>12}  epoch {event.epoch:4d}  {seconds:8.1f} s  recall@20 {event.metrics['recall@20']:.4f}"
                  f"  ndcg@20 {event.metrics['ndcg@20']:.4f}", flush=True)
            if seconds >= self.budget and self.run is not None:
                self.run.send(cmd.Stop(save=False))

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def reached(self, threshold: float) -> str:
        hit = next(((s, e) for s, e, r, _ in self.points if r >= threshold), None)
        return f"{hit[0]:.0f} s / {hit[1]} ep" if hit else "—"


def parse_curve(text: str, out: Path) -> tuple[str, cfgmod.Config]:
    name, _, spec = text.partition("=")
    preset, *overrides = spec.split(";")
    # The curve's own overrides come last: one may set run.epochs, e.g. to decay the rate over that many.
    cfg = cfgmod.from_preset(presets.find(preset),
                             ["eval.every=1", "eval.patience=0", "eval.sim_pairs=0", "eval.ks=[20]",
                              "run.epochs=100000", *overrides, f'run.out_dir="{out / name}"', f'run.name="{name}"'])
    return name, cfg


def train(name: str, cfg: cfgmod.Config, minutes: float) -> Curve:
    curve = Curve(name, cfg.eval.best_metric.split("/")[0], 60 * minutes)
    run = Run(cfg, preset=name, sinks=[curve])
    curve.run = run
    run.complete()
    return curve


def read(path: Path) -> list[Curve]:
    """The curves of a ``curves.csv`` this script wrote, in the order they appear."""
    curves: dict[str, Curve] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            curve = curves.setdefault(row["curve"], Curve(row["curve"], "", 0.0))
            curve.points.append((float(row["seconds"]), int(row["epoch"]), float(row["recall@20"]),
                                 float(row["ndcg@20"])))
    return list(curves.values())


def write(curves: list[Curve], out: Path) -> None:
    with open(out / "curves.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["curve", "seconds", "epoch", "recall@20", "ndcg@20"])
        for c in curves:
            writer.writerows([c.name, f"{s:.1f}", e, f"{r:.5f}", f"{n:.5f}"] for s, e, r, n in c.points)
    header = ["curve", *(f"to {t}" for t in THRESHOLDS), "best recall@20 (s / ep)", "its ndcg@20"]
    rows = []
    for c in curves:
        best = max(c.points, key=lambda p: p[2], default=None)
        rows.append([c.name, *(c.reached(t) for t in THRESHOLDS),
                     f"{best[2]:.4f} ({best[0]:.0f} s / {best[1]} ep)" if best else "—",
                     f"{best[3]:.4f}" if best else "—"])
    table = "\n".join("| " + " | ".join(map(str, r)) + " |" for r in [header, ["---"] * len(header), *rows])
    (out / "table.md").write_text(table + "\n")
    print("\n" + table)
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("no plot: pip install 'lgcn-tui[plot]'")
        return
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for c in curves:
        ax.plot([s / 60 for s, *_ in c.points], [r for _, _, r, _ in c.points], marker=".", label=c.name)
    for t in THRESHOLDS:
        ax.axhline(t, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("wall-clock minutes (evaluation included)")
    ax.set_ylabel("Recall@20")
    ax.legend()
    fig.savefig(out / "curves.png", dpi=120, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("curves", nargs="*", help="NAME=PRESET[;key=value...]")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="CSV",
                        help="write one table and plot from these curves.csv files instead of training")
    parser.add_argument("--minutes", type=float, default=60, help="wall-clock budget of each curve")
    parser.add_argument("--out", type=Path, help="where the runs, curves.csv, curves.png and table.md go")
    args = parser.parse_args()
    if args.merge and args.curves:
        parser.error("--merge writes the table from curves.csv files; give no curves to train with it")
    if not args.merge and not args.curves:
        parser.error("name at least one curve to train (NAME=PRESET[;key=value...]) or --merge curves.csv files")
    missing = [str(p) for p in args.merge or () if not p.is_file()]
    if missing:
        parser.error(f"--merge: no such file: {', '.join(missing)} (give the curves.csv a run of this script wrote)")
    out = args.out or Path(tempfile.mkdtemp(prefix="time-to-accuracy-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        write([c for path in args.merge for c in read(path)], out)
        return
    specs = [parse_curve(text, out) for text in args.curves]  # every curve checked before the first trains
    write([train(name, cfg, args.minutes) for name, cfg in specs], out)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
