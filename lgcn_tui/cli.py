"""The ``lgcn-tui`` command line: parse, validate, then hand over to the trainer, evaluator or exporter.

Every user mistake surfaces as a ``UserError`` and is printed as one plain message with
exit code 2, before any work starts where it can be found that early.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__, presets, rundir
from . import config as cfgmod
from .contract import commands as cmd
from .contract import control_file
from .errors import UserError
from .run import catalog
from .run.lock import LOCK_FILE

# torch (and what imports it) is imported inside the commands that train or load a model, so
# `runs`, `send`, `compare` and `--version` answer at once.

app = typer.Typer(add_completion=False, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Train LightGCN with text-warm-started items, from a dashboard or headless.")
presets_app = typer.Typer(help="List presets, or show one resolved.", invoke_without_command=True)
app.add_typer(presets_app, name="presets")
console = Console()
err_console = Console(stderr=True)


F = TypeVar("F", bound=Callable[..., object])


def _fail(exc: UserError) -> None:
    # Escaped: messages quote user input and install hints like lgcn-tui[faiss], not markup.
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
    raise typer.Exit(2)


def user_errors(command: F) -> F:
    """The one error path of every command: a ``UserError`` is one plain message and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            _fail(exc)
        return None

    return wrapper  # type: ignore[return-value]


def _print_version(wanted: bool) -> None:
    if wanted:
        console.print(f"lgcn-tui {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Options of lgcn-tui itself, before any command (the app's help text is the Typer's own)."""


RUN_HELP = "a run directory, a run's name under runs/ (see `lgcn-tui runs`), a unique start of one, or latest."


def _resolve(preset: str, overrides: list[str]) -> cfgmod.Config:
    path = presets.find(preset)
    return cfgmod.from_preset(path, overrides)


def _shortcuts(**values: object) -> list[str]:
    """``--epochs``/``--name`` as the ``--set`` overrides they stand for; an explicit ``--set`` still wins."""
    keys = {"epochs": "run.epochs", "name": "run.name"}
    return [f"{keys[flag]}={json.dumps(value)}" for flag, value in values.items() if value is not None]


@app.command()
@user_errors
def train(
    preset: Annotated[str, typer.Option("--preset", "-p", help="Preset name (see `lgcn-tui presets`) or a .toml path.")] = "demo",
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a key: section.key=value (repeatable); "
                                                      "with --resume only the rates, length, evaluation, checkpoint and "
                                                      "divergence keys.")] = None,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Run headless: progress bar and log lines instead of the dashboard.")] = False,
    resume: Annotated[Optional[str], typer.Option("--resume", metavar="RUN", help="Continue this run from its newest "
                                                  "checkpoint that loads: " + RUN_HELP)] = None,
    from_: Annotated[Optional[Path], typer.Option("--from", help="With --resume: the checkpoint file to continue from.")] = None,
    break_lock: Annotated[bool, typer.Option("--break-lock", help="Take over a run directory whose lock names a "
                                             "process on another host that is really gone.")] = False,
    epochs: Annotated[Optional[int], typer.Option("--epochs", "-e", help="Shortcut for --set run.epochs=N.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="Shortcut for --set run.name=NAME (the run "
                                                "folder's prefix).")] = None,
    nproc: Annotated[int, typer.Option("--nproc", help="Train with this many processes on this machine, started "
                                       "through torchrun (dist.strategy: ddp or fsdp); the dashboard, unless "
                                       "--no-ui, watches rank 0.")] = 1,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", hidden=True,
                                                    help="The new run's directory, decided by the --nproc launcher.")] = None,
) -> None:
    """Train a model from a preset; headless with --no-ui, otherwise in the dashboard."""
    set_ = [*_shortcuts(epochs=epochs, name=name), *(set_ or [])]
    if from_ is not None and resume is None:
        raise UserError(f"--from {from_} picks the checkpoint of a run to resume; add --resume RUN_DIR")
    if nproc < 1:
        raise UserError(f"--nproc {nproc} must be at least 1 (the number of processes on this machine)")
    from .run.lifecycle import Run
    from .run.loader import open_saved

    if resume is not None:
        saved = open_saved(catalog.resolve(resume))
        changed = cfgmod.override_on_resume(saved.cfg, set_)
        run = Run(saved.cfg, preset=saved.preset, resume=saved.dir.path, checkpoint=from_, break_lock=break_lock,
                  changed=changed)
    else:
        run = Run(_resolve(preset, set_), preset=preset, break_lock=break_lock, directory=run_dir)
    if nproc > 1:
        from .launch import launch

        directory = run.resume_dir or rundir.fresh_path(run.cfg)
        args = ["train", "--no-ui", *(["--resume", str(run.resume_dir)] if resume is not None else
                                      ["--preset", preset, "--run-dir", str(directory)])]
        args += [f"--set={s}" for s in set_] + (["--from", str(from_)] if from_ is not None else [])
        args += ["--break-lock"] if break_lock else []
        raise typer.Exit(launch(nproc, args, directory, not no_ui, console))
    if no_ui:
        from .headless import run_headless

        code = run_headless(run, console)
    else:
        from .ui.app import run_dashboard

        code = run_dashboard(run)
    raise typer.Exit(code)


