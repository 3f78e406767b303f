"""The training objective: exactly one ranking loss plus any auxiliary terms, each a named object.

The objective makes each step's batch (``Objective.batch``: the users, positives and
negatives with their final and layer-0 vectors from the step's one propagation) and hands
it with a context (the model, the adjacency and a seeded generator) to every term. A term
may use what it is given, draw its own negatives from the generator, or run its own
propagation through ``LightGCN.perturbed`` with a per-layer hook, as contrastive terms do.
One term may instead perturb the step's own propagation (``Term.step_hook``; XSimGCL as
published): the batch then carries that propagation's whole output and the layers the hook
kept (``Views``), and every term, the ranking loss included, sees the noisy vectors. Each
term's value is reported under its name in the step metrics, so the loss pane and
``metrics.jsonl`` show them separately.

Adding a term is one module that calls ``register`` plus a config choice
(``objective.loss`` for a ranking loss, ``objective.terms`` for an auxiliary one); the run
and the dashboard need no change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from ..config import Config
from ..errors import UserError
from ..graph.adjacency import Adjacency
from ..model.lightgcn import LightGCN, Rows
from .unique import first_occurrence


@dataclass(frozen=True)
class Views:
    """A perturbed step propagation's output and the layer its hook kept, both in the model's
    table order; ``user_rows``/``item_rows`` are the rows of the batch's users and positives,
    ``user_first``/``item_first`` mark each one's first occurrence (the unique ones, as a mask)."""

    out: torch.Tensor
    layer: torch.Tensor
    user_rows: torch.Tensor
    item_rows: torch.Tensor
    user_first: torch.Tensor
    item_first: torch.Tensor


@dataclass(frozen=True)
class Batch:
    """One step's triples (indices on the model's device) and their vectors from the step's propagation."""

    users: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor
    user_out: torch.Tensor
    pos_out: torch.Tensor
    neg_out: torch.Tensor
    user_ego: torch.Tensor
    pos_ego: torch.Tensor
    neg_ego: torch.Tensor
    views: Views | None = None
    extra: torch.Tensor | None = None
    extra_out: torch.Tensor | None = None


@dataclass(frozen=True)
class Context:
    model: LightGCN
    adj: Adjacency
    generator: torch.Generator


class Term(Protocol):
    """A scalar the step minimises; ``name`` is the key it is reported under.

    A term that perturbs the step's own propagation also has ``step_hook(ctx)``, returning
    the per-layer hook and the list the hook keeps its one layer in; a term that scores
    items of its own choosing has ``extra_items(ctx)``, and the batch then carries them
    (``extra``) with their final vectors (``extra_out``) from the same propagation. Other
    terms need define neither.
    """

    name: str

    def __call__(self, batch: Batch, ctx: Context) -> torch.Tensor: ...


Hook = Callable[[int, torch.Tensor], torch.Tensor]
TermFactory = Callable[[Config], Term]
RANKING: dict[str, TermFactory] = {}
AUXILIARY: dict[str, TermFactory] = {}


def register(name: str, factory: TermFactory, *, ranking: bool = False) -> None:
    """Make ``name`` a choice of ``objective.loss`` (``ranking``) or of ``objective.terms``."""
    (RANKING if ranking else AUXILIARY)[name] = factory


@dataclass(frozen=True)
class Objective:
    terms: tuple[Term, ...]

    def batch(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, ctx: Context,
              forward: Callable[..., Rows] | None = None) -> Batch:
        """The step's propagation: over the batch's rows only, or, when a term perturbs it, over
        every node with that term's hook. ``forward``: what the step calls, the model or DDP/FSDP
        around it (default the model)."""
        model = ctx.model
        extra = next((t.extra_items(ctx) for t in self.terms if getattr(t, "extra_items", None) is not None), None)
        items = torch.cat([pos, neg] if extra is None else [pos, neg, extra])
        hooked = next((t.step_hook for t in self.terms if getattr(t, "step_hook", None) is not None), None)
        hook, kept = hooked(ctx) if hooked is not None else (None, [])
        rows = (forward or model)(ctx.adj, users, items, perturb=hook)
        views = None
        if rows.whole is not None:
            (layer,) = kept
            views = Views(rows.whole, layer, model.table_rows(users), model.table_rows(pos + model.n_users),
                          first_occurrence(users), first_occurrence(pos))
        sizes = [len(users)] * 2 + ([len(extra)] if extra is not None else [])
        outs, egos = rows.item.split(sizes), rows.item_ego.split(sizes)
        return Batch(users, pos, neg, rows.user, outs[0], outs[1], rows.user_ego, egos[0], egos[1], views,
                     extra, outs[2] if extra is not None else None)

    def __call__(self, batch: Batch, ctx: Context) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total to minimise and each term's value, ranking loss first."""
        values = {term.name: term(batch, ctx) for term in self.terms}
        total = torch.stack(list(values.values())).sum() if len(values) > 1 else next(iter(values.values()))
        return total, values


def build(cfg: Config) -> Objective:
    """The objective the config names; an unknown choice names the key and the valid ones."""
    from . import bpr, contrastive, l2, softmax  # noqa: F401  - the built-in terms register themselves

    o = cfg.objective
    if o.loss not in RANKING:
        raise UserError(f"objective.loss = {o.loss!r} is not a ranking loss; "
                        f"choose one of: {', '.join(sorted(RANKING))}")
    unknown = [t for t in o.terms if t not in AUXILIARY]
    if unknown:
        raise UserError(f"objective.terms has unknown term(s) {', '.join(map(repr, unknown))}; "
                        f"valid terms: {', '.join(sorted(AUXILIARY))}")
    if len(set(o.terms)) != len(o.terms):
        raise UserError(f"objective.terms = {o.terms!r} names a term twice")
    return Objective((RANKING[o.loss](cfg), *(AUXILIARY[t](cfg) for t in o.terms)))
