"""The objective as named terms: each term's value reaches metrics.jsonl, and a new term needs no other change."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import train_to_end

from lgcn_tui import objective
from lgcn_tui.errors import UserError
from lgcn_tui.graph.adjacency import build_adjacency
from lgcn_tui.model.lightgcn import LightGCN
from lgcn_tui.sinks.jsonl import read_events


class ScoreSpread:
    """A toy auxiliary term: the mean squared score of the batch's negatives, drawn by itself."""

    name = "spread"

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def __call__(self, batch: objective.Batch, ctx: objective.Context) -> torch.Tensor:
        items = torch.randint(0, ctx.model.n_items, (len(batch.users),), generator=ctx.generator,
                              device=batch.users.device)
        _, vectors = ctx.model.perturbed(ctx.adj, lambda _k, h: h)
        return self.weight * (batch.user_out * vectors[items]).sum(-1).pow(2).mean()


def test_a_registered_term_is_chosen_by_config_and_reported_under_its_name(tiny_config, monkeypatch) -> None:
    monkeypatch.setitem(objective.AUXILIARY, "spread", lambda cfg: ScoreSpread(0.5))
    run, state = train_to_end(tiny_config("run.epochs=1", 'objective.terms=["reg", "spread"]'))
    assert state == "done"
    steps = [e for e in read_events(run.run_dir.metrics) if e["event"] == "step"]
    assert steps and all(set(e["terms"]) == {"bpr", "reg", "spread"} for e in steps)
    assert all(e["terms"]["spread"] > 0 for e in steps)
    for e in steps:
        assert e["loss"] == pytest.approx(sum(e["terms"].values()), rel=1e-5)


def test_without_a_term_its_value_is_gone_and_the_loss_is_the_ranking_loss(tiny_config) -> None:
    run, _ = train_to_end(tiny_config("run.epochs=1", "objective.terms=[]"))
    steps = [e for e in read_events(run.run_dir.metrics) if e["event"] == "step"]
    assert all(set(e["terms"]) == {"bpr"} and e["loss"] == e["terms"]["bpr"] for e in steps)


@pytest.mark.parametrize(("override", "words"), [
    ('objective.loss="hinge"', "objective.loss = 'hinge' is not a ranking loss; choose one of: bpr"),
    ('objective.terms=["reg", "nope"]', "objective.terms has unknown term(s) 'nope'; valid terms: reg"),
    ('objective.terms=["reg", "reg"]', "names a term twice"),
])
def test_an_unknown_choice_is_refused_before_the_run_directory_exists(tiny_config, tmp_path, override: str,
                                                                      words: str) -> None:
    with pytest.raises(UserError) as caught:
        train_to_end(tiny_config(override))
    assert words in str(caught.value)
    assert not (tmp_path / "runs").exists()


def dense_reference(adj, table: torch.Tensor, layers: int, shift: float, combine: str) -> torch.Tensor:
    """h_k = Â h_(k-1) + shift with a dense Â, combined over layers as ``combine`` says, in table
    order; returned in node order."""
    dense = adj.matrix.to_dense().double()
    outs = [table.double()]
    for _ in range(layers):
        outs.append(dense @ outs[-1] + shift)
    chosen = {"mean": outs, "hops": outs[1:], "last": outs[-1:]}[combine]
    return torch.stack(chosen).mean(0)[adj.position]


@pytest.mark.parametrize("combine", ["mean", "hops", "last"])
def test_perturbed_propagation_matches_a_dense_reference_and_carries_gradients(combine: str) -> None:
    torch.manual_seed(0)
    pairs = np.unique(np.stack([np.arange(60) % 9, (np.arange(60) * 7) % 12], 1), axis=0)
    adj = build_adjacency(pairs, 9, 12, "symmetric", reorder=True)
    model = LightGCN(9, 12, 8, 3, combine, "learnable", None, position=adj.position)
    users, items = model.perturbed(adj, lambda _k, h: h + 0.25)
    want = dense_reference(adj, model.ego().detach(), 3, 0.25, combine)
    assert torch.allclose(torch.cat([users, items]).double(), want, atol=1e-5)
    plain = torch.cat(model.perturbed(adj, lambda _k, h: h)).detach()
    assert torch.allclose(plain, torch.cat(model.final_embeddings(adj)), atol=1e-6)
    (users.sum() + 2 * items.sum()).backward()
    assert model.user.grad is not None and model.item.grad is not None
    assert model.user.grad.abs().sum() > 0 and model.item.grad.abs().sum() > 0
