"""Cold-start items: held out of training whole, never sampled, scored from their layer-0 vector,
kept from weight decay, and a no-training text baseline to compare with."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from conftest import Recording, train_to_end

from lgcn_tui import config, data, objective
from lgcn_tui.contract import events as ev
from lgcn_tui.data.cold import hold_out_items
from lgcn_tui.data.dataset import Dataset, build_dataset
from lgcn_tui.graph.adjacency import build_adjacency
from lgcn_tui.graph.propagate import propagate_all
from lgcn_tui.model.adapter import AdapterSpec
from lgcn_tui.model.lightgcn import LightGCN
from lgcn_tui.objective.softmax import SampledSoftmax
from lgcn_tui.train.ranking import KnownItems, known_items, means, text_sums
from lgcn_tui.train.sampler import NegativeSampler


def catalogue(n_users: int = 30, n_items: int = 20, valid: bool = True) -> Dataset:
    """Every item in train; valid and test hold other pairs."""
    rng = np.random.default_rng(0)
    taken = rng.random((n_users, n_items)) < 0.4
    taken[np.arange(n_users) % n_users, np.arange(n_users) % n_items] = True
    taken[np.arange(n_items) % n_users, np.arange(n_items)] = True
    users, items = np.nonzero(taken)
    split = rng.choice(3 if valid else 2, size=len(users), p=[0.6, 0.2, 0.2] if valid else [0.7, 0.3])
    split[np.unique(users, return_index=True)[1]] = 0  # every user keeps a training pair
    split[np.unique(items, return_index=True)[1]] = 0  # and so does every item
    names = ("train", "valid", "test") if valid else ("train", "test")
    return build_dataset("toy", {name: (users[split == k], items[split == k]) for k, name in enumerate(names)})


def pairs_of(array: np.ndarray) -> set[tuple[int, int]]:
    return {(int(u), int(i)) for u, i in array}


@pytest.mark.parametrize("with_valid", [True, False])
def test_held_out_items_leave_train_whole_and_each_lands_in_one_split(with_valid: bool) -> None:
    before = catalogue(valid=with_valid)
    assert set(before.train[:, 1]) == set(range(20))
    after = copy.deepcopy(before)
    note = hold_out_items(after, 0.25, seed=3)
    cold = set(range(20)) - set(after.train[:, 1].tolist())
    assert len(cold) == 5 and "5 of 20 items held out" in note
    everything = pairs_of(before.train) | pairs_of(before.valid) | pairs_of(before.test)
    for split in ("train", "valid", "test"):  # warm pairs stay where they were
        warm_before = {p for p in pairs_of(getattr(before, split)) if p[1] not in cold}
        assert {p for p in pairs_of(getattr(after, split)) if p[1] not in cold} == warm_before
    in_valid = {i for _, i in pairs_of(after.valid) if i in cold}
    in_test = {i for _, i in pairs_of(after.test) if i in cold}
    assert not in_valid & in_test and in_valid | in_test == cold
    assert len(in_valid) == (2 if with_valid else 0)
    for item in cold:  # every interaction of a cold item, from any split, now in its one split
        target = after.valid if item in in_valid else after.test
        assert {p for p in everything if p[1] == item} == {p for p in pairs_of(target) if p[1] == item}


def test_the_held_out_items_depend_on_the_cold_seed_alone() -> None:
    first, again, other = (copy.deepcopy(catalogue()) for _ in range(3))
    hold_out_items(first, 0.25, seed=3)
    hold_out_items(again, 0.25, seed=3)
    hold_out_items(other, 0.25, seed=4)
    assert np.array_equal(first.train, again.train) and np.array_equal(first.test, again.test)
    assert not np.array_equal(first.train, other.train)


def test_run_seed_does_not_change_which_items_are_cold(shared_data, tmp_path) -> None:
    path = shared_data("ml-100k")
    loaded = []
    for seed in (0, 1):
        cfg = config.resolve({}, "test", ["data.format=recbole", f'data.path="{path}"', "model.item_init=xavier",
                                          "data.cold_items=0.2", f"run.seed={seed}"])
        loaded.append(data.load(cfg))
    assert np.array_equal(loaded[0].train, loaded[1].train) and np.array_equal(loaded[0].test, loaded[1].test)
    assert len(set(loaded[0].train[:, 1].tolist())) <= loaded[0].n_items - round(0.2 * loaded[0].n_items)


def test_a_user_left_without_training_items_is_not_evaluated_and_the_note_says_so() -> None:
    probe = catalogue()
    hold_out_items(probe, 0.25, seed=3)
    cold = sorted(set(range(20)) - set(probe.train[:, 1].tolist()))
    warm = sorted(set(range(20)) - set(cold))
    # user 0 has one training item, a cold one; user 1 keeps a warm one; all items occur in train
    train = [(0, cold[0])] + [(1, i) for i in range(20)]
    test = [(0, warm[0]), (1, cold[1])]
    dataset = build_dataset("toy", {"train": tuple(np.array(train).T), "test": tuple(np.array(test).T)})
    note = hold_out_items(dataset, 0.25, seed=3)
    assert pairs_of(dataset.test) == {(1, i) for i in cold}  # user 0's warm test item and moved cold one are gone
    assert "1 users kept no training interaction, so their 2 valid/test interactions were dropped" in note


def test_cold_items_are_never_sampled_as_negatives() -> None:
    rng = np.random.default_rng(1)
    train = np.unique(np.stack([rng.integers(0, 50, 400), rng.integers(0, 30, 400)], 1), axis=0)
    cold = np.array([3, 11, 12, 29])
    train = train[~np.isin(train[:, 1], cold)]
    sampler = NegativeSampler(train, 50, 30)
    gen = torch.Generator().manual_seed(0)
    drawn = torch.cat([sampler.epoch(gen)[2] for _ in range(20)])
    assert set(drawn.tolist()) == set(range(30)) - set(cold.tolist())

    adj = build_adjacency(train, 50, 30, "symmetric", reorder=True)
    model = LightGCN(50, 30, 4, 2, "mean", "learnable", None, position=adj.position)
    ctx = objective.Context(model, adj, torch.Generator().manual_seed(0))
    term = SampledSoftmax(64, 0.1, "cosine")
    shared = torch.cat([term.extra_items(ctx) for _ in range(50)])
    assert set(shared.tolist()) == set(range(30)) - set(cold.tolist())


@pytest.mark.parametrize("mode", ["learnable", "frozen", "adapter"])
@pytest.mark.parametrize("combine", ["mean", "hops", "last"])
def test_a_cold_item_is_scored_by_its_layer_0_vector_undivided(mode: str, combine: str) -> None:
    n_users, n_items = 6, 9
    cold = [2, 7]
    pairs = np.array([(u, i) for u in range(n_users) for i in range(n_items) if (u + i) % 3 and i not in cold])
    adj = build_adjacency(pairs, n_users, n_items, "symmetric", reorder=True)
    torch.manual_seed(0)
    model = LightGCN(n_users, n_items, 4, 2, combine, mode, torch.randn(n_items, 5), position=adj.position,
                     adapter=AdapterSpec(2, 6, False) if mode == "adapter" else None)
    users, items = model.final_embeddings(adj)
    with torch.no_grad():
        ego_items, ego_users = model.item_vectors(), model.user_vectors()
    for i in cold:
        assert torch.equal(items[i], ego_items[i])
        assert torch.allclose(users @ items[i], users @ ego_items[i])
    propagated = propagate_all(adj, model.ego().detach(), 2, combine).index_select(0, adj.position)
    warm = [i for i in range(n_items) if i not in cold]
    assert torch.allclose(items[warm], propagated[n_users:][warm])
    assert torch.allclose(users, propagated[:n_users])
    assert not torch.allclose(propagated[n_users:][cold], ego_items[cold])  # what the rule replaced
    assert ego_users.shape == users.shape


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_weight_decay_leaves_cold_item_vectors_as_they_started(tiny_config, name: str) -> None:
    cfg = tiny_config("data.cold_items=0.2", f"optim.name={name}", "optim.weight_decay=0.1", "run.epochs=2",
                      "optim.warmup_epochs=0", "optim.item_lr=1e-2")
    run, how = train_to_end(cfg)
    assert how == "done"
    cold = sorted(set(range(run.dataset.n_items)) - set(run.dataset.train[:, 1].tolist()))
    warm = sorted(set(range(run.dataset.n_items)) - set(cold))
    assert len(cold) == round(0.2 * run.dataset.n_items)
    with torch.no_grad():
        items = run.model.item_vectors()
    start = torch.from_numpy(run.dataset.pretrained)  # the items' text start, in item order
    assert torch.equal(items[cold], start[cold])
    assert not torch.allclose(items[warm], start[warm])


def test_the_text_baseline_equals_a_hand_computation() -> None:
    text = np.array([[1, 0], [0, 1], [0.8, 0.6], [0.6, 0.8]], dtype=np.float32)
    dataset = build_dataset("toy", {"train": ([0, 1, 1], [0, 1, 3]), "test": ([0, 1], [3, 2])})
    dataset.pretrained = text * np.array([[2], [1], [3], [1]], dtype=np.float32)  # lengths do not matter
    # user 0 = (1, 0): cosines i1 0, i2 0.8, i3 0.6 -> ranks i2, i3; its test item i3 is second
    # user 1 = mean(i1, i3) = (0.3, 0.9): cosines i0 0.32, i2 0.82 -> its test item i2 is first
    known = KnownItems.of(known_items(dataset, "test"), dataset.n_users, torch.device("cpu"))
    got = means(*text_sums(dataset, known, dataset.test, [1, 2], chunk=1))
    assert got == pytest.approx({"recall@1": 0.5, "recall@2": 1.0, "ndcg@1": 0.5,
                                 "ndcg@2": (1 / math.log2(3) + 1) / 2})


def test_runs_report_the_text_baseline_and_random_items_cannot_score_cold_ones(tiny_config) -> None:
    text, random = Recording(), Recording()
    train_to_end(tiny_config("data.cold_items=0.2", "run.epochs=1"), text)
    train_to_end(tiny_config("data.cold_items=0.2", "run.epochs=1", "model.item_init=xavier"), random)
    baselines = lambda r: {(e.model, e.split) for e in r.events if isinstance(e, ev.EvalResult) and e.model != "lightgcn"}
    assert baselines(text) == {(m, s) for m in ("popularity", "text") for s in ("valid", "test")}
    assert baselines(random) == {("popularity", "valid"), ("popularity", "test")}
    warnings = lambda r: [e.text for e in r.events if isinstance(e, ev.Message) and e.level == "warning"]
    assert any(w.startswith("data.cold_items = 0.2: 18 of 89 items held out") for w in warnings(text))
    assert not any("cannot score cold items" in w for w in warnings(text))
    assert any(w.startswith("cannot score cold items") for w in warnings(random))
    cold_keys = lambda r: {k for e in r.events if isinstance(e, ev.EvalResult) and e.model == "lightgcn"
                           for k in e.metrics if k.endswith("/cold")}
    assert "recall@20/cold" in cold_keys(text) and cold_keys(random) == set()  # not ranked by noise
