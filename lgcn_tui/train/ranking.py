"""Full ranking: every item scored for each user, the user's known items masked, top K taken.

Training-time evaluation, ``lgcn-tui eval``, the popularity and text baselines and the exact search
of ``export --faiss`` and ``recommend`` must rank identically, or an index measured
against "exact" ranking, or a baseline, would be measured against something else than
what evaluation reports. So they all rank through one ``Ranker``, and every "is this
(user, item) held out" test goes through ``held_out_hits``.

The items masked are those the user is known to have: training items, and for the test
split validation items too (``known_items``, indexed once per run by ``KnownItems``).
Everything runs on the device that holds the vectors; only the finished sums come back. Recall divides by the size of the user's
held-out set (as LightGCN reports it); NDCG's ideal DCG counts min(K, |held-out|) hits.

Breakdown by popularity (``popularity_groups``): every item is ``head`` (the most-trained
``eval.head_share`` of the items with training interactions), ``tail`` (the other items
with training interactions) or ``cold`` (none). Within a group G, from the same top-K list
as the overall metrics: a user's Recall@K/G = its held-out items of G in the top K / its
held-out items of G, and NDCG@K/G = the DCG of those hits at their places in the list over
the ideal DCG of min(K, its held-out items of G) hits. Each is averaged over the users with
at least one held-out item in G and reported as ``recall@K/G``, ``ndcg@K/G``; a group no
evaluated user holds out is left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.dataset import Dataset
from ..graph.segments import segments
from .sampler import contains, sorted_keys


def known_items(dataset: Dataset, split: str) -> np.ndarray:
    """Pairs masked when ranking ``split``: training items, and for ``test`` validation items too."""
    return dataset.train if split == "valid" else np.concatenate([dataset.train, dataset.valid])


@dataclass(frozen=True)
class KnownItems:
    """``(user, item)`` pairs grouped by user on the device that ranks: user u's items are
    ``items[bounds[u]:bounds[u+1]]``. Sorting 800k pairs takes a tenth of a second, so a run
    builds this once per split (``of``) rather than at every evaluation."""

    bounds: torch.Tensor
    items: torch.Tensor

    @classmethod
    def of(cls, pairs: np.ndarray, n_users: int, device: torch.device) -> "KnownItems":
        order = np.lexsort((pairs[:, 1], pairs[:, 0]))
        items = torch.from_numpy(np.ascontiguousarray(pairs[order, 1], dtype=np.int64))
        bounds = torch.from_numpy(np.searchsorted(pairs[order, 0], np.arange(n_users + 1)).astype(np.int64))
        return cls(bounds.to(device), items.to(device))


def mask_known(scores: torch.Tensor, users: torch.Tensor, known: KnownItems) -> None:
    """Set ``scores[r, i]`` to -inf for every item i that ``users[r]`` is known to have."""
    starts = known.bounds.index_select(0, users)
    rows, index = segments(starts, known.bounds.index_select(0, users + 1) - starts)
    scores.index_put_((rows.long(), known.items.index_select(0, index)),
                      torch.tensor(-torch.inf, device=scores.device, dtype=scores.dtype))


def held_out_hits(keys: torch.Tensor, users: torch.Tensor, items: torch.Tensor, n_items: int) -> torch.Tensor:
    """Bool, shaped like ``items``: is ``items[r, j]`` held out for ``users[r]``? ``keys`` is
    ``sorted_keys`` of the held-out pairs; a -1 (padding of a short list) never hits, although
    its key is that of the previous user's last item."""
    return contains(keys, users[:, None] * n_items + items) & (items >= 0)


