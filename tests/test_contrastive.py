"""The softmax ranking loss and the SimGCL / XSimGCL terms: each equals a plain reference, and runs by name.

The references below use a dense Â, Python loops over rows and the same seeded generator
(drawn in the same order: negatives, then noise layer by layer), so the terms' vectorised
code, the row propagation and the hand-written backward are checked together: same loss,
same gradients on the model's parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import train_to_end

from lgcn_tui import config, objective
from lgcn_tui.errors import UserError
from lgcn_tui.graph.adjacency import build_adjacency
from lgcn_tui.model.lightgcn import LightGCN
from lgcn_tui.objective.bpr import Bpr
from lgcn_tui.objective.contrastive import SimGcl, XSimGcl, uniform
from lgcn_tui.objective.softmax import SampledSoftmax
from lgcn_tui.sinks.jsonl import read_events

N_USERS, N_ITEMS, DIM, LAYERS = 9, 12, 8, 3


def toy(reorder: bool = True, combine: str = "mean") -> tuple:
    """A small graph and model, a batch through the model's own forward (as the step makes it)."""
    torch.manual_seed(0)
    pairs = np.unique(np.stack([np.arange(60) % N_USERS, (np.arange(60) * 7) % N_ITEMS], 1), axis=0)
    adj = build_adjacency(pairs, N_USERS, N_ITEMS, "symmetric", reorder=reorder)
    model = LightGCN(N_USERS, N_ITEMS, DIM, LAYERS, combine, "learnable", None, position=adj.position)
    users = torch.tensor([0, 3, 3, 5, 8, 1, 0, 7])
    pos = torch.tensor([2, 4, 9, 4, 11, 0, 6, 2])
    neg = torch.tensor([1, 1, 5, 7, 3, 10, 8, 9])
    return adj, model, users, pos, neg


def loss_of(term, model: LightGCN, adj, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
            ctx: objective.Context) -> torch.Tensor:
    """The term's value on the batch the step would make for it."""
    return term(objective.Objective((term,)).batch(users, pos, neg, ctx), ctx)


