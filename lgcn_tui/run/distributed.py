"""The run's place among the processes ``torchrun`` started: its rank, the world's size, the process group.

A run launched by ``torchrun`` (or ``lgcn-tui train --nproc``) finds ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment; ``start`` joins the process group
(NCCL on CUDA, one GPU per local rank; gloo on CPU) with ``dist.timeout_s`` as the
collectives' timeout, so a rank that died or hangs surfaces as an error on the others
instead of a wait for ever. A process started any other way, or a world of one, is
``SOLO``: no process group, and every helper below is the identity, so one code path
serves both.

Rank 0 alone does what touches the run directory (create it, lock it, read the control
file); ``agree`` runs such a piece on rank 0 and hands its result, or its error, to every
rank, so an error there (a lock held by someone else) stops all ranks at once rather than
leaving the others waiting in a collective.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def leader(self) -> bool:
        """Rank 0: the one that writes the run directory and reads the control file."""
        return self.rank == 0

    @property
    def share(self) -> tuple[int, int]:
        """``(rank, size)``, as the engine's splitting functions take it."""
        return self.rank, self.size


SOLO = World()


def launched_size() -> int:
    """The world size ``torchrun`` announced, 1 when the process was started otherwise."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def start(device: torch.device, timeout_s: float) -> tuple[World, torch.device]:
    """Join the process group ``torchrun`` set up; the device a rank computes on (its local GPU on CUDA)."""
    size = launched_size()
    if size <= 1:
        return SOLO, device
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s),
                            device_id=device if device.type == "cuda" else None)
    return world, device


def stop(world: World) -> None:
    """Leave the process group; safe to repeat and on ``SOLO``."""
    if world.size > 1 and dist.is_initialized():
        # gloo's threads drop a finished collective's tensors under the GIL: let them, before
        # the group's destructor waits on those threads while holding the GIL.
        time.sleep(0.05)
        dist.destroy_process_group()


def broadcast(world: World, value: T) -> T:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if world.size == 1:
        return value
    box: list[Any] = [value if world.leader else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(world: World, work: Callable[[], T]) -> T:
    """``work()`` run on rank 0 alone; its result, or its ``UserError``, reaches every rank."""
    if world.size == 1:
        return work()
    outcome: tuple[bool, Any] = (False, None)
    if world.leader:
        try:
            outcome = (True, work())
        except UserError as exc:
            outcome = (False, str(exc))
    ok, value = broadcast(world, outcome)
    if ok:
        return value
    if world.leader:
        raise UserError(value)
    raise UserError(f"rank 0 stopped the run: {value}")


def all_sum(world: World, values: torch.Tensor) -> torch.Tensor:
    """The elementwise sum of ``values`` over the ranks (in place; returned for chaining)."""
    if world.size > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