def chunk_users(chunk: int, memory_budget_mb: int, n_items: int) -> int:
    """Users ranked at once: ``eval.chunk_users``, fewer where a chunk's scores (4 bytes per
    item, and as much again for masking and top-K) would pass ``eval.memory_budget_mb``."""
    return max(1, min(chunk, memory_budget_mb * 2**20 // (8 * n_items)))


GROUPS = ("head", "tail", "cold")


def popularity_groups(train: np.ndarray, n_items: int, head_share: float) -> np.ndarray:
    """Each item's group as an index into ``GROUPS``: 0 head, 1 tail, 2 cold.

    Head is the ceil(``head_share`` × W) items with the most training interactions among
    the W items that have any, ties broken towards the lower item index; cold items have
    no training interaction.
    """
    counts = np.bincount(train[:, 1], minlength=n_items)
    warm = np.flatnonzero(counts)
    by_count = warm[np.argsort(-counts[warm], kind="stable")]
    group = np.full(n_items, 2, dtype=np.int64)
    group[warm] = 1
    group[by_count[: math.ceil(head_share * len(warm))]] = 0
    return group


class Ranker:
    """Ranks every item for chunks of users with their known items masked: the one place that ranks.

    Scores, masking, top-K and the metric sums stay on the device of ``known``; the host
    reads the sums once, at the end."""

    def __init__(self, score: Callable[[torch.Tensor], torch.Tensor], n_users: int, n_items: int,
                 known: KnownItems, chunk: int = 1024) -> None:
        """``score(users)`` returns a ``(len(users), n_items)`` tensor, which ``top`` masks in
        place (so it may be a reused buffer)."""
        self.score, self.n_users, self.n_items, self.chunk = score, n_users, n_items, chunk
        self.known = known
        self.device = known.bounds.device

    def top(self, users: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values, items)`` of the top min(k, n_items) items of one chunk of ``users`` (int64,
        on the ranking device), best first; masked items have -inf values."""
        scores = self.score(users).float()
        mask_known(scores, users, self.known)
        return torch.topk(scores, min(k, self.n_items), dim=1)

    def topk(self, users: np.ndarray, k: int) -> np.ndarray:
        """The top-k items of each of ``users``, int64 ``(len(users), k)``, padded with -1 where
        fewer than k items are left unmasked."""
        out = np.full((len(users), k), -1, dtype=np.int64)
        for start in range(0, len(users), self.chunk):
            chunk = torch.from_numpy(users[start : start + self.chunk]).to(self.device)
            values, top = self.top(chunk, k)
            top = top.masked_fill(torch.isneginf(values), -1)
            out[start : start + self.chunk, : top.shape[1]] = top.cpu().numpy()
        return out

    def metrics(self, held_out: np.ndarray, ks: list[int],
                should_stop: Callable[[], bool] = lambda: False) -> dict[str, float] | None:
        """Mean Recall@K and NDCG@K over users with at least one ``held_out`` ``(user, item)``
        pair; ``None`` if ``should_stop()`` turned true midway (checked before each chunk)."""
        summed = self.sums(held_out, ks, should_stop)
        return None if summed is None else means(*summed)

    def sums(self, held_out: np.ndarray, ks: list[int], should_stop: Callable[[], bool] = lambda: False,
             share: tuple[int, int] = (0, 1),
             groups: np.ndarray | None = None) -> tuple[dict[str, float], int] | None:
        """Per-metric sums over this ``share`` (``(rank, size)``: the rank-th of ``size`` blocks)
        of the evaluated users, with the number of users of all shares: summed over the shares
        and divided (``means``), they are ``metrics``. ``None`` if ``should_stop()`` turned true
        midway. ``groups`` (``popularity_groups``) adds each group's sums from the same top-K
        lists, with its count of users under ``users/GROUP`` (of this share only)."""
        device = self.device
        kmax = min(max(ks), self.n_items)
        held_keys = sorted_keys(held_out, self.n_items).to(device)
        n_held = torch.from_numpy(np.bincount(held_out[:, 0], minlength=self.n_users)).to(device)
        users_all = torch.nonzero(n_held > 0).squeeze(1)
        rank, size = share
        mine = users_all[rank * len(users_all) // size : (rank + 1) * len(users_all) // size]
        discount = 1.0 / torch.log2(torch.arange(2, kmax + 2, dtype=torch.float64, device=device))
        cum_discount = torch.cat([torch.zeros(1, dtype=torch.float64, device=device), torch.cumsum(discount, 0)])
        names = [f"{m}@{k}" for m in ("recall", "ndcg") for k in ks]
        totals = torch.zeros(len(names), dtype=torch.float64, device=device)
        split = _GroupSplit(groups, held_out, self.n_users, mine, ks, device) if groups is not None else None
        for start in range(0, len(mine), self.chunk):
            if should_stop():
                return None
            users = mine[start : start + self.chunk]
            top = self.top(users, kmax)[1]
            hits = held_out_hits(held_keys, users, top, self.n_items).double()
            size_held = n_held.index_select(0, users).double()
            recalls, ndcgs = [], []
            for k in ks:
                kk = min(k, kmax)
                h = hits[:, :kk]
                recalls.append((h.sum(1) / size_held).sum())
                idcg = cum_discount.index_select(0, torch.clamp(size_held, max=kk).long())
                ndcgs.append(((h * discount[:kk]).sum(1) / idcg).sum())
            totals += torch.stack(recalls + ndcgs)
            if split is not None:
                split.add(users, top, hits, discount, cum_discount)
        sums = dict(zip(names, totals.tolist()))
        if split is not None:
            sums.update(split.sums())
        return sums, len(users_all)


class _GroupSplit:
    """The popularity breakdown riding along ``Ranker.sums``: each user's held-out count per
    group, and per chunk the hits masked to each group, summed on the ranking device."""

    def __init__(self, groups: np.ndarray, held_out: np.ndarray, n_users: int, mine: torch.Tensor, ks: list[int],
                 device: torch.device) -> None:
        self.groups = torch.from_numpy(np.asarray(groups, dtype=np.int64)).to(device)
        per_user = np.bincount(held_out[:, 0] * len(GROUPS) + np.asarray(groups)[held_out[:, 1]],
                               minlength=n_users * len(GROUPS))
        self.n_held = torch.from_numpy(per_user.reshape(n_users, len(GROUPS))).to(device, torch.float64)
        self.users = (self.n_held.index_select(0, mine) > 0).sum(0).tolist()
        self.ks = ks
        self.names = [f"{m}@{k}/{name}" for name in GROUPS for m in ("recall", "ndcg") for k in ks]
        self.totals = torch.zeros(len(self.names), dtype=torch.float64, device=device)

    def add(self, users: torch.Tensor, top: torch.Tensor, hits: torch.Tensor, discount: torch.Tensor,
            cum_discount: torch.Tensor) -> None:
        """Add one chunk: ``top`` its ranked items, ``hits`` (float) where they are held out. Users
        holding out nothing of a group weigh 0 there (a mask, not a selection: nothing waits)."""
        ranked = self.groups[top]
        held = self.n_held.index_select(0, users)
        parts = []
        for g in range(len(GROUPS)):
            size_held = held[:, g]
            counted = size_held > 0
            in_group = hits * (ranked == g)
            recalls, ndcgs = [], []
            for k in self.ks:
                h = in_group[:, :k]
                recalls.append(torch.where(counted, h.sum(1) / size_held.clamp_min(1), 0.0).sum())
                idcg = cum_discount.index_select(0, torch.clamp(size_held, min=1, max=h.shape[1]).long())
                ndcgs.append(torch.where(counted, (h * discount[: h.shape[1]]).sum(1) / idcg, 0.0).sum())
            parts += recalls + ndcgs
        self.totals += torch.stack(parts)

    def sums(self) -> dict[str, float]:
        out = dict(zip(self.names, self.totals.tolist()))
        out.update({f"users/{name}": float(n) for name, n in zip(GROUPS, self.users)})
        return out


def means(sums: dict[str, float], n_users: int) -> dict[str, float]:
    """Metric sums (``Ranker.sums``, added up over the shares) as means over the evaluated users;
    a group's metrics (``recall@K/GROUP``) over its own users (``users/GROUP``), left out when it has none."""
    n = max(n_users, 1)
    out: dict[str, float] = {}
    for key, value in sums.items():
        if key.startswith("users/"):
            continue
        _, _, group = key.partition("/")
        if not group:
            out[key] = value / n
        elif sums[f"users/{group}"]:
            out[key] = value / sums[f"users/{group}"]
    return out


def embedding_ranker(users: torch.Tensor, items: torch.Tensor, known: KnownItems, chunk: int) -> Ranker:
    """A ranker by inner product of final user and item vectors (float32, on ``users.device``,
    where ``known`` must be too), as LightGCN scores."""
    n_items = items.shape[0]
    items_t = items.T.contiguous()
    # One score buffer for all chunks: a fresh 1024 × n_items tensor per chunk spends a third
    # of the evaluation faulting in new pages. Its rows start on 64-byte boundaries: with an
    # odd row length (Gowalla's 40,981 items) the product into it took twice the CPU time.
    width = -(-n_items // 16) * 16
    buffer = torch.empty(min(chunk, users.shape[0]), width, device=users.device)[:, :n_items]

    def score(u: torch.Tensor) -> torch.Tensor:
        return torch.mm(users.index_select(0, u), items_t, out=buffer[: len(u)])

    return Ranker(score, users.shape[0], n_items, known, chunk)


def evaluate_split(users: torch.Tensor, items: torch.Tensor, dataset: Dataset, split: str, ks: list[int],
                   chunk: int, should_stop: Callable[[], bool] = lambda: False,
                   groups: np.ndarray | None = None) -> dict[str, float] | None:
    """Full-ranking metrics of final vectors (``model.final_embeddings(adj)``) on ``valid``
    (train masked) or ``test`` (train and valid masked), broken down by ``groups`` when given
    (``popularity_groups``); ``None`` if stopped midway."""
    known = KnownItems.of(known_items(dataset, split), dataset.n_users, users.device)
    summed = split_sums(users, items, known, getattr(dataset, split), ks, chunk, should_stop, groups=groups)
    return None if summed is None else means(*summed)


def split_sums(users: torch.Tensor, items: torch.Tensor, known: KnownItems, held_out: np.ndarray, ks: list[int],
               chunk: int, should_stop: Callable[[], bool] = lambda: False, share: tuple[int, int] = (0, 1),
               groups: np.ndarray | None = None) -> tuple[dict[str, float], int] | None:
    """``evaluate_split`` as ``Ranker.sums`` over one ``share`` of the users: ranks of a run add these up."""
    return embedding_ranker(users, items, known, chunk).sums(held_out, ks, should_stop, share, groups)


def popularity_metrics(dataset: Dataset, split: str, ks: list[int], chunk: int,
                       groups: np.ndarray | None = None) -> dict[str, float]:
    """The baseline every model must beat: rank items by training popularity for everyone."""
    known = KnownItems.of(known_items(dataset, split), dataset.n_users, torch.device("cpu"))
    return means(*popularity_sums(dataset, known, getattr(dataset, split), ks, chunk, groups=groups))


def popularity_sums(dataset: Dataset, known: KnownItems, held_out: np.ndarray, ks: list[int], chunk: int,
                    share: tuple[int, int] = (0, 1), groups: np.ndarray | None = None) -> tuple[dict[str, float], int]:
    """``popularity_metrics`` as ``Ranker.sums`` over one ``share`` of the users, on ``known``'s device."""
    device = known.bounds.device
    counts = torch.from_numpy(np.bincount(dataset.train[:, 1], minlength=dataset.n_items)).float().to(device)
    ranker = Ranker(lambda u: counts.expand(len(u), -1).clone(), dataset.n_users, dataset.n_items, known, chunk)
    result = ranker.sums(held_out, ks, share=share, groups=groups)
    assert result is not None
    return result


def text_sums(dataset: Dataset, known: KnownItems, held_out: np.ndarray, ks: list[int], chunk: int,
              share: tuple[int, int] = (0, 1), groups: np.ndarray | None = None) -> tuple[dict[str, float], int]:
    """The no-training text baseline as ``Ranker.sums``: a user is the mean of their training
    items' text vectors (``dataset.pretrained``, as the model receives them), scored against
    every item's by cosine. What text alone knows, cold items included, before any training."""
    assert dataset.pretrained is not None, "the text baseline needs pretrained item vectors"
    device = known.bounds.device
    text = torch.from_numpy(dataset.pretrained).float().to(device)
    pairs = torch.from_numpy(dataset.train).to(device)
    summed = torch.zeros(dataset.n_users, text.shape[1], device=device).index_add_(
        0, pairs[:, 0], text.index_select(0, pairs[:, 1]))
    # The mean points where the sum does, and cosine reads only directions.
    ranker = embedding_ranker(F.normalize(summed, dim=1), F.normalize(text, dim=1), known, chunk)
    result = ranker.sums(held_out, ks, share=share, groups=groups)
    assert result is not None
    return result


def list_recall(lists: np.ndarray, users: np.ndarray, held_out: np.ndarray, n_items: int) -> float:
    """Mean over ``users`` of (held-out items in its row of ``lists``, -1 padded) / (held-out
    items): Recall@K as ``Ranker.metrics`` defines it, for lists that came from elsewhere
    (an approximate index)."""
    hits = held_out_hits(sorted_keys(held_out, n_items), torch.from_numpy(users), torch.from_numpy(lists),
                         n_items).numpy()
    sizes = np.bincount(held_out[:, 0], minlength=int(users.max()) + 1)[users]
    return float(np.mean(hits.sum(1) / sizes))
