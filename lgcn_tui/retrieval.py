"""Using a trained run: a Faiss index over its item vectors, and the top items for one user.

A LightGCN score is the inner product of the final (propagated) user and item vectors —
what training and evaluation rank by — so an exact inner-product index reproduces the
evaluation's ranking, and an approximate one (IVF, HNSW) can be measured against it.

An index knows nothing of what a user has already seen, while evaluation masks those
items (training items; for the test split validation items too). Retrieving K + c
neighbours, where c is at least the number of items user u has seen, and then dropping
the seen ones gives exactly the masked top K whenever the index itself is exact. Users
are searched in groups by c rounded up to a power of two, so a few heavy users do not
make every query fetch hundreds of neighbours. The exact ranking an index is measured
against, and ``recommend``'s, is evaluation's own ``train.ranking.Ranker``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from .config import Config, expand_path
from .data.dataset import Dataset
from .data.sidecar import read_sidecar
from .embed.text import MissingField, read_item_texts
from .errors import UserError
from .train.ranking import KnownItems, embedding_ranker, known_items, list_recall
from .train.sampler import contains, sorted_keys

INDEX_KINDS = ("flat", "ivf", "hnsw")
FAISS_HINT = "pip install 'lgcn-tui[faiss]'"
FLAT_UP_TO = 100_000
HNSW_UP_TO = 2_000_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH_MIN = 64
TITLE_FIELDS = ("title", "movie_title", "name")


# ----- Faiss ------------------------------------------------------------------------------
def require_faiss() -> ModuleType:
    """faiss is an optional extra: import it only when asked for, and say how to get it."""
    try:
        import faiss
    except ImportError as exc:
        raise UserError(f"--faiss needs the faiss library, which is not installed; {FAISS_HINT}") from exc
    return faiss


def choose_index(kind: str | None, n_items: int) -> str:
    """The index to build: the one asked for, or by catalogue size.

    Exact search over up to 100k items costs a few milliseconds per query batch, so the
    flat index is the default there; HNSW up to 2M items (fast queries, no training);
    IVF beyond, where HNSW's graph takes long to build.
    """
    if kind is not None:
        if kind not in INDEX_KINDS:
            raise UserError(f"--index {kind!r} is not valid; choose one of: {', '.join(INDEX_KINDS)}")
        return kind
    return "flat" if n_items <= FLAT_UP_TO else "hnsw" if n_items <= HNSW_UP_TO else "ivf"


def build_index(faiss: ModuleType, items: np.ndarray, kind: str) -> tuple[Any, dict[str, int]]:
    """An inner-product index of ``kind`` over ``items`` and the parameters it was built with.

    IVF: 4·√n lists (at most n/39, faiss's minimum training points per list), an eighth of
    them probed. HNSW: M = 32 links, efConstruction 80; efSearch is set per query size.
    """
    n, dim = items.shape
    if kind == "flat":
        index, params = faiss.IndexFlatIP(dim), {}
    elif kind == "ivf":
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(items)
        index.nprobe = max(1, math.ceil(nlist / 8))
        params = {"nlist": nlist, "nprobe": index.nprobe}
    else:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        params = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch_min": HNSW_EF_SEARCH_MIN}
    index.add(items)
    return index, params


def _search(index: Any, kind: str, queries: np.ndarray, k: int) -> np.ndarray:
    if kind == "hnsw":
        index.hnsw.efSearch = max(HNSW_EF_SEARCH_MIN, k)  # HNSW returns at most efSearch results
    return index.search(queries, k)[1]


# ----- masked top-k -----------------------------------------------------------------------
def masked_search(search: Any, users_emb: np.ndarray, users: np.ndarray, known: np.ndarray, n_items: int,
                  k: int) -> np.ndarray:
    """Top-k of an index for each user with its ``known`` items dropped (see the module docstring).

    ``search(queries, n)`` returns an ``(len(queries), n)`` array of item ids, -1 where the
    index found fewer. Rows are padded with -1 where fewer than k unknown items came back.
    """
    seen = np.bincount(known[:, 0], minlength=len(users_emb))[users]
    extra = np.where(seen > 0, 2 ** np.ceil(np.log2(np.maximum(seen, 1))).astype(np.int64), 0)
    keys = sorted_keys(known, n_items)
    out = np.full((len(users), k), -1, dtype=np.int64)
    for e in np.unique(extra):
        sel = np.nonzero(extra == e)[0]
        found = search(np.ascontiguousarray(users_emb[users[sel]]), int(min(k + e, n_items)))
        query = torch.from_numpy(users[sel, None] * n_items + np.maximum(found, 0))
        keep = (found >= 0) & ~contains(keys, query).numpy()
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        picked = np.take_along_axis(found, order, 1)
        picked[~np.take_along_axis(keep, order, 1)] = -1
        out[sel, : picked.shape[1]] = picked
    return out


def overlap(found: np.ndarray, exact: np.ndarray, n_items: int) -> float:
    """Mean share of each user's exact top-k that the index also returned (the usual ANN recall)."""
    rows = np.arange(len(exact))[:, None]
    valid = exact >= 0
    keys = torch.sort(torch.from_numpy((rows * n_items + exact)[valid])).values
    hits = contains(keys, torch.from_numpy(rows * n_items + found)).numpy() & (found >= 0)
    return float(np.mean(hits.sum(1) / np.maximum(valid.sum(1), 1)))


# ----- export --faiss ---------------------------------------------------------------------
@dataclass
class IndexReport:
    kind: str
    params: dict[str, int]
    file: str
    split: str
    k: int
    users: int
    exact_recall: float
    ann_recall: float
    overlap: float
    build_seconds: float
    search_seconds: float
    exact_seconds: float


def export_index(users_emb: torch.Tensor, items_emb: torch.Tensor, dataset: Dataset, kind: str, out: Path,
                 chunk: int, k: int = 20) -> IndexReport:
    """Build and save the index, then measure its masked Recall@k against exact full ranking.

    The measurement runs on the test split (validation if there is no test split) with the
    same masking as ``lgcn-tui eval``, so ``exact_recall`` equals evaluation's Recall@k.
    """
    faiss = require_faiss()
    split = "test" if len(dataset.test) else "valid"
    held_out = getattr(dataset, split)
    if not len(held_out):
        raise UserError(f"dataset {dataset.name!r} has neither test nor valid interactions to measure the index on")
    users_np = np.ascontiguousarray(users_emb.cpu().numpy(), dtype=np.float32)
    items_np = np.ascontiguousarray(items_emb.cpu().numpy(), dtype=np.float32)
    started = time.perf_counter()
    index, params = build_index(faiss, items_np, kind)
    built = time.perf_counter() - started
    file = out / f"items-{kind}.faiss"
    faiss.write_index(index, str(file))
    users = np.unique(held_out[:, 0])
    known = known_items(dataset, split)
    started = time.perf_counter()
    found = masked_search(lambda q, n: _search(index, kind, q, n), users_np, users, known, dataset.n_items, k)
    searched = time.perf_counter() - started
    started = time.perf_counter()
    exact = embedding_ranker(users_emb.cpu().float(), items_emb.cpu().float(),
                             KnownItems.of(known, dataset.n_users, torch.device("cpu")), chunk).topk(users, k)
    exact_s = time.perf_counter() - started
    report = IndexReport(kind=kind, params=params, file=str(file), split=split, k=k, users=len(users),
                         exact_recall=list_recall(exact, users, held_out, dataset.n_items),
                         ann_recall=list_recall(found, users, held_out, dataset.n_items),
                         overlap=overlap(found, exact, dataset.n_items), build_seconds=built,
                         search_seconds=searched, exact_seconds=exact_s)
    file.with_suffix(".json").write_text(json.dumps(
        {**asdict(report), "metric": "inner product", "vectors": "item_emb.npy (final item vectors)",
         "ids": "row r of the index is item_ids.json[r]"}, indent=1))
    return report


def print_index_report(report: IndexReport, console: Console) -> None:
    k = report.k
    table = Table("", "exact (full ranking)", f"index ({report.kind})",
                  title=f"{report.split} split, {report.users} users, seen items masked")
    table.add_row(f"Recall@{k}", f"{report.exact_recall:.4f}", f"{report.ann_recall:.4f}")
    table.add_row(f"share of exact top-{k} found", "1", f"{report.overlap:.4f}")
    table.add_row("search s (all users)", f"{report.exact_seconds:.2f}", f"{report.search_seconds:.2f}")
    table.add_row("build s", "—", f"{report.build_seconds:.2f}")
    console.print(table)
    params = ", ".join(f"{k}={v}" for k, v in report.params.items())
    console.print(f"index: {report.file}{f' ({params})' if params else ''}; details in "
                  f"{Path(report.file).with_suffix('.json')}")


# ----- recommend --------------------------------------------------------------------------
@dataclass
class Recommendation:
    item_id: str
    score: float
    held_out: str


def user_index(dataset: Dataset, user_id: str, source: str) -> int:
    """The row of a raw user id; an unknown id is refused with examples and where to find all of them."""
    try:
        return dataset.user_ids.index(user_id)
    except ValueError:
        examples = ", ".join(dataset.user_ids[:5])
        raise UserError(f"--user {user_id!r} is not a user of this run ({source}: {dataset.n_users} users with "
                        f"training items, e.g. {examples}); ids are the raw user ids of the data, and "
                        "`lgcn-tui export RUN_DIR` writes all of them to RUN_DIR/export/user_ids.json") from None


def recommend(users_emb: torch.Tensor, items_emb: torch.Tensor, dataset: Dataset, user: int,
              k: int) -> list[Recommendation]:
    """The user's top-k items by score with its training items excluded, best first.

    Items the user holds in the validation or test split are marked, so a run can be
    eyeballed on its own held-out data.
    """
    known = KnownItems.of(dataset.train, dataset.n_users, torch.device("cpu"))
    top = embedding_ranker(users_emb.cpu().float(), items_emb.cpu().float(), known, chunk=1).topk(np.array([user]), k)[0]
    top = top[top >= 0]
    scores = (items_emb.cpu().float()[torch.from_numpy(top)] @ users_emb.cpu().float()[user]).tolist()
    held: dict[int, str] = {}
    for split in ("valid", "test"):
        pairs = getattr(dataset, split)
        held.update((int(i), split) for i in pairs[pairs[:, 0] == user, 1])
    return [Recommendation(dataset.item_ids[i], score, held.get(i, "")) for i, score in zip(top.tolist(), scores)]


def find_item_file(cfg: Config) -> Path | None:
    """The item file of a run's data, when one can be found without asking.

    First the file its pretrained vectors were embedded from (the ``source`` that
    ``lgcn-tui embed`` records in the ``.sent_emb.json`` sidecar), then the item file beside
    the data: ``STEM.item`` next to a data file, or the only ``*.item`` in its folder.
    """
    if cfg.data.pretrained:
        card = read_sidecar(Path(expand_path(cfg.data.pretrained, "data.pretrained")))
        if card is not None and card.source and Path(card.source).is_file():
            return Path(card.source)
    if cfg.data.format == "synthetic" or not cfg.data.path:
        return None
    path = Path(expand_path(cfg.data.path, "data.path"))
    if path.is_file() and path.with_suffix(".item").is_file():
        return path.with_suffix(".item")
    folder = path if path.is_dir() else path.parent
    found = sorted(folder.glob("*.item")) if folder.is_dir() else []
    return found[0] if len(found) == 1 else None


def read_titles(path: Path) -> dict[str, str]:
    """Raw item id → title from an item file, read as ``lgcn-tui embed`` reads it (RecBole
    ``.item``, CSV/TSV with a header, JSON lines, each optionally gzipped); the title is the
    first of the fields title, movie_title, name that the file has."""
    missing: list[str] = []
    for field in TITLE_FIELDS:
        try:
            items = read_item_texts(path, [field])
        except MissingField as exc:
            missing.append(str(exc))
            continue
        return dict(zip(items.ids, items.texts))
    raise UserError(f"{path}: no title field ({', '.join(TITLE_FIELDS)}); {missing[0]}")


def print_recommendations(recs: list[Recommendation], user_id: str, excluded: int, titles: dict[str, str],
                          title_file: Path | None, checkpoint: Path, console: Console) -> None:
    table = Table("#", "item", "score", *(["title"] if titles else []), "held out",
                  title=f"top {len(recs)} for user {user_id} ({excluded} training items excluded)")
    for rank, r in enumerate(recs, start=1):
        table.add_row(str(rank), r.item_id, f"{r.score:.4f}", *([titles.get(r.item_id, "")] if titles else []),
                      r.held_out)
    console.print(table)
    console.print(f"scores from {checkpoint}" + (f"; titles from {title_file}" if title_file else ""))
    if title_file is not None and not any(r.item_id in titles for r in recs):
        sample = ", ".join(list(titles)[:3])
        console.print(f"[yellow]none of these item ids appear in {title_file} (its ids look like {sample}); "
                      "pass the matching file with --items[/]")
