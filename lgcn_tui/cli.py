"""The ``lgcn-tui`` command line: parse, validate, then hand over to the trainer, evaluator or exporter.

Every user mistake surfaces as a ``UserError`` and is printed as one plain message with
exit code 2, before any work starts where it can be found that early.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import config as cfgmod
from . import data, presets, retrieval, rundir
from .errors import UserError
from .train import checkpoint as ckpt
from .train import commands as cmd
from .train.trainer import build_model, evaluate_split, pick_device

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Train LightGCN with text-warm-started items, from a dashboard or headless.")
presets_app = typer.Typer(help="List presets, or show one resolved.", invoke_without_command=True)
app.add_typer(presets_app, name="presets")
console = Console()
err_console = Console(stderr=True)


def _fail(exc: UserError) -> None:
    # Escaped: messages quote user input and install hints like lgcn-tui[faiss], not markup.
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
    raise typer.Exit(2)


def _resolve(preset: str, overrides: list[str]) -> cfgmod.Config:
    path = presets.find(preset)
    return cfgmod.resolve(cfgmod.load_toml(path), str(path), overrides)


@app.command()
def train(
    preset: Annotated[str, typer.Option("--preset", "-p", help="Preset name (see `lgcn-tui presets`) or a .toml path.")] = "demo",
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a key: section.key=value (repeatable).")] = None,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Run headless: progress bar and log lines instead of the dashboard.")] = False,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this run directory from its newest checkpoint.")] = None,
) -> None:
    """Train a model from a preset; headless with --no-ui, otherwise in the dashboard."""
    try:
        if resume is not None:
            if set_:
                raise UserError("--resume continues a run exactly as configured; --set cannot be combined with it "
                                f"(edit {resume / 'config.toml'} by hand if you must)")
            run = rundir.open_run(resume)
            cfg, preset_name = run.load_config(), run.preset()
            resume_from = ckpt.latest(run.checkpoints)
            if resume_from is None:
                raise UserError(f"{run.checkpoints} holds no checkpoint to resume from")
        else:
            cfg, preset_name, resume_from = _resolve(preset, set_ or []), preset, None
        dataset = data.load(cfg)
        if resume is None:
            run = rundir.create(cfg, preset_name)
        if no_ui:
            from .headless import run_headless

            code = run_headless(cfg, run, dataset, preset_name, resume_from, console)
        else:
            from .ui.app import run_dashboard

            code = run_dashboard(cfg, run, dataset, preset_name, resume_from)
    except UserError as exc:
        _fail(exc)
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
def presets_show(name: Annotated[str, typer.Argument(help="Preset name or .toml path.")],
                 set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a key.")] = None) -> None:
    """Print a preset fully resolved: every key, defaults included."""
    try:
        cfg = _resolve(name, set_ or [])
    except UserError as exc:
        _fail(exc)
    sys.stdout.write(cfg.to_toml())


def _checkpoint_path(run: rundir.RunDir, choice: str) -> Path:
    if choice == "best":
        if not run.best.exists():
            raise UserError(f"{run.best} does not exist yet (no evaluation has finished); use --checkpoint last")
        return run.best
    if choice == "last":
        found = ckpt.latest(run.checkpoints)
        if found is None:
            raise UserError(f"{run.checkpoints} holds no checkpoint")
        return found
    return Path(choice)


def _load_run(run_dir: Path, checkpoint: str):
    run = rundir.open_run(run_dir)
    cfg = run.load_config()
    dataset = data.load(cfg)
    device = pick_device(cfg.run.device)
    adj, model = build_model(cfg, dataset, device)
    path = _checkpoint_path(run, checkpoint)
    ckpt.restore_model(model, ckpt.load(path)["model"], path)
    model.eval()
    return run, cfg, dataset, adj, model, path


CHECKPOINT_HELP = "best, last, or a checkpoint file path."


@app.command("eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    checkpoint: Annotated[str, typer.Option(help=CHECKPOINT_HELP)] = "best",
    split: Annotated[str, typer.Option(help="test, valid, or both.")] = "test",
) -> None:
    """Evaluate a checkpoint of a run with full ranking (Recall@K, NDCG@K)."""
    try:
        if split not in ("test", "valid", "both"):
            raise UserError(f"--split {split!r} is not valid; choose test, valid or both")
        run, cfg, dataset, adj, model, path = _load_run(run_dir, checkpoint)
        splits = ["valid", "test"] if split == "both" else [split]
        table = Table("metric", *splits, title=f"{path}")
        results = {}
        for s in splits:
            if not len(getattr(dataset, s)):
                raise UserError(f"the dataset of {run.path} has no {s} interactions; choose another --split")
            results[s] = evaluate_split(model, adj, dataset, s, cfg.eval.ks, cfg.eval.chunk_users)
        for key in results[splits[0]]:
            table.add_row(key, *(f"{results[s][key]:.4f}" for s in splits))
        console.print(table)
    except UserError as exc:
        _fail(exc)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    checkpoint: Annotated[str, typer.Option(help=CHECKPOINT_HELP)] = "best",
    faiss_: Annotated[bool, typer.Option("--faiss", help="Also build a Faiss inner-product index over the item "
                                         "vectors and report its Recall@20 against exact ranking.")] = False,
    index: Annotated[Optional[str], typer.Option(help="With --faiss: flat, ivf or hnsw (default by catalogue "
                                                 "size: flat up to 100k items, hnsw up to 2M, ivf beyond).")] = None,
) -> None:
    """Write final user/item embeddings (.npy) and the raw id of each row to RUN_DIR/export."""
    try:
        if index is not None and not faiss_:
            raise UserError(f"--index {index} chooses the Faiss index; add --faiss to build one")
        if faiss_:
            retrieval.require_faiss()
        run, cfg, dataset, adj, model, path = _load_run(run_dir, checkpoint)
        kind = retrieval.choose_index(index, dataset.n_items) if faiss_ else None
    except UserError as exc:
        _fail(exc)
    users, items = model.final_embeddings(adj)
    out = run.export
    out.mkdir(exist_ok=True)
    np.save(out / "user_emb.npy", users.cpu().numpy())
    np.save(out / "item_emb.npy", items.cpu().numpy())
    with torch.no_grad():
        np.save(out / "item_ego.npy", model.item_vectors().cpu().numpy())
    (out / "user_ids.json").write_text(json.dumps(dataset.user_ids))
    (out / "item_ids.json").write_text(json.dumps(dataset.item_ids))
    (out / "export.json").write_text(json.dumps({"checkpoint": str(path), "layers": cfg.model.layers,
                                                 "combine": cfg.model.combine, "dim": model.dim}, indent=1))
    console.print(f"exported {dataset.n_users} users and {dataset.n_items} items ({model.dim}-d) from {path} to {out}")
    if kind is not None:
        try:
            report = retrieval.export_index(users, items, dataset, kind, out, cfg.eval.chunk_users)
        except UserError as exc:
            _fail(exc)
        retrieval.print_index_report(report, console)


@app.command()
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
    try:
        if k < 1:
            raise UserError(f"-k {k} must be at least 1")
        run, cfg, dataset, adj, model, path = _load_run(run_dir, checkpoint)
        row = retrieval.user_index(dataset, user, f"{run.path}")
        users, item_vecs = model.final_embeddings(adj)
        recs = retrieval.recommend(users, item_vecs, dataset, row, k)
        title_file = items if items is not None else retrieval.find_item_file(cfg)
        titles = retrieval.read_titles(title_file) if title_file is not None else {}
    except UserError as exc:
        _fail(exc)
    excluded = int((dataset.train[:, 0] == row).sum())
    retrieval.print_recommendations(recs, user, excluded, titles, title_file, path, console)


@app.command()
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

    try:
        if report is not None:
            if preset or set_ or modes or out:
                raise UserError("--report only re-reads an ablation directory; drop --preset, --set, --modes and --out")
            code = ablation.write_report(report, console)
        else:
            code = ablation.run_ablation(preset or "demo", set_ or [], ablation.parse_modes(modes or []), out, console)
    except UserError as exc:
        _fail(exc)
    raise typer.Exit(code)


@app.command()
def send(
    run_dir: Annotated[Path, typer.Argument(help="The run directory of a running headless run.")],
    command: Annotated[str, typer.Argument(help="pause, resume, checkpoint, evaluate, stop, or lr.")],
    group: Annotated[Optional[str], typer.Argument(help="For lr: user or item.")] = None,
    value: Annotated[Optional[float], typer.Argument(help="For lr: the new learning rate.")] = None,
) -> None:
    """Send a command to a headless run through its control file."""
    try:
        run = rundir.open_run(run_dir)
        if command == "lr":
            if group is None or value is None:
                raise UserError("lr needs a group and a value, e.g. `lgcn-tui send RUN_DIR lr item 1e-4`")
            order = cmd.set_lr(group, value)
        else:
            order = cmd.command_from_dict({"cmd": command}, source="send")
        cmd.send(run.path, order)
    except UserError as exc:
        _fail(exc)
    console.print(f"sent {order.to_dict()} to {run.path / cmd.CONTROL_FILE}")


@app.command()
def watch(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, e.g. of a run started with --no-ui.")],
) -> None:
    """Open the dashboard on a run directory: follow its metrics, steer it through its control file.

    Quitting detaches; the run goes on. A finished run shows its whole history.
    """
    try:
        from .ui.app import run_watch

        code = run_watch(run_dir)
    except UserError as exc:
        _fail(exc)
    raise typer.Exit(code)


@app.command()
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
    try:
        summary = embed_items(request, console)
    except UserError as exc:
        _fail(exc)
    print_summary(summary, items_file, console)