def term_and_grads(term, reorder: bool = True, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    adj, model, users, pos, neg = toy(reorder)
    ctx = objective.Context(model, adj, torch.Generator().manual_seed(seed))
    loss = loss_of(term, model, adj, users, pos, neg, ctx)
    loss.backward()
    return loss.detach().double(), model.user.grad.clone(), model.item.grad.clone()


def reference_and_grads(reference, reorder: bool = True, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    adj, model, users, pos, _ = toy(reorder)
    loss = reference(adj, model, users, pos, torch.Generator().manual_seed(seed))
    loss.backward()
    return loss.detach(), model.user.grad.clone(), model.item.grad.clone()


def assert_same(got: tuple, want: tuple) -> None:
    assert torch.allclose(got[0], want[0], rtol=1e-5, atol=0), (got[0], want[0])
    for g, w in zip(got[1:], want[1:]):
        scale = w.abs().max()
        assert scale > 0
        assert torch.allclose(g.double(), w.double(), rtol=1e-5, atol=1e-5 * scale)


def dense_propagation(adj, model: LightGCN, noise=None, keep: int | None = None, combine: str = "mean"):
    """Final (and layer ``keep``) user and item vectors in float64 from a dense Â, node order.

    ``noise``: (generator, eps); each layer's output then gets ε·sign(h)·r/‖r‖, r ~ U(0,1) per row."""
    dense = adj.matrix.to_dense().double()
    h = torch.cat([model.user, model.item]).double()  # table order, straight from the parameters
    layers, kept = [h], None
    for k in range(1, LAYERS + 1):
        h = dense @ h
        if noise is not None:
            generator, eps = noise
            r = uniform(h.shape, generator, h.device).double()  # the module's draw, tested on its own below
            h = h + eps * torch.sign(h) * r / r.norm(dim=1, keepdim=True)
        layers.append(h)
        if k == keep:
            kept = h
    final = torch.stack({"mean": layers, "hops": layers[1:], "last": layers[-1:]}[combine]).mean(0)

    def node_order(t):
        t = t if adj.position is None else t[adj.position]
        return t[:N_USERS], t[N_USERS:]

    return node_order(final), (node_order(kept) if kept is not None else None)


# ----- softmax ------------------------------------------------------------------------------------

def softmax_reference(negatives: int, temperature: float, score: str, mask: bool = True):
    def reference(adj, model, users, pos, generator):
        drawn = torch.randint(N_ITEMS, (negatives,), generator=generator).tolist()
        (user_vec, item_vec), _ = dense_propagation(adj, model)

        def s(a, b):
            if score == "cosine":
                return (a @ b) / (a.norm() * b.norm()) / temperature
            return (a @ b) / temperature

        total = 0.0
        for r in range(len(users)):
            u, p = user_vec[users[r]], item_vec[pos[r]]
            own = torch.exp(s(u, p))
            denominator = own
            for n in drawn:
                if mask and n == pos[r]:
                    continue
                denominator = denominator + torch.exp(s(u, item_vec[n]))
            total = total - torch.log(own / denominator)
        return total / len(users)

    return reference


def some_negative_is_a_positive(negatives: int, seed: int = 5) -> bool:
    _, _, _, pos, _ = toy()
    drawn = torch.randint(N_ITEMS, (negatives,), generator=torch.Generator().manual_seed(seed))
    return bool(torch.isin(pos, drawn).any())


@pytest.mark.parametrize("score", ["cosine", "dot"])
def test_softmax_equals_a_looped_reference_in_value_and_gradients(score: str) -> None:
    assert some_negative_is_a_positive(16)  # so the masked columns take part
    got = term_and_grads(SampledSoftmax(16, 0.1, score))
    assert_same(got, reference_and_grads(softmax_reference(16, 0.1, score)))


@pytest.mark.parametrize("score", ["cosine", "dot"])
def test_softmax_masks_exactly_a_negative_that_is_the_rows_own_positive(score: str) -> None:
    """Each sampled item equal to a row's positive leaves that row's denominator, and only that row's."""
    assert some_negative_is_a_positive(40)
    got = term_and_grads(SampledSoftmax(40, 0.5, score))[0]
    masked = reference_and_grads(softmax_reference(40, 0.5, score, mask=True))[0]
    unmasked = reference_and_grads(softmax_reference(40, 0.5, score, mask=False))[0]
    assert torch.allclose(got, masked, rtol=1e-5)
    assert not torch.allclose(got, unmasked, rtol=1e-3)


def test_softmax_with_every_negative_masked_has_zero_loss() -> None:
    """One item: every negative is the positive, so each row is its own softmax (loss log 1 = 0)."""
    adj = build_adjacency(np.array([[0, 0], [1, 0]]), 2, 1, "symmetric")
    model = LightGCN(2, 1, 4, 2, "mean", "learnable", None, position=adj.position)
    users, pos = torch.tensor([0, 1]), torch.tensor([0, 0])
    ctx = objective.Context(model, adj, torch.Generator().manual_seed(0))
    loss = loss_of(SampledSoftmax(8, 0.1, "dot"), model, adj, users, pos, pos, ctx)
    assert loss.item() == 0.0


# ----- SimGCL and XSimGCL -------------------------------------------------------------------------

def info_nce_reference(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    total = 0.0
    for r in range(len(a)):
        scores = torch.stack([a[r] @ b[s] / (a[r].norm() * b[s].norm()) / temperature for s in range(len(b))])
        total = total - torch.log(torch.exp(scores[r]) / torch.exp(scores).sum())
    return total / len(a)


def views_reference(users, pos, first, second, temperature):
    u, i = sorted(set(users.tolist())), sorted(set(pos.tolist()))
    return (info_nce_reference(first[0][u], second[0][u], temperature)
            + info_nce_reference(first[1][i], second[1][i], temperature))


def simgcl_reference(weight: float, eps: float, temperature: float):
    def reference(adj, model, users, pos, generator):
        first, _ = dense_propagation(adj, model, (generator, eps))
        second, _ = dense_propagation(adj, model, (generator, eps))
        return weight * views_reference(users, pos, first, second, temperature)

    return reference


def xsimgcl_reference(weight: float, eps: float, temperature: float, layer: int):
    def reference(adj, model, users, pos, generator):
        final, kept = dense_propagation(adj, model, (generator, eps), keep=layer)
        return weight * views_reference(users, pos, final, kept, temperature)

    return reference


@pytest.mark.parametrize("reorder", [True, False])
def test_simgcl_equals_a_dense_reference_with_the_same_noise(reorder: bool) -> None:
    got = term_and_grads(SimGcl(0.3, 0.2, 0.15), reorder)
    assert_same(got, reference_and_grads(simgcl_reference(0.3, 0.2, 0.15), reorder))
    # the noise matters: without it the reference is another number
    clean = reference_and_grads(simgcl_reference(0.3, 0.0, 0.15), reorder)[0]
    assert not torch.allclose(got[0], clean, rtol=1e-3)


@pytest.mark.parametrize(("reorder", "layer"), [(True, 1), (True, 2), (False, 1)])
def test_xsimgcl_equals_a_dense_reference_with_the_same_noise(reorder: bool, layer: int) -> None:
    got = term_and_grads(XSimGcl(0.2, 0.2, 0.15, layer, noisy_ranking=False), reorder)
    assert_same(got, reference_and_grads(xsimgcl_reference(0.2, 0.2, 0.15, layer), reorder))


def test_the_same_seed_gives_the_same_terms_and_another_seed_other_noise() -> None:
    for term in (SimGcl(0.2, 0.2, 0.15), XSimGcl(0.2, 0.2, 0.15, 1, noisy_ranking=False),
                 SampledSoftmax(4, 0.1, "cosine")):
        assert term_and_grads(term, seed=1)[0] == term_and_grads(term, seed=1)[0]
        assert term_and_grads(term, seed=1)[0] != term_and_grads(term, seed=2)[0]


@pytest.mark.parametrize("combine", ["mean", "hops"])
def test_noisy_ranking_gives_bpr_and_xsimgcl_one_noisy_propagation(combine: str) -> None:
    """As published: BPR scores the noisy vectors that XSimGCL contrasts, from one draw of noise."""
    adj, model, users, pos, neg = toy(combine=combine)
    shared = objective.Objective((Bpr(), XSimGcl(0.2, 0.2, 0.15, 1, noisy_ranking=True)))
    ctx = objective.Context(model, adj, torch.Generator().manual_seed(5))
    total, terms = shared(shared.batch(users, pos, neg, ctx), ctx)
    total.backward()
    got = total.detach().double(), model.user.grad.clone(), model.item.grad.clone()

    adj, model, users, pos, neg = toy(combine=combine)
    final, kept = dense_propagation(adj, model, (torch.Generator().manual_seed(5), 0.2), keep=1, combine=combine)
    u, p, n = final[0][users], final[1][pos], final[1][neg]
    bpr = torch.nn.functional.softplus((u * n).sum(-1) - (u * p).sum(-1)).mean()
    want = bpr + 0.2 * views_reference(users, pos, final, kept, 0.15)
    want.backward()
    assert_same(got, (want.detach(), model.user.grad.clone(), model.item.grad.clone()))
    assert terms["bpr"].item() == pytest.approx(bpr.item(), rel=1e-5)


def test_the_noise_draw_is_uniform_in_every_lane_and_repeats_by_seed() -> None:
    shape = torch.Size([30_001, 7])  # not a multiple of three: the last draw is cut
    values = uniform(shape, torch.Generator().manual_seed(3), torch.device("cpu"))
    assert values.shape == shape and values.dtype == torch.float32
    assert 0 < values.min() and values.max() < 1
    flat = values.reshape(-1)[: 3 * (values.numel() // 3)].view(-1, 3)
    for lane in range(3):  # a biased lane (e.g. a 63-bit draw's always-zero top bit) would sit near 0.25 or 0.75
        assert abs(flat[:, lane].mean().item() - 0.5) < 0.01 and abs(flat[:, lane].std().item() - 12**-0.5) < 0.01
    assert torch.histc(values, bins=10, min=0, max=1).div(values.numel()).sub(0.1).abs().max() < 0.005
    assert torch.equal(values, uniform(shape, torch.Generator().manual_seed(3), torch.device("cpu")))


# ----- through a real run -------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "names"), [
    (['objective.loss="softmax"', "objective.softmax_negatives=32"], {"softmax", "reg"}),
    (['objective.terms=["reg", "simgcl"]'], {"bpr", "reg", "simgcl"}),
    (['objective.terms=["reg", "xsimgcl"]', "objective.cl_layer=2"], {"bpr", "reg", "xsimgcl"}),
    (['objective.terms=["reg", "xsimgcl"]', "objective.cl_noisy_ranking=true", 'model.combine="hops"'],
     {"bpr", "reg", "xsimgcl"}),
])
def test_a_run_with_the_term_finishes_and_reports_it_by_name(tiny_config, overrides: list[str],
                                                             names: set[str]) -> None:
    run, state = train_to_end(tiny_config("run.epochs=1", *overrides))
    assert state == "done"
    steps = [e for e in read_events(run.run_dir.metrics) if e["event"] == "step"]
    assert steps and all(set(e["terms"]) == names for e in steps)
    for e in steps:
        assert all(v > 0 for v in e["terms"].values())
        assert e["loss"] == pytest.approx(sum(e["terms"].values()), rel=1e-5)


# ----- configuration ------------------------------------------------------------------------------

def test_defaults_leave_the_objective_as_it_was() -> None:
    o = config.Config().objective
    assert (o.loss, o.terms) == ("bpr", ["reg"])
    assert [t.name for t in objective.build(config.Config()).terms] == ["bpr", "reg"]


def test_the_terms_take_their_settings_from_the_config() -> None:
    cfg = config.resolve({}, "p.toml", ['objective.loss="softmax"', 'objective.terms=["simgcl", "xsimgcl"]',
                                        "objective.softmax_negatives=64", "objective.softmax_score=dot",
                                        "objective.cl_weight=0.5", "objective.cl_layer=3"])
    softmax, simgcl, xsimgcl = objective.build(cfg).terms
    assert (softmax.name, softmax.negatives, softmax.cosine) == ("softmax", 64, False)
    assert (simgcl.name, simgcl.weight, simgcl.eps, simgcl.temperature) == ("simgcl", 0.5, 0.2, 0.15)
    assert (xsimgcl.name, xsimgcl.layer) == ("xsimgcl", 3)


@pytest.mark.parametrize(("overrides", "words"), [
    (["objective.softmax_score=l2"], "objective.softmax_score = 'l2' is not valid; choose one of: cosine, dot"),
    (["objective.softmax_negatives=0"], "objective.softmax_negatives = 0 must be > 0"),
    (["objective.softmax_temperature=0"], "objective.softmax_temperature = 0.0 must be > 0"),
    (["objective.cl_temperature=-1"], "objective.cl_temperature = -1.0 must be > 0"),
    (["objective.cl_eps=-0.1"], "objective.cl_eps = -0.1 must be >= 0"),
    (["objective.cl_weight=-1"], "objective.cl_weight = -1.0 must be >= 0"),
    (['objective.terms=["xsimgcl"]', "objective.cl_layer=4"],
     "objective.cl_layer = 4 must lie in [1, model.layers] = [1, 3]"),
    (['objective.terms=["xsimgcl"]', "objective.cl_layer=0"], "objective.cl_layer = 0 must lie in"),
    (["objective.cl_noisy_ranking=true"], "objective.cl_noisy_ranking = true shares xsimgcl's noisy propagation"),
    (['model.combine="hops"', "model.layers=0"], "model.combine = 'hops' averages layers 1..K"),
])
def test_bad_settings_are_refused_naming_the_key(overrides: list[str], words: str) -> None:
    with pytest.raises(UserError) as caught:
        config.resolve({}, "p.toml", overrides)
    assert words in str(caught.value)


def test_cl_layer_is_only_checked_when_xsimgcl_is_chosen() -> None:
    cfg = config.resolve({}, "p.toml", ["model.layers=0", "objective.cl_layer=1"])
    assert cfg.model.layers == 0


def test_unknown_choices_list_the_new_terms_after_the_built_in_ones() -> None:
    with pytest.raises(UserError, match="choose one of: bpr, softmax$"):
        objective.build(config.resolve({}, "p.toml", ['objective.loss="hinge"']))
    with pytest.raises(UserError, match="valid terms: reg, simgcl, xsimgcl$"):
        objective.build(config.resolve({}, "p.toml", ['objective.terms=["nope"]']))
