"""``lgcn-tui ablate``: one preset and seed trained in each item mode, compared in one table.

The modes answer the question the package exists for — does starting items from text
help, and should the text vectors then be fine-tuned? — on the user's own data:

    frozen     text vectors as they are            (model.item_mode = frozen)
    learnable  text vectors, fine-tuned            (model.item_mode = learnable)
    residual   α·text + (1 − α)·learned            (model.item_mode = residual)
    random     Xavier items, no text               (model.item_init = xavier, same width)

The ablation directory holds one ordinary run directory per mode, so each can be
watched, resumed, evaluated and exported like any other run::

    ABLATION_DIR/
      ablation.json              preset and overrides of the command that created it
      frozen/ learnable/ ...     run directories
      results.md, results.csv    the comparison table
      recall.png                 Recall@20 per epoch of each mode (extra ``plot``)

Every number in the table is read back from the runs' own ``metrics.jsonl``, never
carried over in memory, so ``--report`` rebuilds it at any time — also while a mode is
still training. Modes run one after another. Re-running the same command on the same
directory skips finished modes and resumes an unfinished one from its newest checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from . import __version__, presets, rundir
from . import config as cfgmod
from .contract import events as ev
from .errors import UserError
from .headless import run_headless
from .run import checkpoints as ckpt
from .run.lifecycle import Run
from .sinks.jsonl import load_events

MODES: dict[str, dict[str, str]] = {
    "frozen": {"model.item_init": "pretrained", "model.item_mode": "frozen"},
    "learnable": {"model.item_init": "pretrained", "model.item_mode": "learnable"},
    "residual": {"model.item_init": "pretrained", "model.item_mode": "residual"},
    "random": {"model.item_init": "xavier", "model.item_mode": "learnable"},
}
MODE_KEYS = ("model.item_init", "model.item_mode")
MANIFEST = "ablation.json"
PLOT_FILE = "recall.png"
PLOT_HINT = "pip install 'lgcn-tui[plot]'"
SPLITS = ("valid", "test")
INTERRUPTED = 130
UNBOUNDED = 10_000  # columns offered when measuring a table's natural width


# ----- planning ---------------------------------------------------------------------------
def parse_modes(values: list[str]) -> list[str]:
    """Modes named on the command line (repeatable, comma separated), in the canonical order."""
    asked = {v.strip() for value in values for v in value.split(",") if v.strip()}
    unknown = sorted(asked - set(MODES))
    if unknown:
        raise UserError(f"--modes: unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    return [m for m in MODES if m in asked] if asked else list(MODES)


def plan(preset: str, overrides: list[str], modes: list[str], out: Path | None) -> tuple[Path, dict[str, cfgmod.Config]]:
    """The ablation directory and each mode's fully resolved config, validated before any work.

    The directory is ``out`` when given, else ``RUN.OUT_DIR/ablate-RUN.NAME`` of the preset
    and overrides, as ``train`` places a run. Each mode is the preset plus the user's
    ``--set`` overrides plus the mode's own item keys; the user may not set those keys,
    since the mode decides them.
    """
    for text in overrides:
        key, _ = cfgmod.parse_override(text)
        if key in MODE_KEYS:
            raise UserError(f"--set {text}: {key} is chosen by each ablation mode; "
                            f"pick modes with --modes ({', '.join(MODES)}) instead")
    path = presets.find(preset)
    base = cfgmod.from_preset(path, overrides)
    where = out if out is not None else Path(base.run.out_dir) / f"ablate-{base.run.name}"
    configs: dict[str, cfgmod.Config] = {}
    for mode in modes:
        cfg = cfgmod.from_preset(path, overrides)
        for key, value in MODES[mode].items():
            cfgmod.apply(cfg, key, value, f"ablation mode {mode}")
        if mode == "random":
            cfg.model.dim = text_dim(base)
        cfg.run.out_dir = str(where)
        cfg.run.name = f"{base.run.name}-{mode}"
        cfgmod.validate(cfg)
        configs[mode] = cfg
    return where, configs


def text_dim(cfg: cfgmod.Config) -> int:
    """The width of the item vectors in the text modes, which ``random`` must match.

    The text modes take their width from the vectors (``data.pca_dim`` when set), not from
    ``model.dim``; a random control of another width would compare capacity as well as text.
    """
    data = cfg.data
    if data.pca_dim:
        return data.pca_dim
    if data.format == "synthetic":
        return data.synthetic_dim
    return data.pretrained_dim if data.pretrained else cfg.model.dim


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every config key that differs, ignoring where the run lives."""
    out = []
    for section, values in new.items():
        for key, value in values.items():
            if (section, key) != ("run", "out_dir") and old.get(section, {}).get(key) != value:
                out.append(f"{section}.{key}: {old.get(section, {}).get(key)!r} -> {value!r}")
    return out


