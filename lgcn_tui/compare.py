"""``lgcn-tui compare``: runs side by side — what their configs set differently and how they scored — and an overlay plot.

Every number is read back from the runs' own ``config.toml`` and ``metrics.jsonl``, so any
runs compare, finished or still training, from this package's presets or not. Nothing here
imports torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import config as cfgmod
from .errors import UserError
from .run import catalog
from .rundir import RunDir

SPLITS = ("valid", "test")
METRICS = ("recall@20", "ndcg@20")
PLOT_HINT = "pip install 'lgcn-tui[plot]'"
LOSS_POINTS = 1000
MISSING = "—"


@dataclass(frozen=True)
class Evaluation:
    """One split's metrics at ``step``; ``seconds`` is the run's training wall-clock then."""

    step: int
    seconds: float
    split: str
    metrics: dict[str, float]
    best: bool


@dataclass
class History:
    """Loss points ``(step, seconds, mean loss of the bin that ends at step)`` and the evaluations of one run."""

    loss: list[tuple[int, float, float]] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)

    def best(self) -> dict[str, dict[str, float]]:
        """Metrics per split at the last evaluation the run marked best: the one ``best.pt`` holds.
        Only the split that chose it carries the mark, so every split is read at its step."""
        marked = [e.step for e in self.evaluations if e.best]
        return {e.split: e.metrics for e in self.evaluations if e.step == marked[-1]} if marked else {}

    def final(self) -> dict[str, dict[str, float]]:
        """Metrics per split at each split's last evaluation."""
        return {e.split: e.metrics for e in self.evaluations}


@dataclass(frozen=True)
class Compared:
    summary: catalog.RunSummary
    config: dict[str, Any]
    history: History


STEP, EVAL, STARTED = (json.dumps({"event": kind})[:-1].encode() for kind in ("step", "eval", "run_started"))
SAMPLES_PER_POINT = 100


