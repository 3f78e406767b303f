"""Pretrained item vectors (e.g. sentence embeddings of item titles) aligned to item index.

Users bring ``.sent_emb`` files from public code: raw little-endian float32 with no header,
so nothing in the file says its width or which row is which item. Two layouts are in use,
told apart only by the row count: ``M + 1`` rows with row 0 a padding row and row ``i`` =
item id ``i``, or ``M`` rows with row ``r`` = item id ``r + 1`` (``M`` = the largest item
id). A file that fits neither is refused rather than guessed at, because a silently
shifted alignment trains fine and is only noticed, if ever, as worse metrics.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .sidecar import read_sidecar, sidecar_rows

COMMON_DIMS = (384, 512, 768, 1024, 1536, 64, 128, 256, 300, 2048, 3072, 4096)
_INTEGER = re.compile(r"-?[0-9]+")


def load_pretrained(
    path: Path, dim: int, item_ids: list[str], item_rows: np.ndarray | None = None
) -> np.ndarray:
    """Rows of ``path`` for each dataset item, as an ``(len(item_ids), d)`` float32 array.

    ``.npy`` files carry their own shape, so ``dim`` only applies to raw files. The file is
    memory-mapped: only the rows the dataset uses are read, which matters for catalogue-wide
    embedding files much larger than the dataset. ``item_rows`` gives each item's row id when the
    raw ids are not row ids themselves (an id map such as an Amazon 2023 ``.data_maps``
    ``item2id``). When ``lgcn-tui embed`` left a sidecar (``X.sent_emb.json``), its width and
    the item of every row used are checked against ``dim`` and ``item_ids``, and its item
    count, not the dataset's largest id, fixes the row layout.
    """
    card = read_sidecar(path)
    is_npy = path.suffix.lower() == ".npy"
    if card is not None:
        via = "by data.id_map" if item_rows is not None else "by its integer id"
        ids = sidecar_rows(path, card, None if is_npy else dim, item_ids, item_rows, via)
        largest = card.n_items
    else:
        ids = _integer_ids(path, item_ids) if item_rows is None else np.asarray(item_rows, dtype=np.int64)
        largest = int(ids.max()) if ids.size else 0
    matrix = _open_npy(path) if is_npy else _open_raw(path, dim, largest)
    rows = matrix.shape[0]
    if rows == largest + 1:
        index = ids
    elif rows == largest:
        index = ids - 1
    else:
        raise UserError(f"{path}: {rows} rows of {matrix.shape[1]} floats, but the data's largest "
                        f"item id is {largest}, so expected {largest + 1} rows (row 0 padding, "
                        f"row i = item id i) or {largest} rows (row r = item id r+1)")
    vectors = np.ascontiguousarray(matrix[index], dtype=np.float32)
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        shown = ", ".join(item_ids[k] for k in np.flatnonzero(bad)[:5].tolist())
        raise UserError(f"{path}: {int(bad.sum())} row(s) used by the data contain NaN or inf "
                        f"(item ids {shown}{', ...' if bad.sum() > 5 else ''}); regenerate or "
                        "repair those vectors")
    return vectors


def prepare_pretrained(vectors: np.ndarray, normalize: bool, pca_dim: int) -> np.ndarray:
    """Optionally project to ``pca_dim`` principal components, then L2-normalise rows.

    PCA runs first so normalised rows really have unit length in the space the model sees;
    a zero row stays zero instead of becoming NaN. ``pca_dim`` of 0 or at least the current
    width leaves the vectors unprojected.
    """
    x = np.asarray(vectors, dtype=np.float32)
    if 0 < pca_dim < x.shape[1]:
        x = _pca(x, pca_dim)
    if normalize:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def _pca(x: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` principal components from the d×d covariance: exact, and cheap for n >> d.

    The eigendecomposition runs on one thread: it takes a fraction of a second that way,
    while multi-threaded LAPACK spin-waits and can take a minute on a busy 2-core machine.
    Each component's sign is fixed (largest loading positive) so reruns give equal vectors.
    """
    centred = torch.from_numpy(x - x.mean(axis=0, dtype=np.float64).astype(np.float32))
    cov = (centred.T @ centred).double()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, vecs = torch.linalg.eigh(cov)
    finally:
        torch.set_num_threads(threads)
    top = vecs.flip(1)[:, :k]
    top = top * torch.sign(top.gather(0, top.abs().argmax(dim=0, keepdim=True)))
    return (centred @ top.float()).numpy()


def _integer_ids(path: Path, item_ids: list[str]) -> np.ndarray:
    """Item ids as row numbers; anything but integers 1..M cannot be matched to a row."""
    for value in item_ids:
        if not _INTEGER.fullmatch(value) or int(value) < 1:
            raise UserError(f"{path}: item id {value!r} cannot be matched to a row; pretrained "
                            "vectors need integer item ids 1..M (M = the largest item id), "
                            "as in the file's row layout, an id map (data.id_map, e.g. an Amazon "
                            "2023 .data_maps) or a sidecar from `lgcn-tui embed`")
    return np.array([int(v) for v in item_ids], dtype=np.int64)


def _open_npy(path: Path) -> np.ndarray:
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError as exc:
        raise UserError(f"data.pretrained file {path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} as a .npy array: {exc}") from exc
    if matrix.ndim != 2 or matrix.dtype.kind not in "fiu":
        raise UserError(f"{path}: a {matrix.dtype} array of shape {matrix.shape}; expected a "
                        "2-D numeric (rows, dim) array")
    return matrix


def _open_raw(path: Path, dim: int, largest: int) -> np.ndarray:
    """Memory-map a headerless float32 file after checking its size fits a row layout."""
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise UserError(f"data.pretrained file {path} {what}; expected a .sent_emb (raw float32) "
                        "or .npy file")
    if dim <= 0:
        raise UserError(f"data.pretrained_dim = {dim} must be > 0 (the floats per row of {path})")
    size = path.stat().st_size
    row_bytes = 4 * dim
    rows = size // row_bytes
    if size % row_bytes or rows not in (largest, largest + 1):
        counted = f"{rows}" if size % row_bytes == 0 else f"{size / row_bytes:.2f}"
        raise UserError(f"{path}: {size} bytes = {counted} rows of {dim} float32s, but the data's "
                        f"largest item id is {largest}, so expected {largest + 1} rows (row 0 "
                        f"padding, row i = item id i) or {largest} rows (row r = item id r+1)"
                        f"{_dim_hint(size, largest, dim)}")
    try:
        return np.memmap(path, dtype="<f4", mode="r", shape=(rows, dim))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc


def _dim_hint(size: int, largest: int, dim: int) -> str:
    """Name a common width that makes the file fit a layout: a wrong dim is the usual cause."""
    for d in COMMON_DIMS:
        if d != dim and size in (4 * d * largest, 4 * d * (largest + 1)):
            return f"; it looks like a {d}-dim file; set data.pretrained_dim={d}"
    return ""
