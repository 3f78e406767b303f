"""``lgcn-tui ablate``: one preset trained in each item mode, under one or more seeds, compared in one table.

The modes answer the question the package exists for — does starting items from text
help, and should the text vectors then be fine-tuned? — on the user's own data. Each mode
is a set of config keys (``MODES``); today:

    frozen     text vectors as they are            (model.item_mode = frozen)
    learnable  text vectors, fine-tuned            (model.item_mode = learnable)
    residual   α·text + (1 − α)·learned            (model.item_mode = residual)
    adapter    a trainable MLP of the text vectors (model.item_mode = adapter)
    random     Xavier items, no text               (model.item_init = xavier, same width)

The ablation directory holds one ordinary run directory per mode and seed, so each can be
watched, resumed, evaluated and exported like any other run::

    ABLATION_DIR/
      ablation.json              preset and overrides of the command that created it
      frozen/ learnable/ ...     run directories (one seed), or
      frozen/seed-0/ ...         one run directory per seed (``--seeds N``)
      results.md, results.csv    the comparison tables (the CSV: one row per run)
      recall.png                 Recall@20 per epoch and by popularity (extra ``plot``)

With several seeds, ``run.seed`` is the preset's seed plus 0..N-1 and changes the
initialisation and the sampling only: ``data.seed`` is pinned to the preset's seed, so
every run sees the same data. The table gives mean ± standard deviation over seeds, and
the verdict calls a difference real only beyond two standard errors of the difference
(Welch: se = √(s₁²/n₁ + s₂²/n₂)), which needs three seeds or more.

Every number in the table is read back from the runs' own ``metrics.jsonl``, never
carried over in memory, so ``--report`` rebuilds it at any time — also while a mode is
still training. Runs go one after another. Re-running the same command on the same
directory skips finished runs and resumes an unfinished one from its newest checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
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
from .train.ranking import GROUPS

MODES: dict[str, dict[str, str]] = {
    "frozen": {"model.item_init": "pretrained", "model.item_mode": "frozen"},
    "learnable": {"model.item_init": "pretrained", "model.item_mode": "learnable"},
    "residual": {"model.item_init": "pretrained", "model.item_mode": "residual"},
    "adapter": {"model.item_init": "pretrained", "model.item_mode": "adapter"},
    "random": {"model.item_init": "xavier", "model.item_mode": "learnable"},
}
MODE_KEYS = ("model.item_init", "model.item_mode")
MANIFEST = "ablation.json"
PLOT_FILE = "recall.png"
PLOT_HINT = "pip install 'lgcn-tui[plot]'"
SPLITS = ("valid", "test")
SEED_FOLDER = "seed-"
JUDGED_FROM = 3  # seeds per mode needed before a difference is called real or noise
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


def plan(preset: str, overrides: list[str], modes: list[str], out: Path | None,
         seeds: int = 1) -> tuple[Path, dict[str, cfgmod.Config]]:
    """The ablation directory and the fully resolved config of every run, validated before any work.

    The directory is ``out`` when given, else ``RUN.OUT_DIR/ablate-RUN.NAME`` of the preset
    and overrides, as ``train`` places a run. Each run is the preset plus the user's
    ``--set`` overrides plus the mode's own item keys; the user may not set those keys,
    since the mode decides them. Runs are keyed by their folder in the directory
    (``run_folder``); with several seeds, seed i is ``run.seed`` + i with the data pinned
    to ``run.seed``'s (``data.seed``, unless the user set it).
    """
    if seeds < 1:
        raise UserError(f"--seeds {seeds} must be at least 1 (runs of each mode, one per seed)")
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
        for seed in range(base.run.seed, base.run.seed + seeds):
            cfg = cfgmod.from_preset(path, overrides)
            for key, value in MODES[mode].items():
                cfgmod.apply(cfg, key, value, f"ablation mode {mode}")
            if cfg.model.item_init == "xavier":
                cfg.model.dim = text_dim(base)
            cfg.run.seed = seed
            if seeds > 1 and cfg.data.seed < 0:
                cfg.data.seed = base.run.seed
            folder = run_folder(mode, seed, seeds)
            cfg.run.out_dir = str((where / folder).parent)
            cfg.run.name = f"{base.run.name}-{mode}" + (f"-seed{seed}" if seeds > 1 else "")
            cfgmod.validate(cfg)
            configs[folder] = cfg
    return where, configs


def run_folder(mode: str, seed: int, seeds: int) -> str:
    """A run's folder in the ablation directory: ``MODE`` with one seed, ``MODE/seed-S`` with several."""
    return mode if seeds == 1 else f"{mode}/{SEED_FOLDER}{seed}"


