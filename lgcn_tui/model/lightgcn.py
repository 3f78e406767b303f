"""LightGCN with item vectors warm-started from pretrained text embeddings.

The layer-0 ("ego") item vector depends on ``item_mode``:

- ``frozen``:    e_i = p_i                          (p = pretrained, a buffer)
- ``learnable``: e_i = w_i,  w initialised to p     (or Xavier without pretrained vectors)
- ``residual``:  e_i = α·p_i + (1 − α)·w_i,  w initialised to p, α set by the trainer
- ``adapter``:   e_i = MLP(p_i) (+ r_i),  a trainable MLP (``model.adapter``) from the text
                 width to ``dim``; with ``adapter_residual`` plus a per-item residual r
                 initialised to zero (AlphaRec's design, with a way to correct single items)

Users are a parameter, Xavier-initialised or (``start_users_at_items``) started at the mean
of their training items' layer-0 vectors. Propagation is parameter-free (see
``graph.propagate``); the losses live in ``objective``, the training loop outside. The
optimiser's groups are ``group_params``: the item group holds the adapter's weights too.

A node without edges (a cold item: no training interaction) gets nothing from propagation:
under the layer mean its output would be its layer-0 vector divided by K+1, under ``hops``
or ``last`` zero. ``final_embeddings`` therefore gives such a node its layer-0 vector
undivided, in every mode, so a cold item is scored from what it started as: its text
vector, the adapter's map of it, or (Xavier items) noise, which the run reports as such.

Users and items are two parameters (two learning rates) over one node table: one storage on
every device, so the layer-0 table is an alias, never a per-step copy (``ego``). A move
(``.to``, ``.cuda``, a dtype change) joins them again (``_apply``). ``item_start``, the
layer-0 item vectors at the start, serves only the retention diagnostic, so it is kept in
bfloat16: a quarter of the node table's bytes instead of half (1M items × 768: 1.5 GB, not 3).

The node table's rows are kept in the adjacency's propagation order (``graph.layout``:
neighbours close together, so the sparse products hit the cache): ``position[v]`` is node
v's row. Everything the model hands out (``forward``, ``final_embeddings``,
``user_vectors``, ``item_vectors``) is indexed by user and item, so only the parameters
and checkpoints see the order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from ..errors import UserError
from ..graph.adjacency import Adjacency
from ..graph.backend import Backend, TorchBackend
from ..graph.propagate import propagate_perturbed
from .adapter import Adapter, AdapterSpec


class Rows(NamedTuple):
    """A step's vectors: final and layer-0 at the batch's users and items, and, after a perturbed
    propagation, its whole output in table order (``LightGCN.table_rows`` finds a node's row)."""

    user: torch.Tensor
    item: torch.Tensor
    user_ego: torch.Tensor
    item_ego: torch.Tensor
    whole: torch.Tensor | None


START_DTYPE = torch.bfloat16  # of ``item_start``: the retention diagnostic needs no more (see the module docstring)


class LightGCN(nn.Module):
    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int,
        layers: int,
        combine: str,
        item_mode: str,
        pretrained: torch.Tensor | None,
        backend: Backend | None = None,
        position: torch.Tensor | None = None,
        adapter: AdapterSpec | None = None,
    ) -> None:
        super().__init__()
        # Parameter-free, so not a submodule: checkpoints are the same whichever backend ran.
        self.backend: Backend = backend if backend is not None else TorchBackend()
        if item_mode == "adapter" and (pretrained is None or adapter is None):
            raise ValueError("item_mode 'adapter' needs pretrained vectors and an AdapterSpec")
        # The adapter maps the text vectors to ``dim``; the other modes train at the text's width.
        self.adapter = (Adapter(pretrained.shape[1], dim, adapter.layers, adapter.hidden)
                        if item_mode == "adapter" else None)
        self.residual = adapter is not None and adapter.residual
        if pretrained is not None and self.adapter is None:
            dim = pretrained.shape[1]
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        self.layers, self.combine, self.item_mode = layers, combine, item_mode
        # Saved with the parameters, so a checkpoint is never read in another row order.
        self.register_buffer("position", position.clone() if position is not None else None)
        table = torch.empty(n_users + n_items, dim)
        self.user = nn.Parameter(table[:n_users])
        trained = item_mode in ("learnable", "residual") or self.residual
        self.item = nn.Parameter(table[n_users:], requires_grad=trained)
        # Rebuilt from the data on resume, so checkpoints stay small.
        self.register_buffer("pretrained", self._to_table(pretrained.clone(), n_users) if pretrained is not None else None,
                             persistent=False)
        self.register_buffer("item_start", torch.empty(n_items, dim, dtype=START_DTYPE))
        self.register_buffer("alpha", torch.tensor(1.0 if item_mode == "frozen" else 0.0))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draws in node order, so the starting values do not depend on the row order."""
        with torch.no_grad():
            self.user.copy_(self._to_table(nn.init.xavier_uniform_(torch.empty_like(self.user)), 0))
            if self.adapter is not None:
                self.adapter.reset_parameters()
                self.item.zero_()
            elif self.pretrained is None:
                self.item.copy_(self._to_table(nn.init.xavier_uniform_(torch.empty_like(self.item)), self.n_users))
            else:
                self.item.copy_(self.pretrained)
            self.item_start.copy_(self.item_vectors())

    @torch.no_grad()
    def start_users_at_items(self, train: torch.Tensor) -> None:
        """Set each user with training items to the mean of their layer-0 item vectors
        (``model.user_init = "item_mean"``, as AlphaRec starts users); ``train`` holds
        ``(user, item)`` pairs. Users and items then start in one space, so the first scores
        already rank items by their likeness to the user's history."""
        items = self.item_vectors().float()
        users, chosen = train[:, 0].to(items.device), train[:, 1].to(items.device)
        sums = torch.zeros(self.n_users, self.dim, device=items.device).index_add_(0, users, items.index_select(0, chosen))
        counts = torch.bincount(users, minlength=self.n_users).unsqueeze(1)
        users = torch.where(counts > 0, sums / counts.clamp(min=1), self.user_vectors())
        self.user.copy_(self._to_table(users, 0))

    def group_params(self) -> dict[str, list[nn.Parameter]]:
        """The parameters of each optimiser group, users first; the adapter's weights are items'."""
        extra = list(self.adapter.parameters()) if self.adapter is not None else []
        return {"user": [self.user], "item": [self.item, *extra]}

    def set_alpha(self, alpha: float) -> None:
        """Residual weight of the frozen part; only meaningful in ``residual`` mode."""
        self.alpha.fill_(alpha)

    def user_vectors(self) -> torch.Tensor:
        """Layer-0 user vectors, in user order."""
        return self.user if self.position is None else self.user.index_select(0, self._rows(0, self.n_users))

    def item_vectors(self) -> torch.Tensor:
        """Layer-0 item vectors for the current mode, in item order."""
        items = self._item_table()
        return items if self.position is None else items.index_select(0, self._rows(self.n_users, self.n_items))

    def ego(self) -> torch.Tensor:
        """Layer-0 vectors of all nodes in table order (users first).

        In ``learnable`` mode this is the shared table itself (a 70k-row copy per step was
        2–6 % of a Gowalla step, a whole node table of GPU memory at 1M×768); in the other
        modes, or where FSDP gathers the two tables apart, it is a concatenation.
        """
        items = self._item_table()
        if items is self.item and _adjacent(self.user, self.item):
            return _Table.apply(self.user, self.item)
        return torch.cat([self.user, items], 0)

    def forward(self, adj: Adjacency, users: torch.Tensor, items: torch.Tensor,
                perturb: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> Rows:
        """Final and layer-0 vectors of the given users and items (item indices are 0-based).

        Propagation runs once for the batch. Where rows are sliced on the host (the CPU) it
        runs over the union of the batch's nodes, so a node that is both a positive and a
        negative is computed once; on an accelerator the rows are gathered as they come, since
        finding the union would make the host wait for the device. The outputs are ``split`` rather than
        sliced: the backward of a split is one concatenation, that of a slice a zero-filled
        full-size gradient per piece (1–3 ms of a 64-d Gowalla step).

        With ``perturb`` the step's propagation is the perturbed one over every node (see
        ``perturbed``), and ``whole`` holds its output, left in table order: the terms pick the
        rows they need, which spares two full-table gathers and their backward. It runs here,
        in ``forward``, so that DDP synchronises its gradients and FSDP gathers the tables.
        """
        if perturb is not None:
            ego = self.ego()
            out = propagate_perturbed(adj, ego, self.layers, self.combine, perturb)
            user_rows, item_rows = self.table_rows(users), self.table_rows(items + self.n_users)
            return Rows(out.index_select(0, user_rows), out.index_select(0, item_rows),
                        ego.index_select(0, user_rows), ego.index_select(0, item_rows), out)
        nodes = torch.cat([users, items + self.n_users])
        if self.position is not None:
            nodes = self.position.index_select(0, nodes)
        if adj.slice_rows:
            unique, inverse = torch.unique(nodes, return_inverse=True)
            final, ego_rows = self.backend.rows(adj, self.ego(), unique, self.layers, self.combine)
            final, ego_rows = final.index_select(0, inverse), ego_rows.index_select(0, inverse)
        else:
            final, ego_rows = self.backend.rows(adj, self.ego(), nodes, self.layers, self.combine)
        sizes = [len(users), len(items)]
        user, item = final.split(sizes)
        ego_user, ego_item = ego_rows.split(sizes)
        return Rows(user, item, ego_user, ego_item, None)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> "LightGCN":
        """``Module._apply`` (behind ``.to``, ``.cuda``, ``.float``…) converts each parameter on its
        own, which leaves users and items in two storages; join them again into one table.
        Tables that FSDP sharded (DTensors) are left as FSDP holds them."""
        super()._apply(fn, recurse)
        user, item = self.user.data, self.item.data
        plain = type(user) is torch.Tensor and type(item) is torch.Tensor
        if plain and user.device == item.device and user.dtype == item.dtype and not _adjacent(user, item):
            table = torch.cat([user, item])
            self.user.data, self.item.data = table[: self.n_users], table[self.n_users :]
        return self

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        _check_order(state_dict.get("position"), self.position)
        return super().load_state_dict(state_dict, strict, assign)

    def _item_table(self) -> torch.Tensor:
        if self.item_mode == "frozen":
            return self.pretrained
        if self.item_mode == "residual":
            return self.alpha * self.pretrained + (1 - self.alpha) * self.item
        if self.adapter is not None:
            mapped = self.adapter(self.pretrained)
            return mapped + self.item if self.residual else mapped
        return self.item

    def _rows(self, first: int, count: int) -> torch.Tensor:
        """Rows, within their block of the table, of nodes ``first .. first+count-1`` (all
        users or all items: the order keeps users first)."""
        return self.position[first:first + count] - first

    def _to_table(self, values: torch.Tensor, first: int) -> torch.Tensor:
        """Per-user (``first`` 0) or per-item (``first`` n_users) rows, in table order."""
        if self.position is None:
            return values
        return torch.empty_like(values).index_copy_(0, self._rows(first, len(values)), values)

    def perturbed(self, adj: Adjacency, perturb: Callable[[int, torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user and item vectors (user and item order) of a propagation with ``perturb`` applied at
        every layer (``graph.propagate.propagate_perturbed``), differentiable: for objective terms."""
        out = propagate_perturbed(adj, self.ego(), self.layers, self.combine, perturb)
        if self.position is not None:
            out = out.index_select(0, self.position)
        return out[: self.n_users], out[self.n_users :]

    def table_rows(self, nodes: torch.Tensor) -> torch.Tensor:
        """The table rows of nodes (users, then items shifted by ``n_users``)."""
        return nodes if self.position is None else self.position.index_select(0, nodes)

    @torch.no_grad()
    def final_embeddings(self, adj: Adjacency) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user and item vectors, in user and item order; a node without edges keeps its
        layer-0 vector undivided (see the module docstring)."""
        ego = self.ego()
        out = self.backend.all(adj, ego, self.layers, self.combine)
        edgeless = adj.edgeless_rows
        if len(edgeless):
            out.index_copy_(0, edgeless, ego.index_select(0, edgeless).to(out.dtype))
        if self.position is not None:
            out = out.index_select(0, self.position)
        return out[: self.n_users], out[self.n_users :]


def _check_order(saved: torch.Tensor | None, mine: torch.Tensor | None) -> None:
    """Refuse a checkpoint whose table rows are in another order than ours."""
    if saved is None and mine is None:
        return
    if saved is not None and mine is not None:
        if torch.equal(saved.cpu(), mine.cpu()):
            return
        why = "the checkpoint's node table is in another locality order than this model's (other training pairs)"
    else:
        orders = ("locality order", "node order") if mine is None else ("node order", "locality order")
        needed = "true" if mine is None else "false"
        why = (f"the checkpoint's node table is in {orders[0]}, this model's in {orders[1]} "
               f"(it needs graph.reorder = {needed}, with graph.backend = 'torch')")
    raise UserError(f"{why}: load it with the configuration and data it was trained with "
                    "(graph.reorder and graph.backend decide the order)")


def _adjacent(first: torch.Tensor, second: torch.Tensor) -> bool:
    """Whether ``second`` starts where ``first`` ends in one storage, rows contiguous."""
    return (first.is_contiguous() and second.is_contiguous() and first.shape[1:] == second.shape[1:]
            and first.untyped_storage().data_ptr() == second.untyped_storage().data_ptr()
            and second.storage_offset() == first.storage_offset() + first.numel())


class _Table(torch.autograd.Function):
    """``cat([first, second])`` for two adjacent tensors, as an alias of their storage."""

    @staticmethod
    def forward(ctx, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.split = len(first)
        shape = (len(first) + len(second), *first.shape[1:])
        return first.new_empty(0).set_(first.untyped_storage(), first.storage_offset(), shape, first.stride())

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad[: ctx.split], grad[ctx.split :]
