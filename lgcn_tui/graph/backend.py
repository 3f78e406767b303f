"""Propagation backends: which library runs LightGCN's message passing (``graph.backend``).

``torch`` (the default) runs the CSR products of ``graph.propagate`` and needs nothing
beyond PyTorch. ``dgl`` runs the same propagation as DGL heterograph message passing, for
users whose code and GPU boxes are built around DGL; ``dgl-sequential`` is the update order
of a widely copied DGL recipe, which is not the LightGCN of the paper (see
``graph.dgl_backend``). The backend is chosen once, when the model is built, and holds no
parameters, so checkpoints move freely between backends.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from ..errors import UserError
from .adjacency import Adjacency
from .propagate import propagate_all, propagate_rows

BACKENDS = ("torch", "dgl", "dgl-sequential")


class Backend(Protocol):
    """Propagation as the model and the evaluator need it; ``adj`` is the run's normalised Â."""

    name: str

    def rows(self, adj: Adjacency, ego: torch.Tensor, rows: torch.Tensor, layers: int,
             combine: str) -> tuple[torch.Tensor, torch.Tensor]:
        """LightGCN output and layer-0 vectors at node indices ``rows`` (unique), differentiable w.r.t. ``ego``."""
        ...

    def all(self, adj: Adjacency, ego: torch.Tensor, layers: int, combine: str) -> torch.Tensor:
        """LightGCN output for every node, without gradients (evaluation, export)."""
        ...


class TorchBackend:
    """The default: ``graph.propagate``'s products over Â with its hand-written backward."""

    name = "torch"

    def rows(self, adj: Adjacency, ego: torch.Tensor, rows: torch.Tensor, layers: int,
             combine: str) -> tuple[torch.Tensor, torch.Tensor]:
        return propagate_rows(adj, ego, rows, layers, combine)

    def all(self, adj: Adjacency, ego: torch.Tensor, layers: int, combine: str) -> torch.Tensor:
        return propagate_all(adj, ego, layers, combine)


def make_backend(name: str, train: np.ndarray, n_users: int, n_items: int, norm: str,
                 device: torch.device) -> Backend:
    """The backend ``graph.backend`` names, ready on ``device``.

    A DGL backend builds its own heterograph from the training pairs, so a missing or
    unloadable DGL is reported here, before any training starts.
    """
    if name not in BACKENDS:
        raise UserError(f"graph.backend = {name!r} is not valid; choose one of: {', '.join(BACKENDS)}")
    if name == "torch":
        return TorchBackend()
    from .dgl_backend import DglBackend, load_dgl

    return DglBackend(load_dgl(name, device), train, n_users, n_items, norm,
                      sequential=name == "dgl-sequential", device=device)
