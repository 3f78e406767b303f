"""LightGCN propagation with hand-written backward passes for the sparse products.

PyTorch's own backward for a CSR ``sparse.mm`` is very slow on CPU; propagation is linear,
so the gradient of ``Â x`` is ``Âᵀ g`` — one more sparse product. With layer averaging
the last layer is only needed at the batch's rows, so a K-layer training step costs
K-1 full products forward and K-1 backward, plus products over the batch's rows only.

    e^(k+1) = Â e^(k),   out = mean(e^(0), ..., e^(K))   (or out = e^(K))
"""

from __future__ import annotations

import torch

from .adjacency import Adjacency, csr_tensor


class _Spmm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, matrix: torch.Tensor, transpose: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.transpose = transpose
        return torch.sparse.mm(matrix, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return None, None, torch.sparse.mm(ctx.transpose, grad.contiguous())


def spmm(matrix: torch.Tensor, transpose: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``matrix @ x`` in fp32 (CSR products have no bf16 kernels on CPU), backward ``transpose @ g``."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _Spmm.apply(matrix, transpose, x.float())


def _csr(crow_counts: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    crow = torch.zeros(shape[0] + 1, dtype=torch.int64, device=cols.device)
    torch.cumsum(crow_counts, 0, out=crow[1:])
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


def propagate_rows(adj: Adjacency, ego: torch.Tensor, rows: torch.Tensor, layers: int, combine: str) -> torch.Tensor:
    """LightGCN output at node indices ``rows`` (unique), differentiable w.r.t. ``ego``."""
    if layers == 0:
        return ego[rows]
    collected = [ego[rows]]
    h = ego
    for _ in range(layers - 1):
        h = spmm(adj.matrix, adj.transpose, h)
        collected.append(h[rows])
    sliced, transposed = row_slice(adj.matrix, rows)
    collected.append(spmm(sliced, transposed, h))
    if combine == "last":
        return collected[-1]
    return torch.stack(collected).mean(0)


@torch.no_grad()
def propagate_all(adj: Adjacency, ego: torch.Tensor, layers: int, combine: str) -> torch.Tensor:
    """LightGCN output for every node, for evaluation and export."""
    h = ego.float()
    total = h.clone()
    for _ in range(layers):
        h = torch.sparse.mm(adj.matrix, h)
        total += h
    if combine == "last":
        return h
    return total / (layers + 1)
