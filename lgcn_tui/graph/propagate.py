"""LightGCN propagation with one hand-written backward pass for all layers.

    e^(k+1) = Â e^(k),   out = mean(e^(0), ..., e^(K))   (``combine`` ``mean``)
                         out = mean(e^(1), ..., e^(K))   (``hops``: SELFRec's XSimGCL leaves out layer 0)
                         out = e^(K)                     (``last``)

Propagation is linear, so the gradient of the batch's outputs is a sum of ``Âᵀ`` products
applied to the upstream gradient — no activations need saving.

Two ways to reach the batch's rows, chosen by where the tables live (``Adjacency.slice_rows``):

- On the CPU the last layer is only needed at the batch's rows, so a K-layer step costs
  K-1 full products forward and K-1 backward plus products over a row slice of Â that
  scipy builds in compiled loops.
- On an accelerator the slice's size depends on the batch's degrees, and learning it stops
  the host until the device catches up; there every layer is a full product and the rows
  are gathered from it (and their gradient scattered back), so every shape in the step is
  known before it runs and nothing waits. Rows may repeat: a node that is both a positive
  and a negative is gathered twice and its gradients add up.

Products (``spmm``) run as one of two kernels (``graph.kernel``, chosen per device by
measurement in ``graph.kernel``): ``bag``, ``F.embedding_bag`` (a weighted sum of rows per
CSR row) over the CSR arrays, measured about 3× faster than ``torch.sparse.mm`` on CPU
because it skips the zero-filled output and index conversions of the sparse path; and
``sparse``, ``torch.sparse.mm`` on the CSR tensor (cuSPARSE on CUDA, where one warp per
row can leave the busiest rows setting the time of ``bag``). Products run in the
adjacency's ``dtype`` (bf16 under ``run.amp`` on CUDA); layer sums are kept in fp32.

Node tables and row indices here are in the adjacency's order (``graph.adjacency``), which
is the order the model keeps its table in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse
import torch
import torch.nn.functional as F

from .adjacency import Adjacency, csr_tensor


def layer_mix(combine: str, layers: int) -> tuple[bool, bool, int]:
    """``(layer 0 counted, middle layers counted, divisor)``: the output is the sum of the counted
    layers and the last one, divided. The last layer always counts (with ``layers`` 0 it is layer 0)."""
    return {"mean": (True, True, layers + 1), "hops": (False, True, max(layers, 1)),
            "last": (layers == 0, False, 1)}[combine]


def spmm(matrix: torch.Tensor, x: torch.Tensor, kernel: str = "bag") -> torch.Tensor:
    """``matrix @ x`` for a CSR ``matrix`` and a dense ``x`` cast to the matrix's dtype, by ``kernel``."""
    x = x.to(matrix.dtype)
    if kernel == "sparse":
        return torch.sparse.mm(matrix, x)
    crow = matrix.crow_indices()
    return F.embedding_bag(matrix.col_indices(), x, crow[:-1], mode="sum", per_sample_weights=matrix.values())