def check_directory(where: Path, configs: dict[str, cfgmod.Config]) -> None:
    """Refuse a directory that is not this ablation: a foreign folder, or a mode run with other settings.

    Re-running is how an ablation resumes, so a run already in the directory must have
    been configured exactly as this command would configure it.
    """
    if not where.exists():
        return
    if not where.is_dir():
        raise UserError(f"the ablation directory {where} is a file; pass a directory with --out DIR")
    if not (where / MANIFEST).is_file() and any(where.iterdir()):
        raise UserError(f"{where} exists and is not an ablation directory (no {MANIFEST}); "
                        "choose another with --out DIR")
    for mode, cfg in configs.items():
        run = rundir.RunDir(where / mode)
        if run.config.is_file():
            changed = _differences(run.load_config().to_dict(), cfg.to_dict())
            if changed:
                raise UserError(f"{run.path} was trained with other settings than this command asks for "
                                f"({'; '.join(changed)}); repeat the original --preset/--set to resume it, "
                                "or pass --out NEW_DIR for a new ablation")


def last_state(run: rundir.RunDir) -> str | None:
    """The run's last recorded state (running, done, stopped, ...), or None before its first."""
    states = [e.state for e in load_events(run.metrics) if isinstance(e, ev.StateChanged)]
    return states[-1] if states else None


# ----- running ----------------------------------------------------------------------------
def run_ablation(preset: str, overrides: list[str], modes: list[str], out: Path | None, console: Console) -> int:
    """Train every mode not finished yet, then write and print the report; returns an exit code.

    A mode that does not finish (Ctrl-C, ``lgcn-tui send RUN_DIR stop``, an error) ends the
    ablation there: finished modes stay as they are, the unfinished one keeps its
    checkpoint, and the same command later resumes it.
    """
    where, configs = plan(preset, overrides, modes, out)
    if out is not None and any(cfgmod.parse_override(text)[0] == "run.out_dir" for text in overrides):
        console.print(f"--out {out} wins over --set run.out_dir: the ablation directory is {out}",
                      markup=False, highlight=False)
    check_directory(where, configs)
    where.mkdir(parents=True, exist_ok=True)
    manifest = where / MANIFEST
    if not manifest.exists():
        manifest.write_text(json.dumps({"preset": preset, "overrides": overrides, "created": time.time(),
                                        "version": __version__}, indent=1))
    try:
        for n, (mode, cfg) in enumerate(configs.items(), start=1):
            run = rundir.RunDir(where / mode)
            if last_state(run) == "done":
                console.print(f"[green]{mode}[/] finished earlier in {run.path}; skipped")
                continue
            console.rule(f"ablation {where}: {mode} ({n}/{len(configs)})")
            if run.config.is_file() and ckpt.latest(run.checkpoints) is not None:
                mode_run = Run(cfg, preset=preset, resume=run.path)
            else:
                # Nothing to resume: whatever a start left behind is history without a state.
                run.metrics.unlink(missing_ok=True)
                mode_run = Run(cfg, preset=preset, directory=run.path)
            code = run_headless(mode_run, console)
            if last_state(run) != "done":
                write_report(where, console)
                console.print(f"[yellow]ablation stopped: {mode} did not finish; finished modes are kept. "
                              "Run the same command again to resume it.[/]")
                return code or 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted between runs: finished modes are kept; run the same command "
                      "again to continue[/]")
        return INTERRUPTED
    write_report(where, console)
    return 0


# ----- reading results --------------------------------------------------------------------
@dataclass
class Evaluation:
    """One evaluation of a run: the metrics of each split it scored, and the diagnostics after it."""

    epoch: int
    step: int
    best: bool = False
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    retention: float | None = None


@dataclass
class ModeResult:
    mode: str
    run: Path
    best_metric: str
    state: str
    epochs_done: int
    epochs: int
    train_seconds: float
    steps_per_epoch: int
    evaluations: list[Evaluation]
    popularity: dict[str, dict[str, float]]

    @property
    def best(self) -> Evaluation | None:
        """The evaluation whose weights are ``best.pt``: the last one that improved ``best_metric``."""
        chosen = [e for e in self.evaluations if e.best]
        return chosen[-1] if chosen else None


