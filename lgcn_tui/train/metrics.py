"""Full-ranking Recall@K and NDCG@K with the user's known items masked.

Scores every item for a chunk of users at a time, masks the items the user is known to
have (training items; for the test split also validation items), takes the top max(K)
and accumulates on the tensor side. Recall divides by the size of the user's held-out
set (as LightGCN reports it); NDCG's ideal DCG counts min(K, |held-out|) hits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..graph.segments import segments
from .sampler import contains, sorted_keys


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


def rank_metrics(
    score: Callable[[torch.Tensor], torch.Tensor],
    n_users: int,
    n_items: int,
    known: np.ndarray,
    held_out: np.ndarray,
    ks: list[int],
    chunk: int = 1024,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, float] | None:
    """Mean metrics over users with at least one held-out item; ``None`` if stopped midway.

    ``score(users)`` returns a ``(len(users), n_items)`` tensor. ``known`` and ``held_out``
    are ``(n, 2)`` arrays of ``(user, item)``.
    """
    kmax = min(max(ks), n_items)
    known_pairs = known_index(known, n_users)
    held_keys = sorted_keys(held_out, n_items)
    n_held = torch.from_numpy(np.bincount(held_out[:, 0], minlength=n_users))
    users_all = torch.nonzero(n_held > 0).squeeze(1)
    discount = 1.0 / torch.log2(torch.arange(2, kmax + 2, dtype=torch.float64))
    cum_discount = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(discount, 0)])
    sums = {f"{m}@{k}": 0.0 for m in ("recall", "ndcg") for k in ks}
    for start in range(0, len(users_all), chunk):
        if should_stop():
            return None
        users = users_all[start : start + chunk]
        scores = score(users).float()
        mask_known(scores, users, known_pairs)
        top = torch.topk(scores, kmax, dim=1).indices.cpu()
        hits = contains(held_keys, users[:, None] * n_items + top).double()
        size = n_held[users].double()
        for k in ks:
            kk = min(k, kmax)
            h = hits[:, :kk]
            sums[f"recall@{k}"] += float((h.sum(1) / size).sum())
            dcg = (h * discount[:kk]).sum(1)
            idcg = cum_discount[torch.clamp(size, max=kk).long()]
            sums[f"ndcg@{k}"] += float((dcg / idcg).sum())
    n = max(len(users_all), 1)
    return {key: value / n for key, value in sums.items()}
