"""Checkpoint files: what one holds, written atomically, named by step, pruned to the newest few.

A checkpoint is one dict holding everything a resume needs (model, optimiser, the run's
counters and RNG state, the LR schedule with its manual scales, config). ``payload`` is
the one place that decides its contents and ``load`` the one reader: it loads with
``weights_only=True`` (a checkpoint cannot run code) and refuses a format version other
than ``FORMAT_VERSION``, naming both. Writing goes to a temporary file that is then
renamed, so a kill mid-write leaves the previous checkpoint intact and readable.

A run with ``dist.strategy = fsdp`` writes sharded checkpoints instead: a folder
``step-…-REASON.dcp`` that every rank writes its shards into through
``torch.distributed.checkpoint`` (so the run directory must be on a filesystem all
machines share), plus ``run.pt``, rank 0's payload without the tables. The folder is
written under a temporary name and renamed once complete, like a file. DCP reshards on
load, so a sharded checkpoint resumes on any number of ranks, and one process (``eval``,
``export``) loads it whole.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (get_model_state_dict, get_state_dict, set_model_state_dict,
                                                     set_state_dict)

from ..errors import UserError

FORMAT_VERSION = 2
PATTERN = re.compile(r"^step-(\d{9})-(\w+)\.(pt|dcp)$")
SHARDED = ".dcp"
PAYLOAD = "run.pt"


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """Write ``path`` whole or not at all; a full disk is named with the space needed, and no partial file stays."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(payload, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    except (OSError, RuntimeError) as exc:  # torch reports a short write as a RuntimeError
        tmp.unlink(missing_ok=True)
        need, free = size_of(payload), shutil.disk_usage(path.parent).free
        if getattr(exc, "errno", None) == errno.ENOSPC or free < need:
            raise UserError(f"no space left on {path.parent} for checkpoint {path.name}: need about "
                            f"{need / 2**20:.0f} MB, {free / 2**20:.0f} MB free; free some space, then resume "
                            "the run (the newest checkpoint that was written is intact)") from exc
        raise
    os.replace(tmp, path)


def size_of(value: Any) -> int:
    """Bytes of the tensors in a checkpoint payload: what writing it needs, give or take its small metadata."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(size_of(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(size_of(v) for v in value)
    return 0


def step_path(directory: Path, step: int, reason: str, sharded: bool = False) -> Path:
    return directory / f"step-{step:09d}-{reason}{SHARDED if sharded else '.pt'}"


def best_path(directory: Path, sharded: bool = False) -> Path:
    return directory / f"best{SHARDED if sharded else '.pt'}"


def is_sharded(path: Path) -> bool:
    return path.suffix == SHARDED


def remove(path: Path) -> None:
    """Delete a checkpoint, file or sharded folder."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def replace(source: Path, target: Path) -> None:
    """Rename a checkpoint over another (``best``), file or folder."""
    if target.is_dir():
        shutil.rmtree(target)
    os.replace(source, target)


def listed(directory: Path) -> list[tuple[int, str, Path]]:
    """``(step, reason, path)`` of every step checkpoint, oldest first."""
    out = []
    for path in directory.glob("step-*"):
        m = PATTERN.match(path.name)
        if m:
            out.append((int(m.group(1)), m.group(2), path))
    return sorted(out)


ROUTINE = ("epoch", "interval")


def prune(directory: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` routine (per-epoch and interval) checkpoints; others stay."""
    routine = [path for _, reason, path in listed(directory) if reason in ROUTINE]
    for path in routine[:-keep_last]:
        remove(path)


def latest(directory: Path) -> Path | None:
    found = listed(directory)
    return found[-1][2] if found else None


def payload(*, model: dict[str, Any], optimizer: dict[str, Any], state: dict[str, Any], schedule: dict[str, Any],
            config: dict[str, Any], dataset: dict[str, int], reason: str) -> dict[str, Any]:
    """Everything a resume needs, in plain types and tensors only, so it loads with ``weights_only``."""
    return {"version": FORMAT_VERSION, "model": model, "optimizer": optimizer, "state": state,
            "schedule": schedule, "config": config, "dataset": dataset, "reason": reason}


def load(path: Path) -> dict[str, Any]:
    """A checkpoint's payload; of a sharded one, rank 0's part without model and optimiser (``restore_sharded``)."""
    try:
        data = torch.load(path / PAYLOAD if is_sharded(path) else path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise UserError(f"checkpoint {path} does not exist") from exc
    except Exception as exc:  # a truncated or foreign file: say which one
        raise UserError(f"checkpoint {path} cannot be read ({exc}); pick another with --checkpoint "
                        "(eval, export, recommend) or --from (train --resume)") from exc
    version = data.get("version") if isinstance(data, dict) else None
    if version != FORMAT_VERSION:
        raise UserError(f"checkpoint {path} has format version {version}, this lgcn-tui reads version "
                        f"{FORMAT_VERSION}; evaluate or resume it with the lgcn-tui that wrote it")
    return data


def restore_model(model: torch.nn.Module, state: dict[str, Any], path: Path) -> None:
    """Load a checkpoint's model state; a mismatch the model reports names the file."""
    try:
        model.load_state_dict(state)
    except UserError as exc:
        raise UserError(f"checkpoint {path}: {exc}") from exc


def save_sharded(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 payload: dict[str, Any] | None, leader: bool, barrier: Callable[[], None]) -> None:
    """Every rank writes its shards of model and optimiser to ``path`` (a ``.dcp`` folder);
    rank 0 (``leader``, holding ``payload``) adds the rest and renames the folder into place.
    Called on every rank, which all return once the checkpoint is complete."""
    tmp = path.with_name(f".{path.name}.tmp")
    if leader:
        shutil.rmtree(tmp, ignore_errors=True)
    barrier()
    model_state, optim_state = get_state_dict(model, optimizer)
    with warnings.catch_warnings():  # one process writing a sharded checkpoint is what we mean
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=tmp)
    if leader:
        assert payload is not None
        save_atomic(payload, tmp / PAYLOAD)
        if path.exists():
            remove(path)
        os.replace(tmp, path)
    barrier()


def restore_sharded(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    """Load a sharded checkpoint's model (and optimiser) onto this world's ranks, resharded as they hold it."""
    if optimizer is None:
        state = {"model": get_model_state_dict(model)}
    else:
        model_state, optim_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optimizer": optim_state}
    try:
        with warnings.catch_warnings():  # one process reading a sharded checkpoint is what we mean
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.load(state, checkpoint_id=path)
    except Exception as exc:  # a folder a kill left incomplete, or another model: say which one
        raise UserError(f"sharded checkpoint {path} cannot be read ({exc}); pick another with --checkpoint "
                        "(eval, export, recommend) or --from (train --resume)") from exc
    if optimizer is None:
        set_model_state_dict(model, state["model"])
    else:
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def restore_weights(model: torch.nn.Module, path: Path) -> None:
    """A checkpoint's model, file or sharded folder, into ``model`` (for ``eval``, ``export``, ``recommend``)."""
    if is_sharded(path):
        load(path)  # its format version, checked
        restore_sharded(path, model, None)
    else:
        restore_model(model, load(path)["model"], path)