def evaluations_of(events: list[ev.Event]) -> list[Evaluation]:
    """Group a run's eval events (one per split, published back to back) into evaluations."""
    out: list[Evaluation] = []
    for e in events:
        if isinstance(e, ev.EvalResult) and e.model == "lightgcn":
            current = out[-1] if out else None
            if current is None or current.step != e.step or e.split in current.metrics:
                current = Evaluation(epoch=e.epoch, step=e.step)
                out.append(current)
            current.metrics[e.split] = e.metrics
            current.best = current.best or e.best
        elif isinstance(e, ev.Diagnostics) and out and out[-1].step == e.step and out[-1].retention is None:
            out[-1].retention = e.retention
    return out


def read_mode(mode: str, run: rundir.RunDir) -> ModeResult:
    """Everything the report says about one mode, from its config.toml and metrics.jsonl."""
    cfg = run.load_config()
    events = load_events(run.metrics)
    started = [e for e in events if isinstance(e, ev.RunStarted)]
    states = [e.state for e in events if isinstance(e, ev.StateChanged)]
    epoch_ends = [e for e in events if isinstance(e, ev.EpochEnd)]
    popularity = {e.split: e.metrics for e in events if isinstance(e, ev.EvalResult) and e.model == "popularity"}
    return ModeResult(mode=mode, run=run.path, best_metric=cfg.eval.best_metric,
                      state=str(states[-1]) if states else "not started", epochs_done=len(epoch_ends),
                      epochs=cfg.run.epochs, train_seconds=sum(e.seconds for e in epoch_ends),
                      steps_per_epoch=started[-1].steps_per_epoch if started else 1,
                      evaluations=evaluations_of(events), popularity=popularity)


def read_ablation(where: Path) -> tuple[dict[str, Any], list[ModeResult]]:
    """The manifest and the results of every mode present, in the canonical mode order."""
    if not (where / MANIFEST).is_file():
        raise UserError(f"{where} is not an ablation directory: {where / MANIFEST} is missing "
                        "(pass the directory `lgcn-tui ablate` printed)")
    manifest = json.loads((where / MANIFEST).read_text())
    results = [read_mode(m, rundir.RunDir(where / m)) for m in MODES if (where / m / "config.toml").is_file()]
    return manifest, results


# ----- the report -------------------------------------------------------------------------
def shown_k(results: list[ModeResult]) -> int:
    """The cut-off the table and plot show: 20 when evaluated, else the largest K evaluated."""
    ks = {int(key.split("@")[1]) for r in results for e in r.evaluations for m in e.metrics.values() for key in m}
    return 20 if 20 in ks or not ks else max(ks)


def _splits(results: list[ModeResult]) -> list[str]:
    present = {s for r in results for e in r.evaluations for s in e.metrics}
    return [s for s in SPLITS if s in present]


def _status(r: ModeResult) -> str:
    if r.state == "done":
        return "done" if r.epochs_done == r.epochs else f"done (early stop at {r.epochs_done})"
    return f"{r.state} at epoch {r.epochs_done}/{r.epochs}"