@presets_app.callback()
def presets_list(ctx: typer.Context) -> None:
    """List the presets with their one-line descriptions."""
    if ctx.invoked_subcommand is not None:
        return
    table = Table("preset", "what it is for", box=None)
    for name, path in presets.available().items():
        table.add_row(f"[bold]{name}[/]", presets.description(path))
    console.print(table)


@presets_app.command("show")
@user_errors
def presets_show(name: Annotated[str, typer.Argument(help="Preset name or .toml path.")],
                 set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a key.")] = None) -> None:
    """Print a preset fully resolved: every key, defaults included."""
    sys.stdout.write(_resolve(name, set_ or []).to_toml())


@app.command()
@user_errors
def plan(
    preset: Annotated[Optional[str], typer.Option("--preset", "-p", help="Preset name or .toml path: its settings, "
                                                  "and its data counted unless --users, --items and --interactions "
                                                  "are given.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a key: section.key=value "
                                                      "(repeatable).")] = None,
    users: Annotated[Optional[int], typer.Option(help="Number of users.")] = None,
    items: Annotated[Optional[int], typer.Option(help="Number of items.")] = None,
    interactions: Annotated[Optional[int], typer.Option(help="Training interactions (user, item pairs).")] = None,
    dim: Annotated[Optional[int], typer.Option(help="Embedding dimension (default: the pretrained vectors', else "
                                               "model.dim).")] = None,
    layers: Annotated[Optional[int], typer.Option(help="Propagation layers (model.layers).")] = None,
    item_mode: Annotated[Optional[str], typer.Option(help="frozen, learnable, residual, or xavier (learnable "
                                                     "items without pretrained vectors).")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adam, adamw or adafactor (optim.name).")] = None,
    precision: Annotated[str, typer.Option(help="fp32 (what train does), or bf16: tables, gradients and "
                                           "optimizer state in bfloat16, as a what-if.")] = "fp32",
    strategy: Annotated[Optional[str], typer.Option(help="ddp or fsdp (dist.strategy), with --world-size "
                                                    "processes.")] = None,
    world_size: Annotated[int, typer.Option(help="Processes (GPUs) the run spreads over.")] = 1,
    memory: Annotated[Optional[str], typer.Option(help="Memory of one device, e.g. 80GB or 79.6GiB (default: the "
                                                  "local CUDA device's).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="The figures as JSON (bytes) instead of the table.")] = False,
) -> None:
    """How much device memory a run needs, item by item, and whether it fits: before it runs."""
    from . import plan as planner

    budget = planner.parse_size(memory) if memory is not None else planner.local_memory()
    base = _resolve(preset, set_ or []) if preset is not None else cfgmod.resolve({}, "--set", set_ or [])
    options = planner.Options(users=users, items=items, interactions=interactions, dim=dim, layers=layers,
                              item_mode=item_mode, optimizer=optimizer, precision=precision, strategy=strategy,
                              world_size=world_size)
    result = planner.estimate(planner.shape_for(base, options, preset))
    if json_:
        sys.stdout.write(json.dumps(planner.to_json(result, budget), indent=1) + "\n")
        return
    planner.print_plan(result, budget, console)


CHECKPOINT_HELP = "best, last, or a checkpoint file path."


@app.command("eval")
@user_errors
def eval_(
    run_dir: Annotated[str, typer.Argument(metavar="RUN", help="The run: " + RUN_HELP)],
    checkpoint: Annotated[str, typer.Option(help=CHECKPOINT_HELP)] = "best",
    split: Annotated[str, typer.Option(help="test, valid, or both.")] = "test",
) -> None:
    """Evaluate a checkpoint of a run with full ranking (Recall@K, NDCG@K), overall and on the test
    items of head, tail and cold popularity (eval.head_share)."""
    if split not in ("test", "valid", "both"):
        raise UserError(f"--split {split!r} is not valid; choose test, valid or both")
    from .run.loader import load_model
    from .train.ranking import GROUPS, chunk_users, evaluate_split, popularity_groups

    loaded = load_model(catalog.resolve(run_dir), checkpoint)
    dataset, e = loaded.dataset, loaded.run.cfg.eval
    chunk = chunk_users(e.chunk_users, e.memory_budget_mb, dataset.n_items)
    splits = ["valid", "test"] if split == "both" else [split]
    for s in splits:
        if not len(getattr(dataset, s)):
            raise UserError(f"the dataset of {loaded.run.dir.path} has no {s} interactions; choose another --split")
    users, items = loaded.model.final_embeddings(loaded.adj)
    groups = popularity_groups(dataset.train, dataset.n_items, e.head_share)
    results = {s: evaluate_split(users, items, dataset, s, e.ks, chunk, groups=groups) for s in splits}
    keys = [k for k in results[splits[0]] if "/" not in k]
    table = Table("items", *keys, title=f"{loaded.checkpoint}",
                  caption=f"head: the {e.head_share:.0%} most-trained items, tail: the other trained items, cold: "
                          "items without training interactions; each over the users holding out such an item "
                          "(—: none does)", caption_justify="left")
    for s in splits:
        for g in ("", *GROUPS):
            cells = (results[s].get(f"{key}/{g}" if g else key) for key in keys)
            table.add_row(f"{s} {g or 'all'}", *("—" if v is None else f"{v:.4f}" for v in cells),
                          end_section=g == GROUPS[-1])
    console.print(table)


@app.command()
@user_errors
def export(
    run_dir: Annotated[str, typer.Argument(metavar="RUN", help="The run: " + RUN_HELP)],
    checkpoint: Annotated[str, typer.Option(help=CHECKPOINT_HELP)] = "best",
    faiss_: Annotated[bool, typer.Option("--faiss", help="Also build a Faiss inner-product index over the item "
                                         "vectors and report its Recall@20 against exact ranking.")] = False,
    index: Annotated[Optional[str], typer.Option(help="With --faiss: flat, ivf or hnsw (default by catalogue "
                                                 "size: flat up to 100k items, hnsw up to 2M, ivf beyond).")] = None,
) -> None:
    """Write final user/item embeddings (.npy) and the raw id of each row to RUN_DIR/export."""
    import numpy as np
    import torch

    from . import retrieval
    from .run.loader import load_model

    if index is not None and not faiss_:
        raise UserError(f"--index {index} chooses the Faiss index; add --faiss to build one")
    if faiss_:
        retrieval.require_faiss()
    loaded = load_model(catalog.resolve(run_dir), checkpoint)
    dataset, model, cfg = loaded.dataset, loaded.model, loaded.run.cfg
    kind = retrieval.choose_index(index, dataset.n_items) if faiss_ else None
    users, items = model.final_embeddings(loaded.adj)
    out = loaded.run.dir.export
    out.mkdir(exist_ok=True)
    np.save(out / "user_emb.npy", users.cpu().numpy())
    np.save(out / "item_emb.npy", items.cpu().numpy())
    with torch.no_grad():
        np.save(out / "item_ego.npy", model.item_vectors().cpu().numpy())
    (out / "user_ids.json").write_text(json.dumps(dataset.user_ids))
    (out / "item_ids.json").write_text(json.dumps(dataset.item_ids))
    (out / "export.json").write_text(json.dumps({"checkpoint": str(loaded.checkpoint), "layers": cfg.model.layers,
                                                 "combine": cfg.model.combine, "dim": model.dim}, indent=1))
    console.print(f"exported {dataset.n_users} users and {dataset.n_items} items ({model.dim}-d) "
                  f"from {loaded.checkpoint} to {out}")
    if kind is not None:
        report = retrieval.export_index(users, items, dataset, kind, out, cfg.eval.chunk_users)
        retrieval.print_index_report(report, console)


@app.command()
@user_errors
def recommend(
    run_dir: Annotated[str, typer.Argument(metavar="RUN", help="The run: " + RUN_HELP)],
    user: Annotated[str, typer.Option("--user", "-u", help="Raw user id, as in the data.")],
    k: Annotated[int, typer.Option("--k", "-k", help="How many items.")] = 20,
    checkpoint: Annotated[str, typer.Option(help=CHECKPOINT_HELP)] = "best",
    items: Annotated[Optional[Path], typer.Option(help="Item file with titles (RecBole .item, TSV/CSV with a "
                                                  "header, or .jsonl); default: the file the run's .sent_emb was "
                                                  "embedded from, else the *.item beside the data.")] = None,
) -> None:
    """Print a user's top-k items (training items excluded), with titles when an item file is known."""
    if k < 1:
        raise UserError(f"-k {k} must be at least 1")
    from . import retrieval
    from .run.loader import load_model

    loaded = load_model(catalog.resolve(run_dir), checkpoint)
    dataset = loaded.dataset
    row = retrieval.user_index(dataset, user, f"{loaded.run.dir.path}")
    users, item_vecs = loaded.model.final_embeddings(loaded.adj)
    recs = retrieval.recommend(users, item_vecs, dataset, row, k)
    title_file = items if items is not None else retrieval.find_item_file(loaded.run.cfg)
    titles = retrieval.read_titles(title_file) if title_file is not None else {}
    excluded = int((dataset.train[:, 0] == row).sum())
    retrieval.print_recommendations(recs, user, excluded, titles, title_file, loaded.checkpoint, console)


@app.command()
@user_errors
def ablate(
    preset: Annotated[Optional[str], typer.Option("--preset", "-p", help="Preset name or .toml path (default demo).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a key in every mode (repeatable).")] = None,
    modes: Annotated[Optional[list[str]], typer.Option(help="Modes to run, comma separated or repeated: frozen, "
                                                       "learnable, residual, adapter, random (default all).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Ablation directory (default RUN.OUT_DIR/ablate-RUN.NAME, "
                                                "so --set run.out_dir=DIR gives DIR/ablate-RUN.NAME; --out wins "
                                                "over it); running again on it resumes.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Only rebuild the table, results.md/.csv and plot of "
                                                   "this ablation directory.")] = None,
    seeds: Annotated[int, typer.Option(help="Runs per mode, run.seed = the preset's + 0..N-1 (the data stays "
                                       "fixed); the table gives mean ± sd, the verdict judges gaps from 3.")] = 1,
) -> None:
    """Train one preset with frozen, learnable, residual, adapter and random items, under one or more seeds; compare them."""
    from . import ablation

    if report is not None:
        if preset or set_ or modes or out or seeds != 1:
            raise UserError("--report only re-reads an ablation directory; drop --preset, --set, --modes, --seeds "
                            "and --out")
        code = ablation.write_report(report, console)
    else:
        code = ablation.run_ablation(preset or "demo", set_ or [], ablation.parse_modes(modes or []), out, console,
                                     seeds)
    raise typer.Exit(code)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"lr value {text!r} is not a number; e.g. `lgcn-tui send RUN_DIR lr item 1e-4`") from None


# Unknown options pass through as arguments, so `lr item -1` reaches the rate's own check.
@app.command(context_settings={"ignore_unknown_options": True})
@user_errors
def send(
    run_dir: Annotated[str, typer.Argument(metavar="RUN", help="A running or paused run (headless or in a dashboard): " + RUN_HELP)],
    command: Annotated[str, typer.Argument(help="pause, resume, checkpoint, evaluate, stop, or lr.")],
    group: Annotated[Optional[str], typer.Argument(help="For lr: user or item.")] = None,
    value: Annotated[Optional[str], typer.Argument(help="For lr: the new learning rate.")] = None,
) -> None:
    """Send a command to a run through its control file; a run that is not running or paused is refused."""
    run = rundir.open_run(catalog.resolve(run_dir))
    if command == "lr":
        if group is None or value is None:
            raise UserError("lr needs a group and a value, e.g. `lgcn-tui send RUN_DIR lr item 1e-4`")
        order: cmd.Command = cmd.SetLr(group, _number(value), source="lgcn-tui send")
    else:
        order = cmd.parse({"cmd": command}, source="lgcn-tui send")
    summary = catalog.summarise(run.path, str(run.path))
    if summary.state not in catalog.LIVE:
        raise UserError(_not_live(summary))
    control_file.send(run.path, order)
    what = f"set the {order.group} learning rate to {order.lr:g}" if isinstance(order, cmd.SetLr) else ASKED[order.name]
    console.print(f"asked run {escape(str(run.path))} ({summary.state}) to {what}; it acts at its next publish point, "
                  "within about a second (after an evaluation in progress)", highlight=False)


ASKED = {"pause": "pause", "resume": "resume", "checkpoint": "save a checkpoint", "evaluate": "evaluate now",
         "stop": "stop after the step in flight and save a checkpoint"}


def _not_live(summary: catalog.RunSummary) -> str:
    """Why a command cannot reach the run, and the command that brings it back."""
    path, at = summary.path, catalog.when(summary.updated)
    if summary.state == "done":
        return (f"run {path} is done (finished at {at}); nothing to send to — train it longer with "
                f"`lgcn-tui train --resume {path} --set run.epochs=N --no-ui`")
    why = {"stopped": f"stopped at {at}", "error": f"failed at {at}",
           catalog.INTERRUPTED: f"its last record, at {at}, says it was training, but no live process holds "
                                f"{path / LOCK_FILE}: it was killed or its machine went down"}[summary.state]
    return (f"run {path} is {summary.state} ({why}); nothing to send to — resume it with "
            f"`lgcn-tui train --resume {path} --no-ui`")


@app.command()
@user_errors
def watch(
    run_dir: Annotated[str, typer.Argument(metavar="RUN", help="A run, e.g. one started with --no-ui: " + RUN_HELP)],
) -> None:
    """Open the dashboard on a run directory: follow its metrics, steer it through its control file.

    Quitting detaches; the run goes on. A finished run shows its whole history.
    """
    from .ui.app import run_watch

    raise typer.Exit(run_watch(catalog.resolve(run_dir)))


STATE_STYLE = {"running": "green", "paused": "yellow", "done": "blue", "stopped": "", "error": "bold red",
               catalog.INTERRUPTED: "magenta"}


@app.command()
@user_errors
def runs(
    folder: Annotated[Path, typer.Argument(help="The folder runs are written to (run.out_dir).")] = catalog.DEFAULT_ROOT,
    json_: Annotated[bool, typer.Option("--json", help="One JSON object per run instead of the table.")] = False,
) -> None:
    """List the runs in a folder: name, preset, state, progress, best Recall@20, started, last update."""
    found = catalog.list_runs(folder)
    if json_:
        sys.stdout.write(json.dumps([s.to_json() for s in found], indent=1) + "\n")
        return
    if not found:
        console.print(f"no runs in {escape(str(folder))}; start one with `lgcn-tui train --preset demo`", highlight=False)
        return
    table = Table(title=f"runs in {escape(str(folder))}", caption=RUNS_CAPTION, caption_justify="left", box=None,
                  pad_edge=False, collapse_padding=True)
    table.add_column("name", no_wrap=True, min_width=max(len(s.name) for s in found))  # names are copied: never cut
    table.add_column("preset")
    table.add_column("state", no_wrap=True, min_width=len(catalog.INTERRUPTED))
    for column in ("epoch", "step", "best R@20"):
        table.add_column(column)
    table.add_column("started")
    table.add_column("last update")
    now = time.time()
    for s in found:
        style = STATE_STYLE.get(s.state, "")
        best = "—" if s.record.best_recall is None else f"{s.record.best_recall:.4f}" + (
            " (test)" if s.record.best_split == "test" else "")
        table.add_row(escape(s.name), escape(s.preset), f"[{style}]{s.state}[/]" if style else s.state,
                      _of(s.epochs_done, s.record.epochs), _of(s.record.steps, s.total_steps), best,
                      _date(s.created, now), _ago(now - s.updated))
    console.print(table)


RUNS_CAPTION = ("best R@20: the best valid Recall@20 of any evaluation (test where there is no valid split). "
                "interrupted: the last record says training, but no live process holds the run's lock; "
                "`lgcn-tui train --resume NAME` continues it.")


def _date(t: float, now: float) -> str:
    """As ``ls -l`` dates files: the time of day within the last half year, the year beyond."""
    return time.strftime("%b %d %H:%M" if now - t < 182 * 86400 else "%b %d  %Y", time.localtime(t))


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{max(seconds, 0):.0f} s ago"


def _of(done: int | None, total: int | None) -> str:
    return "—" if done is None else f"{done:,}/{total:,}" if total else f"{done:,}"


@app.command()
@user_errors
def compare(
    runs_: Annotated[list[str], typer.Argument(metavar="RUN", help="Two or more runs, each " + RUN_HELP)],
    plot: Annotated[Path, typer.Option(help="Where to write the overlay plot (PNG): loss and Recall@20 against "
                                       "step and wall-clock.")] = Path("compare.png"),
) -> None:
    """Runs side by side: the config keys they set differently, best and final metrics, and an overlay plot."""
    from .compare import compare as compare_runs

    compare_runs(runs_, plot, console)


@app.command()
@user_errors
def embed(
    items_file: Annotated[Path, typer.Argument(help="Item text: RecBole .item, .csv/.tsv/.jsonl with an id column, "
                                               "or Amazon 2023 metadata (meta_*.jsonl[.gz]).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Local sentence-transformers model directory.")],
    fields: Annotated[str, typer.Option("--fields", "-f", help="Text fields to join, comma separated, "
                                        "e.g. title,categories.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .sent_emb (raw float32) or .npy; "
                                      "the sidecar is OUT.json.")],
    id_field: Annotated[Optional[str], typer.Option(help="Item id column (default: item_id, parent_asin, "
                                                    "asin or item).")] = None,
    id_map: Annotated[Optional[Path], typer.Option(help="A .data_maps JSON: row i is the item whose "
                                                   "item2id is i.")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per encoder batch.")] = 128,
    device: Annotated[str, typer.Option(help="auto (CUDA when available), cpu or cuda.")] = "auto",
    normalize: Annotated[bool, typer.Option(help="L2-normalise each vector before writing.")] = False,
) -> None:
    """Encode item text into a .sent_emb (row 0 zero padding, then item id i at row i, or at row i+1 when the
    ids start at 0) plus a JSON sidecar."""
    from .embed import EmbedRequest, embed_items, print_summary

    names = [f.strip() for f in fields.split(",") if f.strip()]
    request = EmbedRequest(items=items_file, model=model, fields=names, out=out, id_field=id_field, id_map=id_map,
                           batch_size=batch_size, device=device, normalize=normalize)
    # Progress on stderr: a bar on a terminal, log lines when piped or under nohup (see embed.progress).
    print_summary(embed_items(request, err_console), items_file, console)
