"""The normalised user–item adjacency, built once per run as int32 CSR matrices.

Nodes are users ``0..U-1`` followed by items ``U..U+I-1``. ``symmetric`` gives
D^-1/2 A D^-1/2 (its own transpose); ``mean`` gives the row-mean D^-1 A, whose transpose
is stored beside it because the backward pass needs it.

The matrices are indexed in the locality order of ``graph.layout`` (``position[v]`` is
node v's row and column), the order the model keeps its node table in: with P that
permutation, ``matrix`` = PÂPᵀ and ``transpose`` its transpose (the same object when Â is
symmetric). ``graph.reorder = false`` keeps node order (``position`` is then None).

``kernel`` and ``slice_rows`` say how ``graph.propagate`` multiplies by it (the product
kernel of ``graph.kernel``; whether a step slices Â's rows on the host or gathers them from
full products, decided by the device), and the values' dtype is the products' precision.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .layout import locality_positions


@dataclass
class Adjacency:
    matrix: torch.Tensor
    transpose: torch.Tensor
    position: torch.Tensor | None  # node -> row and column; None: node order itself
    n_users: int
    n_items: int
    kernel: str = "bag"
    slice_rows: bool = True

    @property
    def dtype(self) -> torch.dtype:
        return self.matrix.dtype

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_items

    @property
    def nnz(self) -> int:
        return int(self.matrix.values().numel())

    def __post_init__(self) -> None:
        """The nodes without an edge, found once here: finding them sizes a tensor by the data,
        which on an accelerator waits for the device, so no training step may do it."""
        crow = self.matrix.crow_indices()
        linked = crow[1:] != crow[:-1]
        # Rows (this order) of the nodes without an edge: items without a training
        # interaction (cold items), which propagation never reaches.
        self.edgeless_rows = torch.nonzero(~linked).squeeze(1)
        if self.position is not None:
            linked = linked.index_select(0, self.position)
        # Items (0-based, item order) with at least one edge: the only ones a loss may
        # sample, so a cold item is never pushed away from users it was never shown to.
        self.linked_items = torch.nonzero(linked[self.n_users:]).squeeze(1)

    def to(self, device: torch.device, dtype: torch.dtype = torch.float32) -> "Adjacency":
        """On ``device`` with values in ``dtype``; rows are sliced on the host only when the device is the host."""
        matrix = _moved(self.matrix, device, dtype)
        transpose = matrix if self.transpose is self.matrix else _moved(self.transpose, device, dtype)
        position = None if self.position is None else self.position.to(device)
        return Adjacency(matrix, transpose, position, self.n_users, self.n_items, self.kernel,
                         slice_rows=device.type == "cpu")


def _moved(matrix: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if matrix.dtype == dtype:
        return matrix.to(device)
    return csr_tensor(matrix.crow_indices().to(device), matrix.col_indices().to(device),
                      matrix.values().to(device, dtype), tuple(matrix.shape))


def _csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int) -> torch.Tensor:
    # One stable sort of a combined int64 key: about 2.5× faster than lexsort on Gowalla.
    order = np.argsort(rows * n + cols, kind="stable")
    crow = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=crow[1:])
    return csr_tensor(
        torch.from_numpy(crow),
        torch.from_numpy(cols[order].astype(np.int32)),
        torch.from_numpy(vals[order].astype(np.float32)),
        (n, n),
    )


def csr_tensor(crow: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A CSR tensor, without PyTorch's "beta" warning on every run (the indices are ours and valid)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols, vals, size=shape, check_invariants=False)


def build_adjacency(train: np.ndarray, n_users: int, n_items: int, norm: str, reorder: bool = True) -> Adjacency:
    """Build Â from ``(user, item)`` training pairs (already de-duplicated).

    ``reorder=False`` keeps node order (``graph.reorder``).
    """
    n = n_users + n_items
    users = train[:, 0].astype(np.int64)
    items = train[:, 1].astype(np.int64) + n_users
    rows = np.concatenate([users, items])
    cols = np.concatenate([items, users])
    deg = np.bincount(rows, minlength=n).astype(np.float64)
    with np.errstate(divide="ignore"):
        if norm == "symmetric":
            inv_sqrt = np.where(deg > 0, deg**-0.5, 0.0)
            vals = inv_sqrt[rows] * inv_sqrt[cols]
        else:
            vals = np.where(deg[rows] > 0, 1.0 / deg[rows], 0.0)
    position = locality_positions(train, n_users, n_items) if reorder else None
    if position is not None:
        rows, cols = position[rows], position[cols]
    matrix = _csr(rows, cols, vals, n)
    transpose = matrix if norm == "symmetric" else _csr(cols, rows, vals, n)
    return Adjacency(matrix, transpose, None if position is None else torch.from_numpy(position), n_users, n_items)