def rows(results: list[ModeResult], k: int) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows shared by the console table and results.md."""
    splits = _splits(results)
    header = ["mode", *(f"{s} {m}@{k}" for s in splits for m in ("Recall", "NDCG")),
              "best epoch", "train s", "retention", "status"]
    body = []
    for r in results:
        best = r.best
        metrics = [f"{best.metrics[s][f'{m}@{k}']:.4f}" if best and s in best.metrics else "—"
                   for s in splits for m in ("recall", "ndcg")]
        retention = f"{best.retention:.3f}" if best and best.retention is not None else "—"
        body.append([r.mode, *metrics, str(best.epoch) if best else "—", f"{r.train_seconds:.1f}", retention,
                     _status(r)])
    popularity = next((r.popularity for r in results if r.popularity), None)
    if popularity:
        body.append(["popularity", *(f"{popularity[s][f'{m}@{k}']:.4f}" if s in popularity else "—"
                                     for s in splits for m in ("recall", "ndcg")), "—", "—", "—", "baseline"])
    return header, body


def _caption(manifest: dict[str, Any], results: list[ModeResult]) -> str:
    best_metric = results[0].best_metric if results else "?"
    overrides = " ".join(manifest.get("overrides") or []) or "none"
    warn = (" The best checkpoint is chosen on test here, so test numbers are optimistic."
            if best_metric.startswith("test/") else "")
    return (f"preset {manifest.get('preset')}, overrides: {overrides}. Metrics of each mode's best checkpoint "
            f"(best.pt, chosen by {best_metric}); best epoch: the epoch it was saved after; train s: time in "
            f"training steps summed over epochs (evaluation excluded); retention: mean cosine of the item "
            f"vectors at that checkpoint to their start.{warn}")


def results_csv(results: list[ModeResult]) -> str:
    """One row per mode with every metric at every K, at full precision, for other tools."""
    splits = _splits(results)
    keys = sorted({key for r in results for e in r.evaluations for m in e.metrics.values() for key in m},
                  key=lambda key: (key.split("@")[0] != "recall", int(key.split("@")[1])))
    fields = ["mode", "state", "best_metric", "best_epoch", "epochs_done", "epochs", "train_seconds",
              "retention", *(f"{s}_{key}" for s in splits for key in keys), "run_dir"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in results:
        best = r.best
        row: dict[str, Any] = {"mode": r.mode, "state": r.state, "best_metric": r.best_metric,
                               "best_epoch": best.epoch if best else "", "epochs_done": r.epochs_done,
                               "epochs": r.epochs, "train_seconds": r.train_seconds,
                               "retention": best.retention if best and best.retention is not None else "",
                               "run_dir": str(r.run)}
        for s in splits:
            for key in keys:
                row[f"{s}_{key}"] = best.metrics.get(s, {}).get(key, "") if best else ""
        writer.writerow(row)
    popularity = next((r.popularity for r in results if r.popularity), None)
    if popularity:
        writer.writerow({"mode": "popularity", "state": "baseline",
                         **{f"{s}_{key}": popularity.get(s, {}).get(key, "") for s in splits for key in keys}})
    return buf.getvalue()


def results_md(manifest: dict[str, Any], results: list[ModeResult], k: int, plotted: bool) -> str:
    header, body = rows(results, k)
    lines = [f"# Ablation of item modes: preset {manifest.get('preset')}", "", _caption(manifest, results), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    if plotted:
        lines += ["", f"![Recall@{k} per epoch]({PLOT_FILE})"]
    return "\n".join(lines) + "\n"


def plot(results: list[ModeResult], k: int, target: Path) -> str:
    """Recall@K per epoch of each mode as a PNG; returns the line to print (the path, or why not).

    matplotlib is an optional extra, imported here only; ``Figure`` without pyplot keeps
    it free of any GUI backend and global state.
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return f"skipped the plot: matplotlib is not installed ({PLOT_HINT})"
    split = results[0].best_metric.split("/")[0] if results else "valid"
    fig = Figure(figsize=(7.0, 4.2), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    for r in results:
        points = [(e.step / r.steps_per_epoch, e.metrics[split][f"recall@{k}"])
                  for e in r.evaluations if f"recall@{k}" in e.metrics.get(split, {})]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3, label=r.mode)
    popularity = next((r.popularity[split] for r in results if split in r.popularity), None)
    if popularity and f"recall@{k}" in popularity:
        ax.axhline(popularity[f"recall@{k}"], linestyle="--", color="grey", label="popularity")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{split} Recall@{k}")
    ax.set_title(f"{split} Recall@{k} per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(target)
    return f"plot: {target}"


def print_whole(table: Table, console: Console) -> None:
    """Print ``table`` with no cell cut short when the output is a pipe or a file.

    There rich assumes 80 columns and shortens cells to "Recal…"; a report read from a log
    must be whole, so the console gets the table's natural width for this one print. A
    terminal keeps its own width: the reader can widen it.
    """
    if console.is_terminal:
        console.print(table)
        return
    needed = Measurement.get(console, console.options.update_width(UNBOUNDED), table).maximum
    width = console.width
    console.width = max(width, needed)
    try:
        console.print(table)
    finally:
        console.width = width


def write_report(where: Path, console: Console) -> int:
    """Print the table and (re)write results.md, results.csv and the plot from the run directories."""
    manifest, results = read_ablation(where)
    if not results:
        raise UserError(f"{where} holds no runs yet; start the ablation with `lgcn-tui ablate --out {where}`")
    k = shown_k(results)
    header, body = rows(results, k)
    title = f"ablation {where}: each mode at its best checkpoint (best.pt, by {results[0].best_metric})"
    table = Table(*header, title=title, caption=_caption(manifest, results), caption_justify="left")
    for row in body:
        table.add_row(*row)
    print_whole(table, console)
    (where / "results.csv").write_text(results_csv(results))
    note = plot(results, k, where / PLOT_FILE)
    plotted = (where / PLOT_FILE).exists() and not note.startswith("skipped")
    (where / "results.md").write_text(results_md(manifest, results, k, plotted))
    console.print(note, markup=False)
    console.print(f"results: {where / 'results.md'}, {where / 'results.csv'}", markup=False)
    return 0
