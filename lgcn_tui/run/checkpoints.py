"""Checkpoint files: what one holds, written atomically, named by step, pruned to the newest few.

A checkpoint is one dict holding everything a resume needs (model, optimiser, the run's
counters and RNG state, the LR schedule with its manual scales, config). ``payload`` is
the one place that decides its contents and ``load`` the one reader: it loads with
``weights_only=True`` (a checkpoint cannot run code) and refuses a format version other
than ``FORMAT_VERSION``, naming both. Writing goes to a temporary file that is then
renamed, so a kill mid-write leaves the previous checkpoint intact and readable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError

FORMAT_VERSION = 2
PATTERN = re.compile(r"^step-(\d{9})-(\w+)\.pt$")


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def step_path(directory: Path, step: int, reason: str) -> Path:
    return directory / f"step-{step:09d}-{reason}.pt"


def listed(directory: Path) -> list[tuple[int, str, Path]]:
    """``(step, reason, path)`` of every step checkpoint, oldest first."""
    out = []
    for path in directory.glob("step-*.pt"):
        m = PATTERN.match(path.name)
        if m:
            out.append((int(m.group(1)), m.group(2), path))
    return sorted(out)


def prune(directory: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` per-epoch checkpoints; others stay."""
    epochs = [path for _, reason, path in listed(directory) if reason == "epoch"]
    for path in epochs[:-keep_last]:
        path.unlink(missing_ok=True)


def latest(directory: Path) -> Path | None:
    found = listed(directory)
    return found[-1][2] if found else None


def payload(*, model: dict[str, Any], optimizer: dict[str, Any], state: dict[str, Any], schedule: dict[str, Any],
            config: dict[str, Any], dataset: dict[str, int], reason: str) -> dict[str, Any]:
    """Everything a resume needs, in plain types and tensors only, so it loads with ``weights_only``."""
    return {"version": FORMAT_VERSION, "model": model, "optimizer": optimizer, "state": state,
            "schedule": schedule, "config": config, "dataset": dataset, "reason": reason}


def load(path: Path) -> dict[str, Any]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise UserError(f"checkpoint {path} does not exist") from exc
    except Exception as exc:  # a truncated or foreign file: say which one
        raise UserError(f"checkpoint {path} cannot be read ({exc}); pick another with --checkpoint") from exc
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
