"""Checkpoint files: what one holds, written atomically, named by step, pruned to the newest few.

A checkpoint is one dict holding everything a resume needs (model, optimiser, the run's
counters and RNG state, the LR schedule with its manual scales, config). ``payload`` is
the one place that decides its contents and ``load`` the one reader: it loads with
``weights_only=True`` (a checkpoint cannot run code) and refuses a format version other
than ``FORMAT_VERSION``, naming both. Writing goes to a temporary file that is then
renamed, so a kill mid-write leaves the previous checkpoint intact and readable.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError

FORMAT_VERSION = 2
PATTERN = re.compile(r"^step-(\d{9})-(\w+)\.pt$")


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


ROUTINE = ("epoch", "interval")


def prune(directory: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` routine (per-epoch and interval) checkpoints; others stay."""
    routine = [path for _, reason, path in listed(directory) if reason in ROUTINE]
    for path in routine[:-keep_last]:
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
