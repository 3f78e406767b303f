"""Pretrained item vectors (e.g. sentence embeddings of item titles) aligned to item index.

Users bring ``.sent_emb`` files from public code: raw little-endian float32 with no header,
so nothing in the file says its width or which row is which item. Every layout in use puts
item id ``i`` at row ``i + offset`` for one offset (``data.pretrained_rows``):

    id+1   row 0 padding, item id i at row i + 1   (0-based ids, padded: what ``embed`` writes)
    id     item id i at row i                      (1-based ids with a padding row 0, or
                                                    0-based ids without one)
    id-1   item id i at row i - 1                  (1-based ids, no padding row)

``auto`` tells them apart by the row count: with ids from 0 to ``M`` (0-based) the file has
``M + 2`` rows (``id+1``) or ``M + 1`` (``id``); with ids from 1 it has ``M + 1`` (``id``) or
``M`` (``id-1``). Any other count is refused rather than guessed at, because a silently
shifted alignment trains fine and is only noticed, if ever, as worse metrics; a file that
covers a larger catalogue than the data names its layout with ``data.pretrained_rows``.
The layout applied is said in a note, which the run shows when it starts.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .sidecar import read_sidecar, sidecar_path, sidecar_rows

COMMON_DIMS = (384, 512, 768, 1024, 1536, 64, 128, 256, 300, 2048, 3072, 4096)
ROW_LAYOUTS = {"id+1": 1, "id": 0, "id-1": -1}
LAYOUT_TEXT = {1: "row 0 padding, item id i at row i+1", 0: "item id i at row i", -1: "item id i at row i-1"}
_INTEGER = re.compile(r"[0-9]+")


def load_pretrained(
    path: Path, dim: int, item_ids: list[str], item_rows: np.ndarray | None = None, rows: str = "auto",
    notes: list[str] | None = None,
) -> np.ndarray:
    """Rows of ``path`` for each dataset item, as an ``(len(item_ids), d)`` float32 array.

    ``.npy`` files carry their own shape, so ``dim`` only applies to raw files. The file is
    memory-mapped: only the rows the dataset uses are read, which matters for catalogue-wide
    embedding files much larger than the dataset. ``item_rows`` gives each item's integer id
    when the raw ids are not integers themselves (an id map such as an Amazon 2023
    ``.data_maps`` ``item2id``). ``rows`` is ``data.pretrained_rows``: ``auto`` or a key of
    ``ROW_LAYOUTS``. When ``lgcn-tui embed`` left a sidecar (``X.sent_emb.json``), its width
    and the item of every row used are checked against ``dim`` and ``item_ids``, and it, not
    the row count, places the items. The line saying which layout was applied goes to ``notes``.
    """
    card = read_sidecar(path)
    is_npy = path.suffix.lower() == ".npy"
    if card is not None:
        via = "by data.id_map" if item_rows is not None else "by its integer id"
        ids = sidecar_rows(path, card, None if is_npy else dim, item_ids, item_rows, via)
        # ids are 1-based positions in the sidecar's list: row = position, or position - 1 unpadded
        layouts = {card.n_items + 1: (0, "row 0 padding, then the listed items"),
                   card.n_items: (-1, "the listed items, no padding row")}
        context = f"{sidecar_path(path).name} lists {card.n_items} items"
        remedy = "regenerate both with `lgcn-tui embed`"
    else:
        ids = _integer_ids(path, item_ids) if item_rows is None else np.asarray(item_rows, dtype=np.int64)
        low, high = (int(ids.min()), int(ids.max())) if ids.size else (1, 0)
        offsets = (1, 0) if low == 0 else (0, -1)
        layouts = {high + 1 + k: (k, LAYOUT_TEXT[k]) for k in offsets} if rows == "auto" else {}
        context = f"the data's item ids run {low}..{high} ({'0' if low == 0 else '1'}-based)"
        remedy = (f"if the file covers more items than the data, set data.pretrained_rows to "
                  f"{', '.join(ROW_LAYOUTS)}")
    matrix = _open_npy(path) if is_npy else _open_raw(path, dim, layouts, context, remedy)
    n_rows = matrix.shape[0]
    if layouts and n_rows not in layouts:
        raise UserError(f"{path}: {n_rows} rows of {matrix.shape[1]} floats, but {context}, so expected "
                        f"{_expected(layouts)}; {remedy}")
    if card is not None:
        offset, text = layouts[n_rows]
        index = ids + offset
        if rows != "auto":
            _agrees(path, rows, index, item_ids, item_rows)
        how = f"{text} (placed by its sidecar)"
    elif rows == "auto":
        offset, text = layouts[n_rows]
        index = ids + offset
        how = f"{text} (told by the row count: {context})"
    else:
        offset = ROW_LAYOUTS[rows]
        index = ids + offset
        if low + offset < 0 or high + offset >= n_rows:
            raise UserError(f"{path}: data.pretrained_rows = {rows!r} ({LAYOUT_TEXT[offset]}) puts the data's "
                            f"item ids {low}..{high} at rows {low + offset}..{high + offset}, but the file has "
                            f"rows 0..{n_rows - 1}; choose another of {', '.join(ROW_LAYOUTS)}, or auto")
        how = f"{LAYOUT_TEXT[offset]} (data.pretrained_rows = {rows!r})"
    if notes is not None:
        notes.append(f"{path}: {n_rows} rows of {matrix.shape[1]} floats, read as {how}")
    vectors = np.ascontiguousarray(matrix[index], dtype=np.float32)
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        shown = ", ".join(item_ids[k] for k in np.flatnonzero(bad)[:5].tolist())
        raise UserError(f"{path}: {int(bad.sum())} row(s) used by the data contain NaN or inf "
                        f"(item ids {shown}{', ...' if bad.sum() > 5 else ''}); regenerate or "
                        "repair those vectors")
    return vectors


def _expected(layouts: dict[int, tuple[int, str]]) -> str:
    """``6 rows (row 0 padding, ...) or 5 rows (...)``: the row counts a file may have, and what each means."""
    return " or ".join(f"{n} rows ({text})" for n, (_, text) in layouts.items())


def _agrees(path: Path, rows: str, index: np.ndarray, item_ids: list[str], item_rows: np.ndarray | None) -> None:
    """An explicit ``data.pretrained_rows`` must place every item where the sidecar does."""
    target = sidecar_path(path).name
    if item_rows is None and not all(_INTEGER.fullmatch(v) for v in item_ids):
        raise UserError(f"data.pretrained_rows = {rows!r} places integer item ids, but this data's ids are not "
                        f"integers and {target} places them; set data.pretrained_rows = 'auto'")
    ids = _integer_ids(path, item_ids) if item_rows is None else np.asarray(item_rows, dtype=np.int64)
    wrong = np.flatnonzero(ids + ROW_LAYOUTS[rows] != index)
    if wrong.size:
        k = int(wrong[0])
        raise UserError(f"data.pretrained_rows = {rows!r} puts item {item_ids[k]!r} at row "
                        f"{ids[k] + ROW_LAYOUTS[rows]}, but {target} lists it at row {index[k]}; set "
                        "data.pretrained_rows = 'auto' to follow the sidecar")


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
    """Item ids as integers; anything but non-negative integers cannot be matched to a row."""
    for value in item_ids:
        if not _INTEGER.fullmatch(value):
            raise UserError(f"{path}: item id {value!r} cannot be matched to a row; pretrained "
                            "vectors without a sidecar need non-negative integer item ids (row = id "
                            "+ offset, see data.pretrained_rows), an id map (data.id_map, e.g. an "
                            "Amazon 2023 .data_maps) or a sidecar from `lgcn-tui embed`")
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


def _open_raw(path: Path, dim: int, layouts: dict[int, tuple[int, str]], context: str, remedy: str) -> np.ndarray:
    """Memory-map a headerless float32 file after checking its size is whole rows of ``dim``
    and, when ``layouts`` (row count -> layout) is given, one of their row counts."""
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise UserError(f"data.pretrained file {path} {what}; expected a .sent_emb (raw float32) "
                        "or .npy file")
    if dim <= 0:
        raise UserError(f"data.pretrained_dim = {dim} must be > 0 (the floats per row of {path})")
    size = path.stat().st_size
    row_bytes = 4 * dim
    rows = size // row_bytes
    if size % row_bytes or (layouts and rows not in layouts):
        counted = f"{rows}" if size % row_bytes == 0 else f"{size / row_bytes:.2f}"
        wanted = f"{context}, so expected {_expected(layouts)}" if layouts else "a file of whole rows"
        raise UserError(f"{path}: {size} bytes = {counted} rows of {dim} float32s, but {wanted}"
                        f"{_dim_hint(size, tuple(layouts), dim) or '; ' + remedy}")
    try:
        return np.memmap(path, dtype="<f4", mode="r", shape=(rows, dim))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc


def _dim_hint(size: int, expected: tuple[int, ...], dim: int) -> str:
    """Name a common width that makes the file fit a layout: a wrong dim is the usual cause."""
    for d in COMMON_DIMS:
        if d != dim and any(size == 4 * d * n for n in expected):
            return f"; it looks like a {d}-dim file; set data.pretrained_dim={d}"
    return ""
