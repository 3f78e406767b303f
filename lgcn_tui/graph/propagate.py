"""LightGCN propagation with one hand-written backward pass for all layers.

    e^(k+1) = Â e^(k),   out = mean(e^(0), ..., e^(K))   (or out = e^(K))

Propagation is linear, so the gradient of the batch's outputs is a sum of ``Âᵀ`` products
applied to the upstream gradient — no activations need saving. With layer averaging the
last layer is only needed at the batch's rows, so a K-layer step costs K-1 full products
forward and K-1 backward, plus products over the batch's rows only.

Products run as ``F.embedding_bag`` (a weighted sum of rows per CSR row) over the CSR
arrays of Â: the same arithmetic as ``torch.sparse.mm``, measured about 3× faster on CPU
because it skips the zero-filled output and index conversions of the sparse path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .adjacency import Adjacency, csr_tensor


def spmm(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``matrix @ x`` for a CSR ``matrix`` and a dense ``x``, in fp32 (CPU has no bf16 sparse kernels)."""
    crow = matrix.crow_indices()
    return F.embedding_bag(matrix.col_indices(), x.float(), crow[:-1], mode="sum",
                           per_sample_weights=matrix.values())


def _csr(counts: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    crow = torch.zeros(shape[0] + 1, dtype=torch.int64, device=cols.device)
    torch.cumsum(counts, 0, out=crow[1:])
    return csr_tensor(crow.to(torch.int32), cols.to(torch.int32), vals, shape)


def row_slice(matrix: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(S, Sᵀ)`` for ``S = matrix[rows, :]``, both CSR, built in time proportional to their nnz."""
    crow = matrix.crow_indices().long()
    starts = crow[rows]
    lengths = crow[rows + 1] - starts
    total = int(lengths.sum())
    offsets = torch.cumsum(lengths, 0) - lengths
    index = torch.repeat_interleave(starts - offsets, lengths) + torch.arange(total, device=rows.device)
    cols = matrix.col_indices().long()[index]
    vals = matrix.values()[index]
    n_rows, n_cols = len(rows), matrix.shape[1]
    sliced = _csr(lengths, cols, vals, (n_rows, n_cols))
    row_of = torch.repeat_interleave(torch.arange(n_rows, device=rows.device), lengths)
    order = torch.argsort(cols, stable=True)
    counts = torch.bincount(cols, minlength=n_cols)
    transposed = _csr(counts, row_of[order], vals[order], (n_cols, n_rows))
    return sliced, transposed


class _Propagate(torch.autograd.Function):
    """Forward: the LightGCN output at ``rows``. Backward, in Horner form from the last layer:
    ``t = Sᵀ g``, then per layer ``t[rows] += g; t = Âᵀ t``, finally ``t[rows] += g`` (g scaled
    by 1/(K+1) under layer averaging; only the first step under ``last``).
    """

    @staticmethod
    def forward(ctx, ego: torch.Tensor, adj: Adjacency, rows: torch.Tensor, layers: int, combine: str) -> torch.Tensor:  # type: ignore[override]
        sliced, transposed = row_slice(adj.matrix, rows)
        # Detached so embedding_bag takes its forward-only kernel: the gradient is ours, below.
        h = ego.detach().float()
        total = h[rows].clone() if combine == "mean" else None
        for _ in range(layers - 1):
            h = spmm(adj.matrix, h)
            if total is not None:
                total += h[rows]
        last = spmm(sliced, h)
        ctx.adj, ctx.transposed, ctx.layers, ctx.combine = adj, transposed, layers, combine
        ctx.save_for_backward(rows)
        if total is None:
            return last
        return (total + last) / (layers + 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (rows,) = ctx.saved_tensors
        mean = ctx.combine == "mean"
        g = grad.float() / (ctx.layers + 1) if mean else grad.float()
        t = spmm(ctx.transposed, g)
        for _ in range(ctx.layers - 1):
            if mean:
                t[rows] += g
            t = spmm(ctx.adj.transpose, t)
        if mean:
            t[rows] += g
        return t, None, None, None, None


def propagate_rows(adj: Adjacency, ego: torch.Tensor, rows: torch.Tensor, layers: int, combine: str) -> torch.Tensor:
    """LightGCN output at node indices ``rows`` (unique), differentiable w.r.t. ``ego``."""
    if layers == 0:
        return ego[rows]
    with torch.autocast(device_type=ego.device.type, enabled=False):
        return _Propagate.apply(ego, adj, rows, layers, combine)


@torch.no_grad()
def propagate_all(adj: Adjacency, ego: torch.Tensor, layers: int, combine: str) -> torch.Tensor:
    """LightGCN output for every node, for evaluation and export."""
    h = ego.float()
    total = h.clone()
    for _ in range(layers):
        h = spmm(adj.matrix, h)
        total += h
    if combine == "last":
        return h
    return total / (layers + 1)
