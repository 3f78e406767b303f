"""Cold-start items: a share of the catalogue held out of training entirely (``data.cold_items``).

A cold item has no training interaction, so it has no edge in the graph, propagation never
reaches it, no loss samples it (``train.sampler``, ``objective.softmax``), and it is scored
from its layer-0 vector (``model.lightgcn``): its text, or the adapter's map of it. Holding
items out this way makes a cold-start benchmark of any data set with item text.

The held-out items are drawn with ``data.cold_seed``, never ``run.seed``, so runs that differ
in seed hold out the same items. Every interaction of a held-out item leaves train. The
held-out items are split in two halves by the same draw: all interactions of the first half
go to valid, all of the second half to test. So no cold item is scored in both splits (the
checkpoint chosen on valid has seen nothing of the test's cold items), and valid measures
the same mix as test. A data set without a valid split sends them all to test.
"""

from __future__ import annotations

import numpy as np

from .dataset import Dataset

WARM, VALID, TEST = 0, 1, 2


def hold_out_items(dataset: Dataset, fraction: float, seed: int) -> str:
    """Move every interaction of ``fraction`` of the items out of train, in place; the note saying so.

    A user left without training interactions has no edge either and is known by nothing but
    a random vector: their valid and test interactions are dropped, and the note counts them.
    """
    n_items = dataset.n_items
    cold = np.random.default_rng(seed).permutation(n_items)[: round(fraction * n_items)]
    where = np.full(n_items, WARM, dtype=np.int8)
    where[cold] = TEST
    if len(dataset.valid):
        where[cold[: len(cold) // 2]] = VALID
    every = np.concatenate([dataset.train, dataset.valid, dataset.test])
    moved = int((where[dataset.train[:, 1]] != WARM).sum())
    dataset.train = dataset.train[where[dataset.train[:, 1]] == WARM]
    has_train = np.bincount(dataset.train[:, 0], minlength=dataset.n_users) > 0
    dropped = 0
    for name, target in (("valid", VALID), ("test", TEST)):
        split = getattr(dataset, name)
        pairs = np.concatenate([split[where[split[:, 1]] == WARM], every[where[every[:, 1]] == target]])
        pairs = np.unique(pairs, axis=0) if len(pairs) else pairs
        kept = has_train[pairs[:, 0]]
        dropped += int((~kept).sum())
        setattr(dataset, name, pairs[kept])
    counts = "; ".join(f"{name}: {int((where[getattr(dataset, name)[:, 1]] == target).sum())} interactions with "
                       f"{int((where == target).sum())} of them" for name, target in (("valid", VALID), ("test", TEST))
                       if (where == target).any())
    orphans = (f"; {int((~has_train).sum())} users kept no training interaction, so their {dropped} valid/test "
               "interactions were dropped") if not has_train.all() else ""
    return (f"data.cold_items = {fraction:g}: {len(cold)} of {n_items} items held out of training "
            f"(data.cold_seed {seed}; {moved} training interactions moved out; {counts}){orphans}")