def seed_runs(folder: Path) -> list[rundir.RunDir]:
    """The per-seed runs of one mode's folder (``seed-S`` holding a config.toml), by seed."""
    if not folder.is_dir():
        return []
    found = [(int(p.name[len(SEED_FOLDER):]), p) for p in folder.iterdir()
             if p.name.startswith(SEED_FOLDER) and p.name[len(SEED_FOLDER):].isdigit() and (p / "config.toml").is_file()]
    return [rundir.RunDir(p) for _, p in sorted(found)]


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
    """``key: old -> new`` for every config key that differs, ignoring where the run lives and
    a setting asked as ``auto`` that the run resolved when it started (``graph.kernel``)."""
    out = []
    for section, values in new.items():
        for key, value in values.items():
            if (section, key) == ("run", "out_dir") or value == "auto":
                continue
            if old.get(section, {}).get(key) != value:
                out.append(f"{section}.{key}: {old.get(section, {}).get(key)!r} -> {value!r}")
    return out


def check_directory(where: Path, configs: dict[str, cfgmod.Config]) -> None:
    """Refuse a directory that is not this ablation: a foreign folder, runs of another seed layout,
    or a run with other settings.

    Re-running is how an ablation resumes, so a run already in the directory must have
    been configured exactly as this command would configure it. More seeds than before may
    be added to a several-seed ablation; one seed and several do not mix.
    """
    if not where.exists():
        return
    if not where.is_dir():
        raise UserError(f"the ablation directory {where} is a file; pass a directory with --out DIR")
    if not (where / MANIFEST).is_file() and any(where.iterdir()):
        raise UserError(f"{where} exists and is not an ablation directory (no {MANIFEST}); "
                        "choose another with --out DIR")
    for folder in configs:
        mode, _, seed = folder.partition("/")
        single = (where / mode / "config.toml").is_file()
        if seed and single:
            raise UserError(f"{where / mode} holds one run (an ablation made with one seed); several seeds "
                            "need another directory: pass --out NEW_DIR")
        if not seed and seed_runs(where / mode):
            raise UserError(f"{where / mode} holds one run per seed (an ablation made with --seeds); repeat "
                            "that --seeds, or pass --out NEW_DIR")
    for folder, cfg in configs.items():
        run = rundir.RunDir(where / folder)
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
def run_ablation(preset: str, overrides: list[str], modes: list[str], out: Path | None, console: Console,
                 seeds: int = 1) -> int:
    """Train every run not finished yet, then write and print the report; returns an exit code.

    A run that does not finish (Ctrl-C, ``lgcn-tui send RUN_DIR stop``, an error) ends the
    ablation there: finished runs stay as they are, the unfinished one keeps its
    checkpoint, and the same command later resumes it.
    """
    where, configs = plan(preset, overrides, modes, out, seeds)
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
        for n, (folder, cfg) in enumerate(configs.items(), start=1):
            run = rundir.RunDir(where / folder)
            if last_state(run) == "done":
                console.print(f"[green]{folder}[/] finished earlier in {run.path}; skipped")
                continue
            console.rule(f"ablation {where}: {folder} ({n}/{len(configs)})")
            if run.config.is_file() and ckpt.latest(run.checkpoints) is not None:
                mode_run = Run(cfg, preset=preset, resume=run.path)
            else:
                # Nothing to resume: whatever a start left behind is history without a state.
                run.metrics.unlink(missing_ok=True)
                mode_run = Run(cfg, preset=preset, directory=run.path)
            code = run_headless(mode_run, console)
            if last_state(run) != "done":
                write_report(where, console)
                console.print(f"[yellow]ablation stopped: {folder} did not finish; finished runs are kept. "
                              "Run the same command again to resume it.[/]")
                return code or 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted between runs: finished runs are kept; run the same command "
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
    """One run of a mode (one seed)."""

    mode: str
    run: Path
    seed: int
    best_metric: str
    head_share: float
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


