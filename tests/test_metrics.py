"""Recall@K and NDCG@K against cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lgcn_tui.train.ranking import KnownItems, Ranker


def on_cpu(pairs: np.ndarray, n_users: int) -> KnownItems:
    return KnownItems.of(pairs, n_users, torch.device("cpu"))


def fixed_scores(table: list[list[float]]):
    scores = torch.tensor(table)
    return lambda users: scores[users].clone()


def test_hand_computed_recall_and_ndcg() -> None:
    # 2 users, 6 items. User 0 trained on item 0 (masked), held out {1, 4}.
    # User 0 scores rank: 0 (masked), 5, 1, 3, 4, 2 -> top-3 after masking: 5, 1, 3 -> hit at rank 2.
    # User 1 trained on item 2, held out {3}; ranking 3, 1, 0, ... -> hit at rank 1.
    scores = [[9, 7, 1, 6, 5, 8], [4, 5, 9, 6, 3, 2]]
    known = np.array([[0, 0], [1, 2]])
    held = np.array([[0, 1], [0, 4], [1, 3]])
    got = Ranker(fixed_scores(scores), 2, 6, on_cpu(known, 2)).metrics(held, [1, 3, 5])
    assert got is not None
    # Recall: user0 @1 0/2, @3 1/2, @5 2/2 (5,1,3,4,2); user1 hits at rank 1 everywhere.
    assert got["recall@1"] == pytest.approx((0 + 1) / 2)
    assert got["recall@3"] == pytest.approx((0.5 + 1) / 2)
    assert got["recall@5"] == pytest.approx((1 + 1) / 2)
    d = [1 / math.log2(r + 1) for r in range(1, 7)]  # discount of rank r (1-based)
    ndcg0_3 = d[1] / (d[0] + d[1])
    ndcg0_5 = (d[1] + d[3]) / (d[0] + d[1])
    assert got["ndcg@1"] == pytest.approx((0 + 1) / 2)
    assert got["ndcg@3"] == pytest.approx((ndcg0_3 + 1) / 2)
    assert got["ndcg@5"] == pytest.approx((ndcg0_5 + 1) / 2)


def test_users_without_held_out_items_are_not_averaged_in() -> None:
    scores = [[1, 2, 3], [3, 2, 1]]
    nothing = on_cpu(np.zeros((0, 2), dtype=np.int64), 2)
    got = Ranker(fixed_scores(scores), 2, 3, nothing).metrics(np.array([[1, 0]]), [1])
    assert got == {"recall@1": 1.0, "ndcg@1": 1.0}


def test_masked_training_item_never_counts_even_if_top_scored() -> None:
    scores = [[10, 1, 0]]
    known = np.array([[0, 0]])
    held = np.array([[0, 0], [0, 2]])  # item 0 is known and held out: it must stay masked
    got = Ranker(fixed_scores(scores), 1, 3, on_cpu(known, 1)).metrics(held, [1, 2])
    assert got["recall@1"] == 0.0
    assert got["recall@2"] == pytest.approx(0.5)


def test_chunking_does_not_change_the_result() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((50, 30)).tolist()
    known = np.unique(np.stack([rng.integers(0, 50, 200), rng.integers(0, 30, 200)], 1), axis=0)
    held = np.unique(np.stack([rng.integers(0, 50, 100), rng.integers(0, 30, 100)], 1), axis=0)
    held = held[~(held[:, None] == known[None]).all(-1).any(1)]
    whole = Ranker(fixed_scores(scores), 50, 30, on_cpu(known, 50), chunk=1000).metrics(held, [5, 10])
    pieces = Ranker(fixed_scores(scores), 50, 30, on_cpu(known, 50), chunk=7).metrics(held, [5, 10])
    assert whole == pytest.approx(pieces)


def test_stop_request_abandons_the_evaluation() -> None:
    nothing = on_cpu(np.zeros((0, 2), dtype=np.int64), 1)
    got = Ranker(fixed_scores([[1, 2]]), 1, 2, nothing).metrics(np.array([[0, 1]]), [1],
                                                                                 should_stop=lambda: True)
    assert got is None


# ----- breakdown by popularity ------------------------------------------------------------
# 3 users, 6 items. Training counts: item 0 ×3, item 1 ×2, items 2, 3, 4 ×1, item 5 never (cold).
TRAIN = np.array([[0, 0], [0, 1], [1, 0], [1, 2], [2, 0], [2, 1], [2, 3], [2, 4]])
HELD = np.array([[0, 2], [0, 5], [1, 1], [1, 3], [2, 5]])
SCORES = [[9, 8, 1, 3, 2, 7],   # user 0, items 0 and 1 masked: ranks 5, 3, 4, 2
          [9, 2, 8, 7, 1, 5],   # user 1, items 0 and 2 masked: ranks 3, 5, 1, 4
          [0, 0, 6, 0, 0, 4]]   # user 2, items 0, 1, 3, 4 masked: ranks 2, 5


@pytest.mark.parametrize(("share", "head"), [(0.2, [0]), (0.4, [0, 1]), (0.5, [0, 1, 2]), (0.99, [0, 1, 2, 3, 4])])
def test_head_is_the_most_trained_share_of_the_trained_items_ties_to_the_lower_index(share: float,
                                                                                      head: list[int]) -> None:
    from lgcn_tui.train.ranking import popularity_groups

    groups = popularity_groups(TRAIN, 6, share)  # 5 trained items: ceil(share × 5) of them are head

    assert np.flatnonzero(groups == 0).tolist() == head
    assert np.flatnonzero(groups == 1).tolist() == [i for i in range(5) if i not in head]
    assert np.flatnonzero(groups == 2).tolist() == [5]


def test_hand_computed_recall_and_ndcg_by_popularity_group() -> None:
    from lgcn_tui.train.ranking import means, popularity_groups

    groups = popularity_groups(TRAIN, 6, 0.4)  # head {0, 1}, tail {2, 3, 4}, cold {5}
    got = means(*Ranker(fixed_scores(SCORES), 3, 6, on_cpu(TRAIN, 3)).sums(HELD, [1, 3], groups=groups))

    d = [1 / math.log2(r + 1) for r in range(1, 7)]  # discount of rank r (1-based)
    assert got["recall@1"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)  # overall, unchanged by the breakdown
    assert got["recall@3"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    # head: only user 1 holds one out (item 1, ranked 3rd)
    assert (got["recall@1/head"], got["recall@3/head"]) == (0.0, 1.0)
    assert got["ndcg@3/head"] == pytest.approx(d[2] / d[0])
    # tail: user 0's item 2 is ranked 4th, user 1's item 3 first
    assert (got["recall@1/tail"], got["recall@3/tail"]) == (0.5, 0.5)
    assert (got["ndcg@1/tail"], got["ndcg@3/tail"]) == (0.5, 0.5)
    # cold: item 5 is user 0's first and user 2's second
    assert (got["recall@1/cold"], got["recall@3/cold"]) == (0.5, 1.0)
    assert got["ndcg@3/cold"] == pytest.approx((1 + d[1] / d[0]) / 2)
    assert not any(key.startswith("users/") for key in got)


def test_a_group_nobody_holds_out_is_left_out_and_shares_add_up_to_the_whole() -> None:
    from lgcn_tui.train.ranking import means, popularity_groups

    groups = popularity_groups(TRAIN, 6, 0.4)
    ranker = Ranker(fixed_scores(SCORES), 3, 6, on_cpu(TRAIN, 3))
    warm_only = means(*ranker.sums(HELD[HELD[:, 1] != 5], [3], groups=groups))
    assert "recall@3/cold" not in warm_only and "recall@3/tail" in warm_only

    whole = means(*ranker.sums(HELD, [1, 3], groups=groups))
    parts = [ranker.sums(HELD, [1, 3], share=(rank, 2), groups=groups) for rank in range(2)]
    added = {key: parts[0][0][key] + parts[1][0][key] for key in parts[0][0]}
    assert means(added, parts[0][1]) == pytest.approx(whole)
