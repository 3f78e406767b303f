"""The ``lgcn-tui`` command line: parse, validate, then hand over to the trainer, evaluator or exporter.

Every user mistake surfaces as a ``UserError`` and is printed as one plain message with
exit code 2, before any work starts where it can be found that early.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional, TypeVar

import numpy as np
import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import config as cfgmod
from . import presets, retrieval, rundir
from .contract import commands as cmd
from .contract import control_file
from .errors import UserError
from .run.lifecycle import Run
from .run.loader import load_model, open_saved
from .train.ranking import evaluate_split

app = typer.Typer(add_completion=False, no_args_is_help=True,
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


def _resolve(preset: str, overrides: list[str]) -> cfgmod.Config:
    path = presets.find(preset)
    return cfgmod.resolve(cfgmod.load_toml(path), str(path), overrides)


@app.command()
@user_errors
def train(
    preset: Annotated[str, typer.Option("--preset", "-p", help="Preset name (see `lgcn-tui presets`) or a .toml path.")] = "demo",
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a key: section.key=value (repeatable); "
                                                      "with --resume only the rates, length, evaluation, checkpoint and "
                                                      "divergence keys.")] = None,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Run headless: progress bar and log lines instead of the dashboard.")] = False,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this run directory from its newest checkpoint that loads.")] = None,
    from_: Annotated[Optional[Path], typer.Option("--from", help="With --resume: the checkpoint file to continue from.")] = None,
    break_lock: Annotated[bool, typer.Option("--break-lock", help="Take over a run directory whose lock names a "
                                             "process on another host that is really gone.")] = False,
    nproc: Annotated[int, typer.Option("--nproc", help="Train with this many processes on this machine, started "
                                       "through torchrun (dist.strategy: ddp or fsdp); the dashboard, unless "
                                       "--no-ui, watches rank 0.")] = 1,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", hidden=True,
                                                    help="The new run's directory, decided by the --nproc launcher.")] = None,
) -> None:
    """Train a model from a preset; headless with --no-ui, otherwise in the dashboard."""
    if from_ is not None and resume is None:
        raise UserError(f"--from {from_} picks the checkpoint of a run to resume; add --resume RUN_DIR")
    if nproc < 1:
        raise UserError(f"--nproc {nproc} must be at least 1 (the number of processes on this machine)")
    if resume is not None:
        saved = open_saved(resume)
        changed = cfgmod.override_on_resume(saved.cfg, set_ or [])
        run = Run(saved.cfg, preset=saved.preset, resume=saved.dir.path, checkpoint=from_, break_lock=break_lock,
                  changed=changed)
    else:
        run = Run(_resolve(preset, set_ or []), preset=preset, break_lock=break_lock, directory=run_dir)
    if nproc > 1:
        from .launch import launch

        directory = run.resume_dir or rundir.fresh_path(run.cfg)
        args = ["train", "--no-ui", *(["--resume", str(resume)] if resume is not None else
                                      ["--preset", preset, "--run-dir", str(directory)])]
        args += [f"--set={s}" for s in set_ or []] + (["--from", str(from_)] if from_ is not None else [])
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


CHECKPOINT_HELP = "best, last, or a checkpoint file path."


@app.command("eval")
@user_errors
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    checkpoint: Annotated[str, typer.Option(help=CHECKPOINT_HELP)] = "best",
    split: Annotated[str, typer.Option(help="test, valid, or both.")] = "test",
) -> None:
    """Evaluate a checkpoint of a run with full ranking (Recall@K, NDCG@K)."""
    if split not in ("test", "valid", "both"):
        raise UserError(f"--split {split!r} is not valid; choose test, valid or both")
    loaded = load_model(run_dir, checkpoint)
    dataset, ks, chunk = loaded.dataset, loaded.run.cfg.eval.ks, loaded.run.cfg.eval.chunk_users
    splits = ["valid", "test"] if split == "both" else [split]
    for s in splits:
        if not len(getattr(dataset, s)):
            raise UserError(f"the dataset of {loaded.run.dir.path} has no {s} interactions; choose another --split")
    users, items = loaded.model.final_embeddings(loaded.adj)
    results = {s: evaluate_split(users, items, dataset, s, ks, chunk) for s in splits}
    table = Table("metric", *splits, title=f"{loaded.checkpoint}")
    for key in results[splits[0]]:
        table.add_row(key, *(f"{results[s][key]:.4f}" for s in splits))
    console.print(table)


@app.command()
@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    checkpoint: Annotated[str, typer.Option(help=CHECKPOINT_HELP)] = "best",
    faiss_: Annotated[bool, typer.Option("--faiss", help="Also build a Faiss inner-product index over the item "
                                         "vectors and report its Recall@20 against exact ranking.")] = False,
    index: Annotated[Optional[str], typer.Option(help="With --faiss: flat, ivf or hnsw (default by catalogue "
                                                 "size: flat up to 100k items, hnsw up to 2M, ivf beyond).")] = None,
) -> None:
    """Write final user/item embeddings (.npy) and the raw id of each row to RUN_DIR/export."""
    if index is not None and not faiss_:
        raise UserError(f"--index {index} chooses the Faiss index; add --faiss to build one")
    if faiss_:
        retrieval.require_faiss()
    loaded = load_model(run_dir, checkpoint)
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
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
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
    loaded = load_model(run_dir, checkpoint)
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
                                                       "learnable, residual, random (default all).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Ablation directory (default RUN.OUT_DIR/ablate-RUN.NAME); "
                                                "running again on it resumes.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Only rebuild the table, results.md/.csv and plot of "
                                                   "this ablation directory.")] = None,
) -> None:
    """Train one preset and seed with frozen, learnable, residual and random items; compare them in one table."""
    from . import ablation

    if report is not None:
        if preset or set_ or modes or out:
            raise UserError("--report only re-reads an ablation directory; drop --preset, --set, --modes and --out")
        code = ablation.write_report(report, console)
    else:
        code = ablation.run_ablation(preset or "demo", set_ or [], ablation.parse_modes(modes or []), out, console)
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
    run_dir: Annotated[Path, typer.Argument(help="The run directory of a running headless run.")],
    command: Annotated[str, typer.Argument(help="pause, resume, checkpoint, evaluate, stop, or lr.")],
    group: Annotated[Optional[str], typer.Argument(help="For lr: user or item.")] = None,
    value: Annotated[Optional[str], typer.Argument(help="For lr: the new learning rate.")] = None,
) -> None:
    """Send a command to a headless run through its control file."""
    run = rundir.open_run(run_dir)
    if command == "lr":
        if group is None or value is None:
            raise UserError("lr needs a group and a value, e.g. `lgcn-tui send RUN_DIR lr item 1e-4`")
        order: cmd.Command = cmd.SetLr(group, _number(value), source="send")
    else:
        order = cmd.parse({"cmd": command}, source="send")
    control_file.send(run.path, order)
    console.print(f"sent {cmd.to_dict(order)} to {run.path / control_file.CONTROL_FILE}")


@app.command()
@user_errors
def watch(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, e.g. of a run started with --no-ui.")],
) -> None:
    """Open the dashboard on a run directory: follow its metrics, steer it through its control file.

    Quitting detaches; the run goes on. A finished run shows its whole history.
    """
    from .ui.app import run_watch

    raise typer.Exit(run_watch(run_dir))


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
    """Encode item text into a .sent_emb (row 0 zero padding, row i = item i) plus a JSON sidecar."""
    from .embed import EmbedRequest, embed_items, print_summary

    names = [f.strip() for f in fields.split(",") if f.strip()]
    request = EmbedRequest(items=items_file, model=model, fields=names, out=out, id_field=id_field, id_map=id_map,
                           batch_size=batch_size, device=device, normalize=normalize)
    print_summary(embed_items(request, console), items_file, console)