def row_slice(matrix: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(S, Sᵀ)`` for ``S = matrix[rows, :]`` of a CPU ``matrix``, both CSR, built by scipy.

    scipy builds both in compiled loops: its row gather, and its CSR→CSC conversion, which
    is a counting sort. On a Gowalla batch (5.7k rows, 265k entries) that took 2.8–4.3 ms
    against 8.5–11 ms for the same arrays from torch ops, where a comparison sort
    dominates; a 64-d training step got about 9 ms faster.
    """
    # Views of our arrays, no copy; scipy keeps int32 indices while they fit.
    view = scipy.sparse.csr_array((matrix.values().numpy(), matrix.col_indices().numpy(),
                                   matrix.crow_indices().numpy()), shape=tuple(matrix.shape))
    sliced = view[rows.numpy()]
    by_column = sliced.tocsc()
    return (_from_scipy(sliced.indptr, sliced.indices, sliced.data, sliced.shape),
            _from_scipy(by_column.indptr, by_column.indices, by_column.data, sliced.shape[::-1]))


def _from_scipy(crow: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    return csr_tensor(torch.from_numpy(crow), torch.from_numpy(cols), torch.from_numpy(vals), shape)


class _Propagate(torch.autograd.Function):
    """Forward: the LightGCN output at ``rows`` and the layer-0 vectors there (for the L2
    penalty, so its gradient joins ours without a full-size zero tensor).

    Backward, in Horner form from the last layer: ``t = Sᵀ g`` (sliced) or ``Âᵀ`` of g
    scattered to its rows (whole), then per layer ``t[rows] += g; t = Âᵀ t``, finally
    ``t[rows] += g + g0`` (g scaled by 1/(K+1) under layer averaging and added only in the
    first step under ``last``; g0 the layer-0 rows' gradient).
    """

    @staticmethod
    def forward(ctx, ego: torch.Tensor, adj: Adjacency, rows: torch.Tensor, layers: int, combine: str):  # type: ignore[override]
        # Detached so embedding_bag takes its forward-only kernel: the gradient is ours, below.
        h = ego.detach()
        ego_rows = h.index_select(0, rows).float()
        with_ego, with_middle, divide = layer_mix(combine, layers)
        total = ego_rows.clone() if with_ego else torch.zeros_like(ego_rows)
        full = layers - 1 if adj.slice_rows else layers
        for k in range(1, full + 1):
            h = spmm(adj.matrix, h, adj.kernel)
            if with_middle or k == layers:
                total += h.index_select(0, rows)
        ctx.transposed = None
        if adj.slice_rows:
            sliced, ctx.transposed = row_slice(adj.matrix, rows)
            total += spmm(sliced, h, adj.kernel)
        ctx.adj, ctx.layers, ctx.combine, ctx.n_nodes = adj, layers, combine, ego.shape[0]
        ctx.save_for_backward(rows)
        return total.div_(divide), ego_rows

    @staticmethod
    def backward(ctx, grad: torch.Tensor, grad_ego: torch.Tensor):  # type: ignore[override]
        (rows,) = ctx.saved_tensors
        adj = ctx.adj
        with_ego, with_middle, divide = layer_mix(ctx.combine, ctx.layers)
        g = (grad.float() / divide).to(adj.dtype)
        if ctx.transposed is not None:
            t = spmm(ctx.transposed, g, adj.kernel)
        else:
            scattered = g.new_zeros(ctx.n_nodes, g.shape[1]).index_add_(0, rows, g)
            t = spmm(adj.transpose, scattered, adj.kernel)
        for _ in range(ctx.layers - 1):
            if with_middle:
                t.index_add_(0, rows, g)
            t = spmm(adj.transpose, t, adj.kernel)
        t = t.float()
        t.index_add_(0, rows, g.float() + grad_ego.float() if with_ego else grad_ego.float())
        return t, None, None, None, None


def propagate_rows(adj: Adjacency, ego: torch.Tensor, rows: torch.Tensor, layers: int,
                   combine: str) -> tuple[torch.Tensor, torch.Tensor]:
    """LightGCN output and layer-0 vectors at table rows ``rows`` (unique where ``adj.slice_rows``,
    else they may repeat), differentiable w.r.t. ``ego``."""
    if layers == 0:
        ego_rows = ego.index_select(0, rows)
        return ego_rows, ego_rows
    with torch.autocast(device_type=ego.device.type, enabled=False):
        return _Propagate.apply(ego, adj, rows, layers, combine)


@torch.no_grad()
def propagate_all(adj: Adjacency, ego: torch.Tensor, layers: int, combine: str) -> torch.Tensor:
    """LightGCN output for every node (fp32), for evaluation and export."""
    h = ego
    with_ego, with_middle, divide = layer_mix(combine, layers)
    total = h.float().clone() if with_ego else torch.zeros(h.shape, device=h.device)
    for k in range(1, layers + 1):
        h = spmm(adj.matrix, h, adj.kernel)
        if with_middle or k == layers:
            total += h
    return total.div_(divide)


class _Product(torch.autograd.Function):
    """``Â x`` whose backward is ``Âᵀ g``: PyTorch's own backward of a CSR product is slow on CPU."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, adj: Adjacency) -> torch.Tensor:  # type: ignore[override]
        ctx.adj = adj
        return spmm(adj.matrix, x.detach(), adj.kernel).float()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return spmm(ctx.adj.transpose, grad, ctx.adj.kernel).float(), None


def propagate_perturbed(adj: Adjacency, ego: torch.Tensor, layers: int, combine: str,
                        perturb: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """LightGCN output for every node with ``e^(k) = perturb(k, Â e^(k-1))`` at each layer k ≥ 1.

    Differentiable through every layer, for objective terms that need a second, perturbed
    view of the graph (SimGCL adds noise at each layer); with ``perturb`` returning its
    input it equals ``propagate_all``. Layers leave each product in fp32, the noise's precision.
    """
    with torch.autocast(device_type=ego.device.type, enabled=False):
        h = ego.float()
        with_ego, with_middle, divide = layer_mix(combine, layers)
        total = h if with_ego else None
        for k in range(1, layers + 1):
            h = perturb(k, _Product.apply(h, adj))
            if with_middle or k == layers:
                total = h if total is None else total + h
        assert total is not None  # layer 0 or the last layer always counts
        return total / divide if divide != 1 else total