@dataclass
class ModeRuns:
    """Every run of one mode, by seed (a single run without ``--seeds``)."""

    mode: str
    runs: list[ModeResult]

    def values(self, split: str, key: str) -> list[float]:
        """``key`` of ``split`` at the best checkpoint of each run that has it."""
        return [b.metrics[split][key] for r in self.runs if (b := r.best) and key in b.metrics.get(split, {})]


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
    """Everything the report says about one run, from its config.toml and metrics.jsonl."""
    cfg = run.load_config()
    events = load_events(run.metrics)
    started = [e for e in events if isinstance(e, ev.RunStarted)]
    states = [e.state for e in events if isinstance(e, ev.StateChanged)]
    epoch_ends = [e for e in events if isinstance(e, ev.EpochEnd)]
    popularity = {e.split: e.metrics for e in events if isinstance(e, ev.EvalResult) and e.model == "popularity"}
    return ModeResult(mode=mode, run=run.path, seed=cfg.run.seed, best_metric=cfg.eval.best_metric,
                      head_share=cfg.eval.head_share, state=str(states[-1]) if states else "not started",
                      epochs_done=len(epoch_ends), epochs=cfg.run.epochs,
                      train_seconds=sum(e.seconds for e in epoch_ends),
                      steps_per_epoch=started[-1].steps_per_epoch if started else 1,
                      evaluations=evaluations_of(events), popularity=popularity)


def read_ablation(where: Path) -> tuple[dict[str, Any], list[ModeRuns]]:
    """The manifest and the runs of every mode present, in the canonical mode order."""
    if not (where / MANIFEST).is_file():
        raise UserError(f"{where} is not an ablation directory: {where / MANIFEST} is missing "
                        "(pass the directory `lgcn-tui ablate` printed)")
    manifest = json.loads((where / MANIFEST).read_text())
    results = []
    for mode in MODES:
        single = rundir.RunDir(where / mode)
        runs = [single] if single.config.is_file() else seed_runs(where / mode)
        if runs:
            results.append(ModeRuns(mode, [read_mode(mode, run) for run in runs]))
    return manifest, results


# ----- the report -------------------------------------------------------------------------
def _all_runs(results: list[ModeRuns]) -> list[ModeResult]:
    return [r for m in results for r in m.runs]


def _keys(results: list[ModeRuns]) -> set[str]:
    return {key for r in _all_runs(results) for e in r.evaluations for m in e.metrics.values() for key in m}


def shown_k(results: list[ModeRuns]) -> int:
    """The cut-off the table and plot show: 20 when evaluated, else the largest K evaluated."""
    ks = {int(key.split("@")[1]) for key in _keys(results) if "/" not in key}
    return 20 if 20 in ks or not ks else max(ks)


def _splits(results: list[ModeRuns]) -> list[str]:
    present = {s for r in _all_runs(results) for e in r.evaluations for s in e.metrics}
    return [s for s in SPLITS if s in present]


def _verdict_split(results: list[ModeRuns]) -> str:
    """The split the popularity breakdown and the verdict speak of: test, which chose no checkpoint."""
    splits = _splits(results)
    return "test" if "test" in splits or not splits else splits[0]


def _seeds(results: list[ModeRuns]) -> int:
    return max((len(m.runs) for m in results), default=1)


def _cell(values: list[float], digits: int = 4) -> str:
    """One run's value, or mean ± standard deviation over seeds."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _status(r: ModeResult) -> str:
    if r.state == "done":
        return "done" if r.epochs_done == r.epochs else f"done (early stop at {r.epochs_done})"
    return f"{r.state} at epoch {r.epochs_done}/{r.epochs}"


def _statuses(runs: list[ModeResult]) -> str:
    """``done`` for one run; ``done ×3`` or ``done ×2, running at epoch 4/10`` for several."""
    if len(runs) == 1:
        return _status(runs[0])
    counted: dict[str, int] = {}
    for r in runs:
        counted[_status(r)] = counted.get(_status(r), 0) + 1
    return ", ".join(f"{status} ×{n}" for status, n in counted.items())


def _epochs(runs: list[ModeResult]) -> str:
    """The epoch of each run's best checkpoint: one number, or the range over seeds."""
    epochs = [b.epoch for r in runs if (b := r.best)]
    if not epochs:
        return "—"
    low, high = min(epochs), max(epochs)
    return str(low) if low == high else f"{low}–{high}"


