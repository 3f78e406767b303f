"""The negative sampler never hands back a training positive and covers each pair once per epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgcn_tui.train.sampler import NegativeSampler


def dense_train(seed: int, n_users: int = 40, n_items: int = 12) -> np.ndarray:
    """Users holding most of a small catalogue, so almost every uniform draw is a positive."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < 0.85
    mask[np.arange(n_users), rng.integers(0, n_items, n_users)] = False  # one negative each at least
    users, items = np.nonzero(mask)
    return np.stack([users, items], 1)


def test_no_sampled_negative_is_a_positive() -> None:
    train = dense_train(0)
    positives = {(int(u), int(i)) for u, i in train}
    sampler = NegativeSampler(train, 40, 12)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        users, pos, neg = sampler.epoch(gen)
        assert all((int(u), int(j)) not in positives for u, j in zip(users, neg))
        assert all((int(u), int(i)) in positives for u, i in zip(users, pos))


def test_an_epoch_visits_every_training_pair_once() -> None:
    train = dense_train(1)
    users, pos, _ = NegativeSampler(train, 40, 12).epoch(torch.Generator().manual_seed(3))
    seen = sorted(zip(users.tolist(), pos.tolist()))
    assert seen == sorted(map(tuple, train.tolist()))


def test_same_generator_state_gives_the_same_epoch() -> None:
    sampler = NegativeSampler(dense_train(2), 40, 12)
    gen = torch.Generator().manual_seed(7)
    state = gen.get_state()
    first = sampler.epoch(gen)
    gen.set_state(state)
    second = sampler.epoch(gen)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_negatives_are_spread_over_all_non_positive_items_with_training_pairs() -> None:
    train = np.array([[0, 0], [1, 1], [1, 2], [1, 3], [1, 4]])
    sampler = NegativeSampler(train, 2, 6)
    neg = sampler.negatives(torch.zeros(5000, dtype=torch.long), torch.Generator().manual_seed(0))
    counts = np.bincount(neg.numpy(), minlength=6)
    assert counts[0] == 0 and counts[5] == 0  # user 0's positive; item 5, which nobody trained on
    assert counts[1:5].min() > 1000  # uniform over items 1..4: about 1250 each


def test_a_user_with_every_item_is_refused() -> None:
    train = np.array([[0, 0], [0, 1], [1, 0]])
    with pytest.raises(ValueError, match="user 0 interacted with every item"):
        NegativeSampler(train, 2, 2)