def read_history(metrics: Path, steps: int) -> History:
    """Losses and evaluations, each with the training wall-clock it was reached at.

    The loss is averaged over bins of consecutive steps, at most ``LOSS_POINTS`` for a run of
    ``steps``, each bin from up to ``SAMPLES_PER_POINT`` evenly spaced steps of it: a run of
    millions of steps is drawn smoothed, held in little memory, and read at the speed of its
    file rather than of the JSON parser (only the lines used are parsed). Wall-clock runs
    inside each stretch of training (from a ``run_started`` line to the last line read before
    the next), so the time a run sat stopped before ``--resume`` does not count.
    """
    size = max(1, -(-steps // LOSS_POINTS))
    stride = max(1, size // SAMPLES_PER_POINT)
    history, offset, start, last = History(), 0.0, 0.0, None
    seen, total, count, at = 0, 0.0, 0, (0, 0.0)
    if not metrics.exists():
        return history
    with open(metrics, "rb") as fh:
        for raw in fh:
            if raw.startswith(STEP):
                seen += 1
                if seen % stride and seen % size:
                    continue
            elif not raw.startswith((EVAL, STARTED)):
                continue
            try:
                line = json.loads(raw) if raw.endswith(b"\n") else None
            except ValueError:
                line = None  # a line cut by a crash is not worth failing the comparison for
            if line is None:
                continue
            t = float(line["t"])
            if line["event"] == "run_started":
                offset += last - start if last is not None else 0.0
                start, last = t, None
                continue
            last = t
            seconds = offset + t - start
            if line["event"] == "step":
                if isinstance(line.get("loss"), (int, float)):
                    total, count, at = total + line["loss"], count + 1, (line["step"], seconds)
                if seen % size == 0 and count:
                    history.loss.append((*at, total / count))
                    total, count = 0.0, 0
            elif line.get("model", "lightgcn") == "lightgcn":
                history.evaluations.append(Evaluation(step=line["step"], seconds=seconds, split=line["split"],
                                                      metrics=line["metrics"], best=bool(line.get("best"))))
    if count:
        history.loss.append((*at, total / count))
    return history


def flat_config(run: RunDir) -> dict[str, Any]:
    """``section.key`` → value, as the run's config.toml holds them."""
    return {f"{section}.{key}": value for section, values in cfgmod.load_toml(run.config).items()
            for key, value in (values.items() if isinstance(values, dict) else [])}


def differences(configs: list[dict[str, Any]]) -> list[str]:
    """The keys whose values are not the same in every config (a key one of them lacks counts)."""
    keys = sorted({key for config in configs for key in config})
    return [key for key in keys if any(key not in c or c[key] != configs[0].get(key) for c in configs)]


def load(refs: list[str]) -> list[Compared]:
    if len(refs) < 2:
        raise UserError(f"compare needs at least two runs, got {len(refs)}; e.g. `lgcn-tui compare latest "
                        "demo-2026` (names, unique starts of names, latest, or run directories)")
    paths = [catalog.resolve(ref) for ref in refs]
    real = [p.resolve() for p in paths]
    repeated = sorted({str(p) for p, r in zip(paths, real) if real.count(r) > 1})
    if repeated:
        raise UserError(f"{', '.join(repeated)} is named more than once in `{' '.join(refs)}`; name each run once")
    out = []
    for path in paths:
        summary, run = catalog.summarise(path, catalog.label(path)), RunDir(path)
        out.append(Compared(summary, flat_config(run), read_history(run.metrics, summary.record.steps)))
    return out


def _value(value: Any) -> str:
    return MISSING if value is None else json.dumps(value) if isinstance(value, str) else str(value)


def _clock(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def table(runs: list[Compared]) -> Table:
    """Config differences first, then where each run got to, then metrics at best.pt and at the end;
    the highest value of each metric row is bold."""
    table = Table("", *(escape(r.summary.name) for r in runs), title=f"{len(runs)} runs compared",
                  caption="config: only the keys whose values differ. best: the evaluation best.pt holds "
                          "(by eval.best_metric); final: the last evaluation. wall-clock: time training, "
                          "evaluations included, stops before a --resume not.", caption_justify="left")
    changed = differences([r.config for r in runs])
    for key in changed:
        table.add_row(key, *(escape(_value(r.config.get(key))) for r in runs))
    if not changed:
        table.add_row("config", *("identical" for _ in runs))
    table.add_section()
    table.add_row("state", *(r.summary.state for r in runs))
    table.add_row("steps", *(f"{r.summary.record.steps:,}" for r in runs))
    table.add_row("wall-clock", *(_clock(r.history.loss[-1][1]) if r.history.loss else MISSING for r in runs))
    table.add_section()
    for label, pick in (("best", History.best), ("final", History.final)):
        scores = [pick(r.history) for r in runs]
        for split in SPLITS:
            for metric in METRICS:
                values = [s.get(split, {}).get(metric) for s in scores]
                if all(v is None for v in values):
                    continue
                top = max(v for v in values if v is not None)
                table.add_row(f"{label} {split} {metric}",
                              *(MISSING if v is None else f"[bold]{v:.4f}[/]" if v == top else f"{v:.4f}"
                                for v in values))
    return table


def plot(runs: list[Compared], target: Path) -> str:
    """Loss and Recall@20 against step and against wall-clock, one line per run, as a 2×2 PNG;
    returns the line to print (the path, or why not).

    matplotlib is an optional extra, imported here only; ``Figure`` without pyplot keeps it
    free of any GUI backend and global state.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return f"skipped the plot: matplotlib is not installed ({PLOT_HINT})"
    split = next((s for s in SPLITS if any(e.split == s for r in runs for e in r.history.evaluations)), "valid")
    longest = max((r.history.loss[-1][1] for r in runs if r.history.loss), default=0.0)
    unit, scale = ("h", 3600.0) if longest > 2 * 3600 else ("min", 60.0) if longest > 120 else ("s", 1.0)
    fig = Figure(figsize=(11.0, 7.5), dpi=110, layout="constrained")
    (loss_step, loss_time), (recall_step, recall_time) = fig.subplots(2, 2)
    for r in runs:
        points = r.history.loss
        line, = loss_step.plot([p[0] for p in points], [p[2] for p in points], label=r.summary.name)
        loss_time.plot([p[1] / scale for p in points], [p[2] for p in points], color=line.get_color())
        evals = [e for e in r.history.evaluations if e.split == split and "recall@20" in e.metrics]
        recall = [e.metrics["recall@20"] for e in evals]
        style = {"color": line.get_color(), "marker": "o" if len(evals) <= 60 else None, "markersize": 3}
        recall_step.plot([e.step for e in evals], recall, **style)
        recall_time.plot([e.seconds / scale for e in evals], recall, **style)
    for ax, x, y in ((loss_step, "step", "loss"), (loss_time, f"wall-clock ({unit})", "loss"),
                     (recall_step, "step", f"{split} Recall@20"), (recall_time, f"wall-clock ({unit})", f"{split} Recall@20")):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
    loss_step.legend(fontsize="small")
    fig.suptitle(f"loss (averaged into at most {LOSS_POINTS} points per run) and {split} Recall@20; "
                 "wall-clock leaves out time spent stopped")
    try:
        fig.savefig(target)
    except OSError as exc:
        raise UserError(f"cannot write the plot to {target}: {exc.strerror or exc}; pass --plot PATH in a "
                        "folder you can write to") from exc
    return f"plot: {target}"


def compare(refs: list[str], target: Path, console: Console) -> None:
    runs = load(refs)
    console.print(table(runs))
    console.print(plot(runs, target), highlight=False)
