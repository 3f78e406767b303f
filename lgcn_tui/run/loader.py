"""Reading a run back from its directory: its config and preset, its data, a model at a checkpoint.

``eval``, ``export``, ``recommend``, ``ablate`` and a resume all start here, so a run
directory is read one way and every failure (not a run directory, data moved, a
checkpoint missing or from another version) reads the same wherever it happens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import data
from ..config import Config
from ..data.dataset import Dataset
from ..errors import UserError
from ..graph.adjacency import Adjacency, build_adjacency
from ..graph import kernel
from ..graph.backend import make_backend
from ..model.adapter import AdapterSpec
from ..model.lightgcn import LightGCN
from ..rundir import RunDir, open_run
from . import checkpoints as ckpt
from .device import pick_device, precision


def build_model(cfg: Config, dataset: Dataset, device: torch.device,
                notes: list[str] | None = None) -> tuple[Adjacency, LightGCN]:
    """Adjacency and model for a config; the same for training, evaluation and export.

    Under ``graph.kernel = auto`` the product kernel is measured here (``graph.kernel``) and
    what was measured is added to ``notes``; the caller may record the choice in the config."""
    # DGL propagates over its own graph in node order; only our products use the locality order.
    reorder = cfg.graph.reorder and cfg.graph.backend == "torch"
    adj = build_adjacency(dataset.train, dataset.n_users, dataset.n_items, cfg.graph.norm, reorder)
    adj = adj.to(device, precision(cfg.run.amp, device))
    backend = make_backend(cfg.graph.backend, dataset.train, dataset.n_users, dataset.n_items, cfg.graph.norm, device)
    torch.manual_seed(cfg.run.seed)
    pretrained = torch.from_numpy(dataset.pretrained) if dataset.pretrained is not None else None
    m = cfg.model
    adapter = AdapterSpec(m.adapter_layers, m.adapter_hidden, m.adapter_residual) if m.item_mode == "adapter" else None
    model = LightGCN(dataset.n_users, dataset.n_items, m.dim, m.layers, m.combine, m.item_mode, pretrained, backend,
                     adj.position, adapter)
    if m.user_init == "item_mean":
        model.start_users_at_items(torch.from_numpy(dataset.train))
    model = model.to(device)
    adj.kernel = cfg.graph.kernel
    if adj.kernel == "auto":
        adj.kernel, measured = kernel.choose(adj, model.dim)
        if notes is not None:
            notes.append(measured)
    return adj, model


@dataclass(frozen=True)
class SavedRun:
    """A run directory with its validated config and the preset it was started from."""

    dir: RunDir
    cfg: Config
    preset: str


def open_saved(path: Path) -> SavedRun:
    run = open_run(path)
    try:
        preset = json.loads(run.info.read_text())["preset"]
    except FileNotFoundError:
        raise UserError(f"{run.info} is missing: {run.path} is not a complete run directory "
                        "(it is written when a run starts)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{run.info} is not a valid run.json ({exc!r}); it should hold the preset name") from None
    return SavedRun(run, run.load_config(), preset)


def checkpoint_path(run: RunDir, choice: str) -> Path:
    """``best``, ``last`` or a file path, as the ``--checkpoint`` options take it."""
    if choice == "best":
        sharded = ckpt.best_path(run.checkpoints, sharded=True)
        if sharded.exists():
            return sharded
        if not run.best.exists():
            raise UserError(f"{run.best} does not exist yet (no evaluation has finished); use --checkpoint last")
        return run.best
    if choice == "last":
        found = ckpt.latest(run.checkpoints)
        if found is None:
            raise UserError(f"{run.checkpoints} holds no checkpoint")
        return found
    return Path(choice)


@dataclass(frozen=True)
class LoadedModel:
    """A run's model at one checkpoint, in evaluation mode, with what it needs to rank."""

    run: SavedRun
    dataset: Dataset
    adj: Adjacency
    model: LightGCN
    checkpoint: Path


def load_model(path: Path, checkpoint: str = "best") -> LoadedModel:
    saved = open_saved(path)
    dataset = data.load(saved.cfg)
    adj, model = build_model(saved.cfg, dataset, pick_device(saved.cfg.run.device))
    file = checkpoint_path(saved.dir, checkpoint)
    ckpt.restore_weights(model, file)
    model.eval()
    return LoadedModel(saved, dataset, adj, model, file)
