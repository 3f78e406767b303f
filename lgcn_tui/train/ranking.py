"""Full ranking: every item scored for each user, the user's known items masked, top K taken.

Training-time evaluation, ``lgcn-tui eval``, the popularity and text baselines and the exact search
of ``export --faiss`` and ``recommend`` must rank identically, or an index measured
against "exact" ranking, or a baseline, would be measured against something else than
what evaluation reports. So they all rank through one ``Ranker``, and every "is this
(user, item) held out" test goes through ``held_out_hits``.

The items masked are those the user is known to have: training items, and for the test
split validation items too (``known_items``). Recall divides by the size of the user's
held-out set (as LightGCN reports it); NDCG's ideal DCG counts min(K, |held-out|) hits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..data.dataset import Dataset
from ..graph.segments import segments
from .sampler import contains, sorted_keys


def known_items(dataset: Dataset, split: str) -> np.ndarray:
    """Pairs masked when ranking ``split``: training items, and for ``test`` validation items too."""
    return dataset.train if split == "valid" else np.concatenate([dataset.train, dataset.valid])


def known_index(pairs: np.ndarray, n_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bounds, items)``: ``(user, item)`` pairs grouped by user, user u's items at ``bounds[u]:bounds[u+1]``."""
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    items = torch.from_numpy(np.ascontiguousarray(pairs[order, 1]))
    bounds = torch.from_numpy(np.searchsorted(pairs[order, 0], np.arange(n_users + 1)))
    return bounds, items


def mask_known(scores: torch.Tensor, users: torch.Tensor, known: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Set ``scores[r, i]`` to -inf for every item i that ``users[r]`` is known to have (``known_index``)."""
    bounds, items = known
    starts = bounds.index_select(0, users)
    rows, index = segments(starts, bounds.index_select(0, users + 1) - starts)
    masked = (rows.long().to(scores.device), items.index_select(0, index).to(scores.device))
    scores.index_put_(masked, torch.tensor(-torch.inf, device=scores.device))


def held_out_hits(keys: torch.Tensor, users: torch.Tensor, items: torch.Tensor, n_items: int) -> torch.Tensor:
    """Bool, shaped like ``items``: is ``items[r, j]`` held out for ``users[r]``? ``keys`` is
    ``sorted_keys`` of the held-out pairs; a -1 (padding of a short list) never hits, although
    its key is that of the previous user's last item."""
    return contains(keys, users[:, None] * n_items + items) & (items >= 0)


class Ranker:
    """Ranks every item for chunks of users with their known items masked: the one place that ranks."""

    def __init__(self, score: Callable[[torch.Tensor], torch.Tensor], n_users: int, n_items: int,
                 known: np.ndarray, chunk: int = 1024) -> None:
        """``score(users)`` returns a ``(len(users), n_items)`` tensor, which ``top`` masks in
        place (so it may be a reused buffer); ``known`` is an ``(n, 2)`` array of ``(user, item)``."""
        self.score, self.n_users, self.n_items, self.chunk = score, n_users, n_items, chunk
        self.known = known_index(known, n_users)

    def top(self, users: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values, items)`` of the top min(k, n_items) items of one chunk of ``users`` (a CPU
        int64 tensor), best first, on the scores' device; masked items have -inf values."""
        scores = self.score(users).float()
        mask_known(scores, users, self.known)
        return torch.topk(scores, min(k, self.n_items), dim=1)

    def topk(self, users: np.ndarray, k: int) -> np.ndarray:
        """The top-k items of each of ``users``, int64 ``(len(users), k)``, padded with -1 where
        fewer than k items are left unmasked."""
        out = np.full((len(users), k), -1, dtype=np.int64)
        for start in range(0, len(users), self.chunk):
            values, top = self.top(torch.from_numpy(users[start : start + self.chunk]), k)
            top[torch.isneginf(values)] = -1
            out[start : start + self.chunk, : top.shape[1]] = top.cpu().numpy()
        return out

    def metrics(self, held_out: np.ndarray, ks: list[int],
                should_stop: Callable[[], bool] = lambda: False) -> dict[str, float] | None:
        """Mean Recall@K and NDCG@K over users with at least one ``held_out`` ``(user, item)``
        pair; ``None`` if ``should_stop()`` turned true midway (checked before each chunk)."""
        summed = self.sums(held_out, ks, should_stop)
        return None if summed is None else means(*summed)

    def sums(self, held_out: np.ndarray, ks: list[int], should_stop: Callable[[], bool] = lambda: False,
             share: tuple[int, int] = (0, 1)) -> tuple[dict[str, float], int] | None:
        """Per-metric sums over this ``share`` (``(rank, size)``: the rank-th of ``size`` blocks)
        of the evaluated users, with the number of users of all shares: summed over the shares
        and divided, they are ``metrics``. ``None`` if ``should_stop()`` turned true midway."""
        kmax = min(max(ks), self.n_items)
        held_keys = sorted_keys(held_out, self.n_items)
        n_held = torch.from_numpy(np.bincount(held_out[:, 0], minlength=self.n_users))
        users_all = torch.nonzero(n_held > 0).squeeze(1)
        rank, size = share
        mine = users_all[rank * len(users_all) // size : (rank + 1) * len(users_all) // size]
        discount = 1.0 / torch.log2(torch.arange(2, kmax + 2, dtype=torch.float64))
        cum_discount = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(discount, 0)])
        sums = {f"{m}@{k}": 0.0 for m in ("recall", "ndcg") for k in ks}
        for start in range(0, len(mine), self.chunk):
            if should_stop():
                return None
            users = mine[start : start + self.chunk]
            top = self.top(users, kmax)[1].cpu()
            hits = held_out_hits(held_keys, users, top, self.n_items).double()
            size_held = n_held[users].double()
            for k in ks:
                kk = min(k, kmax)
                h = hits[:, :kk]
                sums[f"recall@{k}"] += float((h.sum(1) / size_held).sum())
                dcg = (h * discount[:kk]).sum(1)
                idcg = cum_discount[torch.clamp(size_held, max=kk).long()]
                sums[f"ndcg@{k}"] += float((dcg / idcg).sum())
        return sums, len(users_all)


