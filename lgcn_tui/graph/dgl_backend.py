"""LightGCN propagation as DGL heterograph message passing (``graph.backend = "dgl"``).

Users and items are two node types joined by ``ui`` (user → item) and ``iu`` (item → user)
edges, as in the DGL notebooks our users start from. One layer is

    symmetric:  h_i' = Σ_u h_u / √(d_u d_i)   →  ``update_all(u_mul_e('h', 'w', 'm'), sum('m', 'h'))``
    mean:       h_i' = mean_u h_u             →  ``update_all(copy_u('h', 'm'), mean('m', 'h'))``

(and the same for users from items), with the edge weight ``w`` computed here from DGL's
own degree counts. That is exactly Â·e of the default backend, and the parity tests hold
the two to float tolerance.

``dgl-sequential`` is the update order of a widely copied recipe: items from users, then
users from the *already updated* items, within one layer. A user's vector then mixes its
2-hop neighbourhood after one layer; it is not the LightGCN of the paper and is offered
only to reproduce results made that way.

DGL is imported on first use, never at package import: the default backend needs none of
it, and a DGL that cannot load is reported as a ``UserError`` before training starts.
"""

from __future__ import annotations

import importlib.metadata
import os
from types import ModuleType
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from .adjacency import Adjacency
from .propagate import layer_mix

# What we build and test against (the newest DGL with CPU wheels on PyPI, and what it needs).
NEEDED = ("dgl 2.1.0 (the last release with CPU wheels on PyPI), which loads only with torch 2.0–2.2.1 "
          "and needs numpy<2, setuptools<70, torchdata==0.7.1, pandas, pyyaml and pydantic "
          "(see the README's DGL backend section)")
DEFAULT_NEEDS_NONE = "The default backend, graph.backend = 'torch', needs none of it."


def _installed(dist: str) -> str:
    try:
        return f"{dist} {importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        return f"no {dist} installed"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def load_dgl(backend: str, device: torch.device) -> ModuleType:
    """Import DGL and check it can hold a graph on ``device``; any failure is a ``UserError``.

    An incompatible stack fails in many ways (a missing module, a missing or mismatched
    C++ library, numpy 2, ``setuptools.extern``), so every exception on import is caught
    and its first line quoted with the versions found.
    """
    # Without this DGL writes ~/.dgl/config.json and prints a notice on first import.
    os.environ.setdefault("DGLBACKEND", "pytorch")
    try:
        import dgl
        import dgl.function  # noqa: F401 - the message and reduce functions used below
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise UserError(f"graph.backend = {backend!r} needs DGL, which cannot be loaded here: found torch "
                        f"{torch.__version__} and {_installed('dgl')} ({_first_line(exc)}). Needed: {NEEDED}. "
                        f"{DEFAULT_NEEDS_NONE}") from exc
    if device.type != "cpu":
        try:
            dgl.graph(([0], [0])).to(device)
        except Exception as exc:  # noqa: BLE001 - DGLError and friends; the message says what is wrong
            raise UserError(f"graph.backend = {backend!r} on {device.type}: the installed {_installed('dgl')} "
                            f"cannot place a graph on {device} ({_first_line(exc)}); it is a CPU-only build "
                            f"(PyPI has no other). Needed: a DGL build for this torch {torch.__version__} and "
                            f"CUDA {torch.version.cuda}, or run.device=cpu. {DEFAULT_NEEDS_NONE}") from exc
    return dgl


class DglBackend:
    """LightGCN propagation through a DGL heterograph of the training interactions.

    ``adj`` is accepted and unused: the heterograph, built here from the same training
    pairs, carries the graph and its normalisation.
    """

    def __init__(self, dgl: ModuleType, train: np.ndarray, n_users: int, n_items: int, norm: str,
                 sequential: bool, device: torch.device) -> None:
        self.name = "dgl-sequential" if sequential else "dgl"
        self.sequential, self.n_users = sequential, n_users
        fn = dgl.function
        users = torch.from_numpy(np.ascontiguousarray(train[:, 0])).long()
        items = torch.from_numpy(np.ascontiguousarray(train[:, 1])).long()
        graph = dgl.heterograph({("user", "ui", "item"): (users, items), ("item", "iu", "user"): (items, users)},
                                num_nodes_dict={"user": n_users, "item": n_items})
        self.message: Any
        self.reduce: Any
        if norm == "symmetric":
            deg_user = graph.out_degrees(etype="ui").float()
            deg_item = graph.out_degrees(etype="iu").float()
            # The iu edges were created in the same order as the ui edges, so one weight vector serves both.
            weight = (deg_user[users] * deg_item[items]).rsqrt()
            graph.edges["ui"].data["w"] = weight
            graph.edges["iu"].data["w"] = weight
            self.message, self.reduce = fn.u_mul_e("h", "w", "m"), fn.sum("m", "h")
        else:
            self.message, self.reduce = fn.copy_u("h", "m"), fn.mean("m", "h")
        self.graph = graph.to(device)

    def _pull(self, etype: str, src: str, dst: str, h: torch.Tensor) -> torch.Tensor:
        """New ``dst`` vectors from ``src`` vectors ``h`` over one edge type."""
        with self.graph.local_scope():
            self.graph.nodes[src].data["h"] = h
            self.graph.update_all(self.message, self.reduce, etype=etype)
            return self.graph.nodes[dst].data["h"]

    def _propagate(self, ego: torch.Tensor, layers: int, combine: str) -> torch.Tensor:
        h_user, h_item = ego[: self.n_users].float(), ego[self.n_users :].float()
        with_ego, with_middle, divide = layer_mix(combine, layers)
        total = ego.float() if with_ego else torch.zeros_like(ego, dtype=torch.float32)
        for k in range(1, layers + 1):
            new_item = self._pull("ui", "user", "item", h_user)
            # The paper's layer reads the previous layer on both sides; the recipe reads the new items.
            h_user = self._pull("iu", "item", "user", new_item if self.sequential else h_item)
            h_item = new_item
            if with_middle or k == layers:
                total = total + torch.cat([h_user, h_item])
        return total / divide

    def rows(self, adj: Adjacency, ego: torch.Tensor, rows: torch.Tensor, layers: int,
             combine: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Every node is propagated (as DGL code does) and the batch's rows are taken; DGL's autograd does the backward."""
        with torch.autocast(device_type=ego.device.type, enabled=False):
            out = self._propagate(ego, layers, combine)
        return out.index_select(0, rows), ego.index_select(0, rows)

    @torch.no_grad()
    def all(self, adj: Adjacency, ego: torch.Tensor, layers: int, combine: str) -> torch.Tensor:
        with torch.autocast(device_type=ego.device.type, enabled=False):
            return self._propagate(ego, layers, combine)
