"""Propagation and its hand-written backward against a dense-matrix reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgcn_tui.graph.adjacency import build_adjacency
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
def test_adjacency_matches_dense_normalisation(norm: str) -> None:
    train = random_graph(0)
    adj = build_adjacency(train, 9, 7, norm)
    ref = dense_reference(train, 9, 7, norm)
    assert torch.allclose(adj.matrix.to_dense().double(), ref, atol=1e-6)
    assert torch.allclose(adj.transpose.to_dense().double(), ref.T, atol=1e-6)
    assert adj.matrix.crow_indices().dtype == torch.int32


def dense_propagation(ref: torch.Tensor, ego: torch.Tensor, layers: int, combine: str) -> torch.Tensor:
    outs = [ego]
    for _ in range(layers):
        outs.append(ref @ outs[-1])
    return outs[-1] if combine == "last" else torch.stack(outs).mean(0)


@pytest.mark.parametrize("norm", ["symmetric", "mean"])
@pytest.mark.parametrize("layers", [0, 1, 2, 3])
@pytest.mark.parametrize("combine", ["mean", "last"])
def test_forward_and_backward_match_dense_autograd(norm: str, layers: int, combine: str) -> None:
    train = random_graph(layers)
    adj = build_adjacency(train, 9, 7, norm)
    ref = dense_reference(train, 9, 7, norm).float()
    gen = torch.Generator().manual_seed(1)
    ego = torch.randn(16, 5, generator=gen, dtype=torch.float32)
    rows = torch.tensor([0, 3, 9, 12, 15])
    weights = torch.randn(len(rows), 5, generator=gen, dtype=torch.float32)
    weights0 = torch.randn(len(rows), 5, generator=gen, dtype=torch.float32)

    mine = ego.clone().requires_grad_(True)
    out, out0 = propagate_rows(adj, mine, rows, layers, combine)
    ((out * weights).sum() + (out0 * weights0).sum()).backward()

    theirs = ego.clone().requires_grad_(True)
    expected = dense_propagation(ref, theirs, layers, combine)[rows]
    ((expected * weights).sum() + (theirs[rows] * weights0).sum()).backward()

    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.equal(out0, ego[rows])
    assert torch.allclose(mine.grad, theirs.grad, atol=1e-5)
    full = propagate_all(adj, ego, layers, combine)
    assert torch.allclose(full, dense_propagation(ref, ego, layers, combine), atol=1e-5)


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
    adj = build_adjacency(train, 9, 7, "mean")
    rows = torch.tensor([1, 4, 10, 15])
    sliced, transposed = row_slice(adj.matrix, rows)
    dense = adj.matrix.to_dense()
    assert torch.equal(sliced.to_dense(), dense[rows])
    assert torch.equal(transposed.to_dense(), dense[rows].T)


def test_isolated_nodes_propagate_zero_without_nan() -> None:
    train = np.array([[0, 0]])
    adj = build_adjacency(train, 2, 2, "symmetric")
    out = propagate_all(adj, torch.ones(4, 3, dtype=torch.float32), 2, "last")
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], torch.zeros(3)) and torch.equal(out[3], torch.zeros(3))
