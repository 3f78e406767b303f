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
from rich.table import Table

from . import config as cfgmod
from . import data, presets, rundir
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
    err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
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
    model.load_state_dict(ckpt.load(path)["model"])
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
) -> None:
    """Write final user/item embeddings (.npy) and the raw id of each row to RUN_DIR/export."""
    try:
        run, cfg, dataset, adj, model, path = _load_run(run_dir, checkpoint)
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
