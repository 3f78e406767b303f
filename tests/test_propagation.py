"""Propagation and its hand-written backward against a dense-matrix reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgcn_tui.graph.adjacency import build_adjacency
from lgcn_tui.graph.layout import locality_positions
from lgcn_tui.graph.propagate import propagate_all, propagate_rows, row_slice


def random_graph(seed: int, n_users: int = 9, n_items: int = 7, n_edges: int = 25) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pairs = np.stack([rng.integers(0, n_users, n_edges), rng.integers(0, n_items, n_edges)], 1)
    return np.unique(pairs, axis=0)


def dense_reference(train: np.ndarray, n_users: int, n_items: int, norm: str) -> torch.Tensor:
    """Â written out the textbook way from a dense 0/1 adjacency matrix."""
    n = n_users + n_items
    a = torch.zeros(n, n, dtype=torch.float64)
    for u, i in train:
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    deg = a.sum(1)
    inv = torch.where(deg > 0, 1.0 / deg, torch.zeros_like(deg))
    if norm == "symmetric":
        return inv.sqrt()[:, None] * a * inv.sqrt()[None, :]
    return inv[:, None] * a


@pytest.mark.parametrize("norm", ["symmetric", "mean"])
@pytest.mark.parametrize("reorder", [True, False])
def test_adjacency_matches_dense_normalisation(norm: str, reorder: bool) -> None:
    train = random_graph(0)
    adj = build_adjacency(train, 9, 7, norm, reorder)
    ref = dense_reference(train, 9, 7, norm)
    # The matrix is PÂPᵀ: row and column position[v] belong to node v.
    pos = table_rows(adj, torch.arange(16))
    assert torch.allclose(adj.matrix.to_dense().double()[pos][:, pos], ref, atol=1e-6)
    assert torch.allclose(adj.transpose.to_dense().double()[pos][:, pos], ref.T, atol=1e-6)
    assert adj.matrix.crow_indices().dtype == torch.int32
    assert (adj.position is not None) == reorder


def table_rows(adj, nodes: torch.Tensor) -> torch.Tensor:
    return nodes if adj.position is None else adj.position[nodes]


def test_locality_order_keeps_users_first_and_groups_shared_neighbours() -> None:
    # Users 0-3 and 4-7 like two disjoint item sets, numbered so that the groups interleave.
    train = np.array([[u, i] for u in range(8) for i in range(6) if (u % 2) == (i % 2)])
    pos = locality_positions(train, 8, 6)
    assert sorted(pos[:8]) == list(range(8)) and sorted(pos[8:]) == list(range(8, 14))
    users_by_position = np.argsort(pos[:8])
    items_by_position = np.argsort(pos[8:])
    assert len(set(users_by_position[:4] % 2)) == 1 and len(set(items_by_position[:3] % 2)) == 1


def dense_propagation(ref: torch.Tensor, ego: torch.Tensor, layers: int, combine: str) -> torch.Tensor:
    outs = [ego]
    for _ in range(layers):
        outs.append(ref @ outs[-1])
    if combine == "hops":
        return torch.stack(outs[1:]).mean(0)
    return outs[-1] if combine == "last" else torch.stack(outs).mean(0)


@pytest.mark.parametrize("norm", ["symmetric", "mean"])
@pytest.mark.parametrize(("layers", "combine"), [(k, c) for k in range(4) for c in ("mean", "hops", "last")
                                                 if (k, c) != (0, "hops")])  # hops needs a layer (config refuses)
@pytest.mark.parametrize("reorder", [True, False])
@pytest.mark.parametrize(("kernel", "slice_rows"), [("bag", True), ("bag", False), ("sparse", False)],
                         ids=["cpu-path", "device-path", "device-path-cusparse-kernel"])
def test_forward_and_backward_match_dense_autograd(norm: str, layers: int, combine: str, reorder: bool,
                                                   kernel: str, slice_rows: bool) -> None:
    """Every way a step reaches its rows: the host's row slice, and the accelerator's full
    products (the torch ops CUDA runs) with either product kernel. Rows repeat, as a node
    that is both a positive and a negative does."""
    train = random_graph(layers)
    adj = build_adjacency(train, 9, 7, norm, reorder)
    adj.kernel, adj.slice_rows = kernel, slice_rows
    ref = dense_reference(train, 9, 7, norm).float()
    gen = torch.Generator().manual_seed(1)
    ego = torch.randn(16, 5, generator=gen, dtype=torch.float32)
    rows = torch.tensor([0, 3, 9, 12, 15, 3, 12])
    weights = torch.randn(len(rows), 5, generator=gen, dtype=torch.float32)
    weights0 = torch.randn(len(rows), 5, generator=gen, dtype=torch.float32)

    # The propagation works in table order: node v's vector sits in row position[v].
    at = table_rows(adj, torch.arange(16))
    table = torch.empty_like(ego).index_copy_(0, at, ego)
    mine = table.clone().requires_grad_(True)
    out, out0 = propagate_rows(adj, mine, at[rows], layers, combine)
    ((out * weights).sum() + (out0 * weights0).sum()).backward()

    theirs = ego.clone().requires_grad_(True)
    expected = dense_propagation(ref, theirs, layers, combine)[rows]
    ((expected * weights).sum() + (theirs[rows] * weights0).sum()).backward()

    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.equal(out0, ego[rows])
    assert torch.allclose(mine.grad[at], theirs.grad, atol=1e-5)
    full = propagate_all(adj, table, layers, combine)
    assert torch.allclose(full[at], dense_propagation(ref, ego, layers, combine), atol=1e-5)


@pytest.mark.parametrize("layers", [0, 2])
def test_gradient_through_the_layer0_rows_alone(layers: int) -> None:
    train = random_graph(3)
    adj = build_adjacency(train, 9, 7, "symmetric")
    ego = torch.randn(16, 4, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    rows = torch.tensor([2, 11])
    _, out0 = propagate_rows(adj, ego, rows, layers, "mean")
    out0.sum().backward()
    expected = torch.zeros(16, 4)
    expected[rows] = 1.0
    assert torch.equal(ego.grad, expected)


def test_row_slice_is_the_rows_and_their_transpose() -> None:
    train = random_graph(5)
    train = train[train[:, 0] != 3]  # user 3 has no items: an empty row in the slice
    adj = build_adjacency(train, 9, 7, "mean")
    rows = table_rows(adj, torch.tensor([1, 3, 4, 10, 15]))
    sliced, transposed = row_slice(adj.matrix, rows)
    dense = adj.matrix.to_dense()
    assert torch.equal(sliced.to_dense(), dense[rows])
    assert torch.equal(transposed.to_dense(), dense[rows].T)
    assert sliced.col_indices().dtype == transposed.col_indices().dtype == torch.int32


def test_isolated_nodes_propagate_zero_without_nan() -> None:
    train = np.array([[0, 0]])
    adj = build_adjacency(train, 2, 2, "symmetric")
    out = propagate_all(adj, torch.ones(4, 3, dtype=torch.float32), 2, "last")
    assert torch.isfinite(out).all()
    isolated = table_rows(adj, torch.tensor([1, 3]))  # user 1 and item 1
    assert torch.equal(out[isolated], torch.zeros(2, 3))
