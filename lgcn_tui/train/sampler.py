"""Uniform negative sampling, vectorised: no sampled negative is ever a training positive.

Every training pair is one ``(user, positive)`` triple per epoch, in a seeded random
order. Negatives are drawn uniformly from the items with a training pair: a cold item (none;
see ``data.cold``) is never sampled, since pushing it away from users is all a negative
draw could teach it. Negatives are drawn in bulk and rejected with ``searchsorted`` against the sorted
``user * n_items + item`` keys of the training set; only the few rejects are redrawn.
"""

from __future__ import annotations

import numpy as np
import torch


def sorted_keys(pairs: np.ndarray, n_items: int) -> torch.Tensor:
    """One sortable int64 key per ``(user, item)`` pair, so membership is a binary search."""
    pairs = torch.from_numpy(np.ascontiguousarray(pairs, dtype=np.int64))
    return torch.sort(pairs[:, 0] * n_items + pairs[:, 1]).values


def contains(keys: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Elementwise: is each key of ``query`` in the sorted ``keys``?"""
    if len(keys) == 0:
        return torch.zeros(query.shape, dtype=torch.bool, device=query.device)
    pos = torch.searchsorted(keys, query).clamp_(max=len(keys) - 1)
    return keys[pos] == query


class NegativeSampler:
    def __init__(self, train: np.ndarray, n_users: int, n_items: int) -> None:
        self.n_items = n_items
        self.items = torch.from_numpy(np.unique(train[:, 1]).astype(np.int64))
        self.pairs = torch.from_numpy(np.ascontiguousarray(train, dtype=np.int64))
        self.keys = sorted_keys(train, n_items)
        degree = np.bincount(train[:, 0], minlength=n_users)
        if (degree >= len(self.items)).any():
            user = int(np.argmax(degree >= len(self.items)))
            raise ValueError(f"user {user} interacted with every item: no negative exists")

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return contains(self.keys, users * self.n_items + items)

    def negatives(self, users: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        items = self.items[torch.randint(len(self.items), users.shape, generator=generator)]
        bad = self.is_positive(users, items)
        while bad.any():
            idx = bad.nonzero().squeeze(1)
            items[idx] = self.items[torch.randint(len(self.items), idx.shape, generator=generator)]
            bad[idx] = self.is_positive(users[idx], items[idx])
        return items

    def epoch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(users, positives, negatives)`` for one epoch, shuffled by ``generator``."""
        order = torch.randperm(len(self.pairs), generator=generator)
        users, pos = self.pairs[order, 0], self.pairs[order, 1]
        return users, pos, self.negatives(users, generator)


def rank_rows(start: int, stop: int, share: tuple[int, int]) -> slice:
    """Rows ``r, r+N, …`` of the global batch ``[start, stop)`` that rank ``r`` of ``N`` (``share``) trains on.

    Every rank draws the same epoch (one permutation and its negatives from the run's
    seed), so the global batches do not depend on the world size; one process is ``N = 1``.
    """
    rank, size = share
    return slice(start + rank, stop, size)
