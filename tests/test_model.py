"""The model's layer-0 table: shared storage for users and items, the same values and gradients as a concatenation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lgcn_tui.errors import UserError
from lgcn_tui.graph.adjacency import build_adjacency
from lgcn_tui.model.lightgcn import LightGCN


def model(mode: str) -> LightGCN:
    torch.manual_seed(0)
    pretrained = torch.randn(7, 4)
    return LightGCN(5, 7, 4, 2, "mean", mode, pretrained)


@pytest.mark.parametrize("separate", [False, True])
@pytest.mark.parametrize("mode", ["learnable", "residual", "frozen"])
def test_ego_equals_the_concatenation_with_the_same_gradients(mode: str, separate: bool) -> None:
    m = model(mode)
    m.set_alpha(0.7)
    if separate:  # as after a move to another device: the parameters no longer share storage
        m.user = nn.Parameter(m.user.detach().clone())
    weights = torch.randn(12, 4)
    ego = m.ego()
    assert torch.equal(ego, torch.cat([m.user, m.item_vectors()]))
    (ego * weights).sum().backward()
    assert torch.equal(m.user.grad, weights[:5])
    if mode == "learnable":
        assert torch.equal(m.item.grad, weights[5:])
    elif mode == "residual":
        assert torch.allclose(m.item.grad, 0.3 * weights[5:])
    else:
        assert m.item.grad is None


def test_learnable_ego_is_the_parameters_storage_not_a_copy() -> None:
    m = model("learnable")
    ego = m.ego()
    assert ego.data_ptr() == m.user.data_ptr()
    with torch.no_grad():
        m.item[2] += 1.0  # an optimizer step writes the parameters in place
    assert torch.equal(m.ego()[5 + 2], m.item[2])


def pair(mode: str) -> tuple[LightGCN, LightGCN, object, object]:
    """The same model over node order and over the locality order, from one seed."""
    gen = torch.Generator().manual_seed(3)
    train = torch.stack([torch.randint(0, 5, (20,), generator=gen), torch.randint(0, 7, (20,), generator=gen)], 1)
    train = torch.unique(train, dim=0).numpy()
    pretrained = torch.randn(7, 4, generator=gen)
    built = []
    for reorder in (False, True):
        adj = build_adjacency(train, 5, 7, "symmetric", reorder)
        torch.manual_seed(0)
        built.append((LightGCN(5, 7, 4, 2, "mean", mode, pretrained, position=adj.position), adj))
    (node, node_adj), (local, local_adj) = built
    assert local_adj.position is not None and not torch.equal(local_adj.position, torch.arange(12))
    return node, local, node_adj, local_adj


@pytest.mark.parametrize("mode", ["learnable", "residual", "frozen"])
def test_row_order_is_invisible_outside_the_model(mode: str) -> None:
    node, local, node_adj, local_adj = pair(mode)
    for m in (node, local):
        m.set_alpha(0.6)
    assert torch.equal(node.item_vectors(), local.item_vectors())
    assert torch.equal(node.user_vectors(), local.user_vectors())
    assert not torch.equal(node.user, local.user)  # the rows really are in another order
    users, items = torch.tensor([0, 3, 4, 3]), torch.tensor([1, 6, 2, 0, 5, 5, 2, 1])
    outs = [m(a, users, items)[:4] for m, a in ((node, node_adj), (local, local_adj))]
    for mine, theirs in zip(*outs):
        assert torch.allclose(mine, theirs, atol=1e-6)
    for out in outs:
        sum((o * torch.arange(o.numel(), dtype=torch.float32).view_as(o)).sum() for o in out).backward()
    to_nodes = local_adj.position
    assert torch.allclose(local.user.grad[to_nodes[:5]], node.user.grad, atol=1e-6)
    if mode != "frozen":
        assert torch.allclose(local.item.grad[to_nodes[5:] - 5], node.item.grad, atol=1e-6)
    for mine, theirs in zip(node.final_embeddings(node_adj), local.final_embeddings(local_adj)):
        assert torch.allclose(mine, theirs, atol=1e-6)


@pytest.mark.parametrize("combine", ["mean", "hops", "last"])
def test_a_step_through_the_whole_propagation_equals_the_row_propagation_with_no_noise(combine: str) -> None:
    """The two ways a step propagates (rows only; every node, for a term that perturbs it) agree
    in values and gradients when the perturbation does nothing."""
    results = []
    for perturb in (None, lambda _k, h: h):
        torch.manual_seed(0)
        pairs = np.unique(np.stack([np.arange(40) % 5, (np.arange(40) * 3) % 7], 1), axis=0)
        adj = build_adjacency(pairs, 5, 7, "symmetric", reorder=True)
        model = LightGCN(5, 7, 4, 2, combine, "learnable", None, position=adj.position)
        rows = model(adj, torch.tensor([0, 3, 3]), torch.tensor([1, 6, 2, 1]), perturb=perturb)
        assert (rows.whole is None) == (perturb is None)
        sum((o * torch.arange(o.numel(), dtype=torch.float32).view_as(o)).sum() for o in rows[:4]).backward()
        results.append((rows[:4], model.user.grad, model.item.grad))
    (clean, clean_user, clean_item), (whole, whole_user, whole_item) = results
    for mine, theirs in zip(clean, whole):
        assert torch.allclose(mine, theirs, atol=1e-6)
    assert torch.allclose(clean_user, whole_user, atol=1e-5) and torch.allclose(clean_item, whole_item, atol=1e-5)


def test_a_checkpoint_is_not_loaded_in_another_row_order() -> None:
    node, local, _, _ = pair("learnable")
    local.load_state_dict(local.state_dict())
    with pytest.raises(UserError, match="graph.reorder = true"):
        node.load_state_dict(local.state_dict())
    with pytest.raises(UserError, match="graph.reorder = false"):
        local.load_state_dict(node.state_dict())
    other = torch.cat([torch.arange(4, -1, -1), torch.arange(11, 4, -1)])  # users and items reversed
    elsewhere = LightGCN(5, 7, 4, 2, "mean", "learnable", None, position=other)
    with pytest.raises(UserError, match="another locality order"):
        elsewhere.load_state_dict(local.state_dict())


def shares_one_storage(m: LightGCN) -> bool:
    """Users then items in one storage, and the layer-0 table an alias of it (no copy per step)."""
    ego = m.ego()
    return (m.user.untyped_storage().data_ptr() == m.item.untyped_storage().data_ptr()
            and m.item.storage_offset() == m.user.numel() and ego.data_ptr() == m.user.data_ptr())


def test_a_move_keeps_users_and_items_in_one_storage_with_their_values(tiny_config) -> None:
    from lgcn_tui import data
    from lgcn_tui.run.loader import build_model

    cfg = tiny_config()
    _, built = build_model(cfg, data.load(cfg), torch.device("cpu"))
    assert shares_one_storage(built)
    m = model("learnable")
    user, item = m.user.detach().clone(), m.item.detach().clone()
    m.to(torch.float64)  # Module._apply converts each parameter on its own: two storages, then joined
    assert m.user.dtype == torch.float64 and shares_one_storage(m)
    m.to(torch.device("cpu"), torch.float32)
    assert shares_one_storage(m)
    assert torch.equal(m.user, user) and torch.equal(m.item, item)
    (m.ego() * torch.arange(48.0).view(12, 4)).sum().backward()  # the alias still routes gradients to both
    assert torch.equal(m.user.grad, torch.arange(20.0).view(5, 4))
    assert torch.equal(m.item.grad, torch.arange(20.0, 48.0).view(7, 4))


def test_the_start_vectors_are_kept_in_bfloat16_and_retention_reads_them() -> None:
    from lgcn_tui.train.diagnostics import retention

    m = model("learnable")
    assert m.item_start.dtype == torch.bfloat16
    assert retention(m.item_vectors().detach(), m.item_start) == pytest.approx((1.0, 1.0), abs=1e-2)
    with torch.no_grad():
        m.item[:, 0] *= -1  # flip one coordinate of every item: the cosines fall to a known value
    items = m.item_vectors().detach()
    want = torch.nn.functional.cosine_similarity(items, m.item_start.float(), dim=1)
    mean, p10 = retention(items, m.item_start, rows=3)  # in blocks of 3 rows: the same as all at once
    assert mean == pytest.approx(float(want.mean()), abs=1e-6) and mean < 0.9
    assert p10 == pytest.approx(float(torch.quantile(want, 0.1)), abs=1e-6)