def means(sums: dict[str, float], n_users: int) -> dict[str, float]:
    """Metric sums (``Ranker.sums``, added up over the shares) as means over the evaluated users."""
    n = max(n_users, 1)
    return {key: value / n for key, value in sums.items()}


def embedding_ranker(users: torch.Tensor, items: torch.Tensor, known: np.ndarray, chunk: int) -> Ranker:
    """A ranker by inner product of final user and item vectors (float32, on ``users.device``),
    as LightGCN scores."""
    n_items = items.shape[0]
    items_t = items.T.contiguous()
    # One score buffer for all chunks: a fresh 1024 × n_items tensor per chunk spends a third
    # of the evaluation faulting in new pages. Its rows start on 64-byte boundaries: with an
    # odd row length (Gowalla's 40,981 items) the product into it took twice the CPU time.
    width = -(-n_items // 16) * 16
    buffer = torch.empty(min(chunk, users.shape[0]), width, device=users.device)[:, :n_items]

    def score(u: torch.Tensor) -> torch.Tensor:
        return torch.mm(users.index_select(0, u.to(users.device)), items_t, out=buffer[: len(u)])

    return Ranker(score, users.shape[0], n_items, known, chunk)


def evaluate_split(users: torch.Tensor, items: torch.Tensor, dataset: Dataset, split: str, ks: list[int],
                   chunk: int, should_stop: Callable[[], bool] = lambda: False) -> dict[str, float] | None:
    """Full-ranking metrics of final vectors (``model.final_embeddings(adj)``) on ``valid``
    (train masked) or ``test`` (train and valid masked); ``None`` if stopped midway."""
    summed = split_sums(users, items, dataset, split, ks, chunk, should_stop)
    return None if summed is None else means(*summed)


def split_sums(users: torch.Tensor, items: torch.Tensor, dataset: Dataset, split: str, ks: list[int], chunk: int,
               should_stop: Callable[[], bool] = lambda: False,
               share: tuple[int, int] = (0, 1)) -> tuple[dict[str, float], int] | None:
    """``evaluate_split`` as ``Ranker.sums`` over one ``share`` of the users: ranks of a run add these up."""
    ranker = embedding_ranker(users, items, known_items(dataset, split), chunk)
    return ranker.sums(getattr(dataset, split), ks, should_stop, share)


def popularity_metrics(dataset: Dataset, split: str, ks: list[int], chunk: int) -> dict[str, float]:
    """The baseline every model must beat: rank items by training popularity for everyone."""
    return means(*popularity_sums(dataset, split, ks, chunk))


def popularity_sums(dataset: Dataset, split: str, ks: list[int], chunk: int,
                    share: tuple[int, int] = (0, 1)) -> tuple[dict[str, float], int]:
    """``popularity_metrics`` as ``Ranker.sums`` over one ``share`` of the users."""
    counts = torch.from_numpy(np.bincount(dataset.train[:, 1], minlength=dataset.n_items)).float()
    ranker = Ranker(lambda u: counts.expand(len(u), -1).clone(), dataset.n_users, dataset.n_items,
                    known_items(dataset, split), chunk)
    result = ranker.sums(getattr(dataset, split), ks, share=share)
    assert result is not None
    return result


def text_sums(dataset: Dataset, split: str, ks: list[int], chunk: int,
              share: tuple[int, int] = (0, 1)) -> tuple[dict[str, float], int]:
    """The no-training text baseline as ``Ranker.sums``: a user is the mean of their training
    items' text vectors (``dataset.pretrained``, as the model receives them), scored against
    every item's by cosine. What text alone knows, cold items included, before any training."""
    assert dataset.pretrained is not None, "the text baseline needs pretrained item vectors"
    text = torch.from_numpy(dataset.pretrained).float()
    pairs = torch.from_numpy(dataset.train)
    summed = torch.zeros(dataset.n_users, text.shape[1]).index_add_(0, pairs[:, 0], text.index_select(0, pairs[:, 1]))
    # The mean points where the sum does, and cosine reads only directions.
    ranker = embedding_ranker(F.normalize(summed, dim=1), F.normalize(text, dim=1), known_items(dataset, split), chunk)
    result = ranker.sums(getattr(dataset, split), ks, share=share)
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
