"""How the model's tables spread over the ranks: whole on every rank (one process, DDP) or sharded (FSDP2).

The training loop asks three things of a strategy and nothing else: the module to call
for a step's forward (``step_module``: DDP wraps the model so its backward all-reduces
the gradients), a context in which the tables are whole (``whole_tables``: evaluation
and diagnostics propagate over every node), and each rank's part of the squared gradient
norms (``grad_squares``), which the step's one all-reduce adds up into the global norm
that clipping and the divergence guard use.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import warnings
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..config import ObjectiveConfig
from ..errors import UserError
from ..model.lightgcn import LightGCN
from .distributed import World


# Buffers (position, alpha, item_start) are set alike on every rank: no broadcast per step.
# Newer torch names the option ``forward_sync_buffers``; older only ``broadcast_buffers``.
NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                  if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
                  else {"broadcast_buffers": False})


class Replicated:
    """Every rank holds the whole tables; with more than one rank, DDP all-reduces (averages) the gradients."""

    sharded = False

    def __init__(self, model: LightGCN, world: World) -> None:
        self.model, self.world = model, world
        self.step_module: nn.Module = DistributedDataParallel(model, **NO_BUFFER_SYNC) if world.size > 1 else model

    @contextlib.contextmanager
    def whole_tables(self) -> Iterator[None]:
        yield

    def release(self) -> None:
        """Drop DDP before the process group goes: its reducer, destroyed with the last reference to
        a gloo group at interpreter exit, deadlocked there against gloo's own thread (seen in tests)."""
        self.step_module = self.model
        gc.collect()

    def grad_squares(self, grad: torch.Tensor | None) -> torch.Tensor:
        """‖grad‖² counted once over the ranks: all-reduced gradients are alike, so rank 0's alone."""
        if grad is None or not self.world.leader:
            return torch.zeros((), device=self.model.user.device)
        flat = grad.reshape(-1)
        return torch.dot(flat, flat)


class Sharded:
    """FSDP2 (``fully_shard``): user and item rows, their gradients and Adam state split over the ranks."""

    sharded = True

    def __init__(self, model: LightGCN, world: World) -> None:
        from torch.distributed.fsdp import fully_shard

        self.model, self.world = model, world
        self.step_module = fully_shard(model)
        # The forward's outputs are ``split`` views (a cheaper backward than slices); nothing
        # changes them in place, which is what FSDP warns about on every step.
        warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")

    @contextlib.contextmanager
    def whole_tables(self) -> Iterator[None]:
        """All-gathered tables for a propagation outside ``forward`` (every rank must enter)."""
        self.step_module.unshard()
        try:
            yield
        finally:
            self.step_module.reshard()

    def release(self) -> None:
        return None

    def grad_squares(self, grad: torch.Tensor | None) -> torch.Tensor:
        """This rank's shard's part of ‖grad‖²: the ranks' parts add up to the whole."""
        if grad is None:
            return torch.zeros((), device=self.model.user.device)
        flat = grad.to_local().reshape(-1)
        return torch.dot(flat, flat)


def outside_forward(objective: ObjectiveConfig) -> list[str]:
    """Terms that propagate the whole tables through ``LightGCN.perturbed`` outside the forward
    in which FSDP gathers them (xsimgcl with ``cl_noisy_ranking`` propagates inside it)."""
    return [t for t in objective.terms
            if t == "simgcl" or (t == "xsimgcl" and not objective.cl_noisy_ranking)]


def build(model: LightGCN, world: World, strategy: str, objective: ObjectiveConfig) -> Replicated | Sharded:
    """The strategy ``dist.strategy`` names; one process is always ``Replicated`` (nothing to split)."""
    if strategy == "fsdp" and world.size > 1:
        outside = outside_forward(objective)
        if outside:
            raise UserError(f"dist.strategy = 'fsdp' shards the tables, but objective.terms {outside!r} propagate "
                            "them outside the model's forward; use dist.strategy=ddp, drop those terms, or (xsimgcl) "
                            "set objective.cl_noisy_ranking=true so its propagation is the forward's")
        return Sharded(model, world)
    return Replicated(model, world)