def _popularity(results: list[ModeRuns]) -> dict[str, dict[str, float]] | None:
    return next((r.popularity for r in _all_runs(results) if r.popularity), None)


def rows(results: list[ModeRuns], k: int) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows shared by the console table and results.md."""
    splits = _splits(results)
    header = ["mode", *(f"{s} {m}@{k}" for s in splits for m in ("Recall", "NDCG")),
              "best epoch", "train s", "retention", "status"]
    body = []
    for m in results:
        metrics = [_cell(m.values(s, f"{name}@{k}")) for s in splits for name in ("recall", "ndcg")]
        retention = _cell([b.retention for r in m.runs if (b := r.best) and b.retention is not None], 3)
        seconds = statistics.fmean(r.train_seconds for r in m.runs)
        body.append([m.mode, *metrics, _epochs(m.runs), f"{seconds:.1f}", retention, _statuses(m.runs)])
    popularity = _popularity(results)
    if popularity:
        body.append(["popularity", *(f"{popularity[s][f'{name}@{k}']:.4f}" if s in popularity else "—"
                                     for s in splits for name in ("recall", "ndcg")), "—", "—", "—", "baseline"])
    return header, body


def breakdown_rows(results: list[ModeRuns], k: int) -> tuple[list[str], list[list[str]]] | None:
    """Recall@K and NDCG@K on the head, tail and cold items of the verdict split; None for runs
    evaluated without the breakdown."""
    split = _verdict_split(results)
    keys = [f"{name}@{k}/{g}" for name in ("recall", "ndcg") for g in GROUPS]
    if not any(key in _keys(results) for key in keys):
        return None
    header = ["mode", *(f"{split} {g} {'R' if name == 'recall' else 'N'}@{k}" for name in ("recall", "ndcg")
                        for g in GROUPS)]
    body = [[m.mode, *(_cell(m.values(split, key)) for key in keys)] for m in results]
    popularity = (_popularity(results) or {}).get(split)
    if popularity:
        body.append(["popularity", *(f"{popularity[key]:.4f}" if key in popularity else "—" for key in keys)])
    return header, body


def verdict(results: list[ModeRuns], k: int) -> list[str]:
    """Which mode leads on Recall@K (overall, then on head, tail and cold items) and whether each
    other mode's gap is real: beyond 2 standard errors of the difference (Welch), judged only
    with ``JUDGED_FROM`` seeds or more on both sides."""
    seeds = _seeds(results)
    split = _verdict_split(results)
    if seeds < JUDGED_FROM:
        few = "one seed" if seeds == 1 else f"{seeds} seeds"
        return [f"verdict: {few} per mode, so the spread over seeds is not estimated and no difference is "
                f"called real; run with --seeds {JUDGED_FROM} or more"]
    lines = []
    for suffix, label in (("", ""), *((f"/{g}", f" on {g} items") for g in GROUPS)):
        found = [(m.mode, v) for m in results if (v := m.values(split, f"recall@{k}{suffix}"))]
        if len(found) < 2:
            continue
        found.sort(key=lambda mv: -statistics.fmean(mv[1]))
        (leader, best), others = found[0], found[1:]
        if all(values == best for _, values in others):
            lines.append(f"verdict, {split} Recall@{k}{label}: every mode has {_cell(best)}; no difference")
            continue
        gaps = []
        for mode, values in others:
            gap = statistics.fmean(values) - statistics.fmean(best)
            if min(len(values), len(best)) < JUDGED_FROM:
                gaps.append(f"{mode} {gap:+.4f} (not judged: {min(len(values), len(best))} seeds)")
                continue
            se = math.sqrt(statistics.variance(best) / len(best) + statistics.variance(values) / len(values))
            gaps.append(f"{mode} {gap:+.4f} ({'real' if -gap > 2 * se else 'within noise'}, 2 se {2 * se:.4f})")
        lines.append(f"verdict, {split} Recall@{k}{label}: {leader} leads with {_cell(best)}; "
                     f"{'; '.join(gaps)}")
    if lines:
        lines.append(f"(over {seeds} seeds; a gap is real when it exceeds 2 standard errors of the difference, "
                     "Welch: se = √(s₁²/n₁ + s₂²/n₂))")
    return lines


def _caption(manifest: dict[str, Any], results: list[ModeRuns]) -> str:
    runs = _all_runs(results)
    best_metric = runs[0].best_metric if runs else "?"
    overrides = " ".join(manifest.get("overrides") or []) or "none"
    warn = (" The best checkpoint is chosen on test here, so test numbers are optimistic."
            if best_metric.startswith("test/") else "")
    seeds = _seeds(results)
    spread = (f" {seeds} seeds per mode (run.seed {min(r.seed for r in runs)}..{max(r.seed for r in runs)}; the "
              "data is the same for all): mean ± standard deviation over seeds, best epoch's range." if seeds > 1
              else "")
    share = runs[0].head_share if runs else 0.2
    return (f"preset {manifest.get('preset')}, overrides: {overrides}. Metrics of each run's best checkpoint "
            f"(best.pt, chosen by {best_metric}); best epoch: the epoch it was saved after; train s: time in "
            f"training steps summed over epochs (evaluation excluded); retention: mean cosine of the item "
            f"vectors at that checkpoint to their start.{spread} By popularity: held-out items among the "
            f"{share:.0%} most-trained items (head), the other trained items (tail) and items without training "
            f"interactions (cold), each averaged over the users holding out such an item.{warn}")


def _csv_key(key: str) -> tuple[int, bool, int]:
    """Overall first, then head, tail, cold; recall before ndcg; then by K."""
    metric, _, group = key.partition("/")
    name, _, k = metric.partition("@")
    return (GROUPS.index(group) + 1 if group in GROUPS else 0, name != "recall", int(k))


def results_csv(results: list[ModeRuns]) -> str:
    """One row per run with every metric at every K (and by popularity), at full precision, for other tools."""
    splits = _splits(results)
    keys = sorted(_keys(results), key=_csv_key)
    fields = ["mode", "seed", "state", "best_metric", "best_epoch", "epochs_done", "epochs", "train_seconds",
              "retention", *(f"{s}_{key}" for s in splits for key in keys), "run_dir"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in _all_runs(results):
        best = r.best
        row: dict[str, Any] = {"mode": r.mode, "seed": r.seed, "state": r.state, "best_metric": r.best_metric,
                               "best_epoch": best.epoch if best else "", "epochs_done": r.epochs_done,
                               "epochs": r.epochs, "train_seconds": r.train_seconds,
                               "retention": best.retention if best and best.retention is not None else "",
                               "run_dir": str(r.run)}
        for s in splits:
            for key in keys:
                row[f"{s}_{key}"] = best.metrics.get(s, {}).get(key, "") if best else ""
        writer.writerow(row)
    popularity = _popularity(results)
    if popularity:
        writer.writerow({"mode": "popularity", "state": "baseline",
                         **{f"{s}_{key}": popularity.get(s, {}).get(key, "") for s in splits for key in keys}})
    return buf.getvalue()


def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in body)]


def results_md(manifest: dict[str, Any], results: list[ModeRuns], k: int, plotted: bool) -> str:
    lines = [f"# Ablation of item modes: preset {manifest.get('preset')}", "", _caption(manifest, results), "",
             *_md_table(*rows(results, k))]
    breakdown = breakdown_rows(results, k)
    if breakdown:
        lines += ["", f"By popularity ({_verdict_split(results)} split):", "", *_md_table(*breakdown)]
    lines += ["", *verdict(results, k)]
    if plotted:
        lines += ["", f"![Recall@{k} per epoch and by popularity]({PLOT_FILE})"]
    return "\n".join(lines) + "\n"


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def plot(results: list[ModeRuns], k: int, target: Path) -> str:
    """Recall@K per epoch of each mode (mean over seeds, ± one standard deviation as error bars)
    and, beside it, Recall@K overall and on head / tail / cold items at the best checkpoints, as
    a PNG; returns the line to print (the path, or why not).

    matplotlib is an optional extra, imported here only; ``Figure`` without pyplot keeps
    it free of any GUI backend and global state.
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return f"skipped the plot: matplotlib is not installed ({PLOT_HINT})"
    runs = _all_runs(results)
    split = runs[0].best_metric.split("/")[0] if runs else "valid"
    key = f"recall@{k}"
    by_group = breakdown_rows(results, k) is not None
    fig = Figure(figsize=(12.0 if by_group else 7.0, 4.2), dpi=120, layout="constrained")
    axes = fig.subplots(1, 2 if by_group else 1, squeeze=False)[0]
    ax = axes[0]
    for m in results:
        per_epoch: dict[float, list[float]] = {}
        for r in m.runs:
            for e in r.evaluations:
                if key in e.metrics.get(split, {}):
                    per_epoch.setdefault(e.step / r.steps_per_epoch, []).append(e.metrics[split][key])
        if per_epoch:
            x = sorted(per_epoch)
            means, sds = zip(*(_mean_sd(per_epoch[epoch]) for epoch in x))
            ax.errorbar(x, means, yerr=sds if len(m.runs) > 1 else None, marker="o", markersize=3, capsize=2,
                        label=m.mode)
    popularity = (_popularity(results) or {}).get(split)
    if popularity and key in popularity:
        ax.axhline(popularity[key], linestyle="--", color="grey", label="popularity")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{split} Recall@{k}")
    seeds = _seeds(results)
    ax.set_title(f"{split} Recall@{k} per epoch" + (f" (mean ± sd over {seeds} seeds)" if seeds > 1 else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    if by_group:
        _plot_groups(axes[1], results, k)
    fig.savefig(target)
    return f"plot: {target}"


def _plot_groups(ax: Any, results: list[ModeRuns], k: int) -> None:
    """Grouped bars: Recall@K overall, head, tail, cold of each mode's best checkpoints, ± sd over seeds."""
    split = _verdict_split(results)
    groups = ["", *(g for g in GROUPS if any(m.values(split, f"recall@{k}/{g}") for m in results))]
    width = 0.8 / max(len(results), 1)
    for n, m in enumerate(results):
        stats = [_mean_sd(v) if (v := m.values(split, f"recall@{k}{'/' + g if g else ''}")) else (math.nan, 0.0)
                 for g in groups]
        ax.bar([x + n * width for x in range(len(groups))], [s[0] for s in stats], width,
               yerr=[s[1] for s in stats] if len(m.runs) > 1 else None, capsize=2, label=m.mode)
    ax.set_xticks([x + width * (len(results) - 1) / 2 for x in range(len(groups))],
                  ["all", *(f"{g} items" for g in groups[1:])])
    ax.set_ylabel(f"{split} Recall@{k} at the best checkpoint")
    ax.set_title(f"{split} Recall@{k} by item popularity")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()


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
    """Print the tables and verdict and (re)write results.md, results.csv and the plot from the run directories."""
    manifest, results = read_ablation(where)
    if not results:
        raise UserError(f"{where} holds no runs yet; start the ablation with `lgcn-tui ablate --out {where}`")
    k = shown_k(results)
    header, body = rows(results, k)
    title = f"ablation {where}: each mode at its best checkpoint (best.pt, by {results[0].runs[0].best_metric})"
    table = Table(*header, title=title, caption=_caption(manifest, results), caption_justify="left")
    for row in body:
        table.add_row(*row)
    print_whole(table, console)
    breakdown = breakdown_rows(results, k)
    if breakdown:
        by_group = Table(*breakdown[0], title=f"by popularity ({_verdict_split(results)} split)")
        for row in breakdown[1]:
            by_group.add_row(*row)
        print_whole(by_group, console)
    for line in verdict(results, k):
        console.print(line, markup=False, highlight=False)
    (where / "results.csv").write_text(results_csv(results))
    note = plot(results, k, where / PLOT_FILE)
    plotted = (where / PLOT_FILE).exists() and not note.startswith("skipped")
    (where / "results.md").write_text(results_md(manifest, results, k, plotted))
    console.print(note, markup=False)
    console.print(f"results: {where / 'results.md'}, {where / 'results.csv'}", markup=False)
    return 0
