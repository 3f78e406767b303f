"""The adapter item mode: items are a trainable MLP of frozen text vectors, trained through the graph.

Its gradients are checked against a plain reference (a dense Â, the MLP written out by hand,
autograd), and runs with it train, resume, save and export like the other modes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import Recording, train_to_end

from lgcn_tui import config, data
from lgcn_tui.contract import events as ev
from lgcn_tui.errors import UserError
from lgcn_tui.graph.adjacency import build_adjacency
from lgcn_tui.model.adapter import AdapterSpec
from lgcn_tui.model.lightgcn import LightGCN
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.run.loader import build_model, load_model

N_USERS, N_ITEMS, TEXT, DIM = 5, 7, 10, 4


def dense_adjacency(pairs: np.ndarray) -> torch.Tensor:
    """D^-1/2 A D^-1/2 of the bipartite graph, in node order, written out."""
    a = torch.zeros(N_USERS + N_ITEMS, N_USERS + N_ITEMS, dtype=torch.float64)
    for u, i in pairs:
        a[u, N_USERS + i] = a[N_USERS + i, u] = 1.0
    deg = a.sum(1)
    scale = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    return scale[:, None] * a * scale[None, :]


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("combine", ["mean", "hops", "last"])
def test_adapter_gradients_equal_a_dense_autograd_reference(combine: str, residual: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    pairs = np.unique(np.stack([np.arange(16) % N_USERS, (np.arange(16) * 3) % N_ITEMS], 1), axis=0)
    adj = build_adjacency(pairs, N_USERS, N_ITEMS, "symmetric", reorder=True)
    text = torch.randn(N_ITEMS, TEXT, generator=gen)
    torch.manual_seed(0)
    model = LightGCN(N_USERS, N_ITEMS, DIM, 2, combine, "adapter", text, position=adj.position,
                     adapter=AdapterSpec(layers=2, hidden=6, residual=residual))
    with torch.no_grad():  # a residual away from its zero start, so its part of the sum shows
        model.item.add_(0.1 * torch.randn(N_ITEMS, DIM, generator=gen))
    users, items = torch.tensor([0, 3, 4, 3]), torch.tensor([1, 6, 2, 0, 5, 5, 2, 1])
    weights = [torch.randn(4, DIM, generator=gen), torch.randn(8, DIM, generator=gen),
               torch.randn(4, DIM, generator=gen), torch.randn(8, DIM, generator=gen)]
    out = model(adj, users, items)
    sum((o * w).sum() for o, w in zip(out[:4], weights)).backward()

    first, second = model.adapter.net[0], model.adapter.net[2]
    w1, b1, w2, b2 = (p.detach().double().requires_grad_() for p in (first.weight, first.bias, second.weight, second.bias))
    residual_rows = model.item.detach().double()[adj.position[N_USERS:] - N_USERS].requires_grad_()
    user_rows = model.user_vectors().detach().double().requires_grad_()
    mapped = F.leaky_relu(text.double() @ w1.T + b1) @ w2.T + b2
    ego = torch.cat([user_rows, mapped + residual_rows if residual else mapped])
    a = dense_adjacency(pairs)
    layers = [ego, a @ ego, a @ a @ ego]
    final = {"mean": sum(layers) / 3, "hops": (layers[1] + layers[2]) / 2, "last": layers[2]}[combine]
    nodes_u, nodes_i = users, items + N_USERS
    ref = [final[nodes_u], final[nodes_i], ego[nodes_u], ego[nodes_i]]
    sum((o * w.double()).sum() for o, w in zip(ref, weights)).backward()

    for mine, theirs in ((first.weight, w1), (first.bias, b1), (second.weight, w2), (second.bias, b2)):
        assert torch.allclose(mine.grad.double(), theirs.grad, atol=1e-5)
    assert torch.allclose(model.user.grad.double()[adj.position[:N_USERS]], user_rows.grad, atol=1e-5)
    if residual:
        assert torch.allclose(model.item.grad.double()[adj.position[N_USERS:] - N_USERS], residual_rows.grad, atol=1e-5)
    else:
        assert model.item.grad is None


def test_the_adapter_maps_the_text_width_to_model_dim_and_users_can_start_at_their_items(tiny_config) -> None:
    cfg = tiny_config("model.item_mode=adapter", "model.dim=8", "model.adapter_layers=3", "model.adapter_hidden=5",
                      "model.user_init=item_mean")
    dataset = data.load(cfg)
    _, model = build_model(cfg, dataset, torch.device("cpu"))
    widths = [(m.in_features, m.out_features) for m in model.adapter.net if isinstance(m, torch.nn.Linear)]
    assert widths == [(16, 5), (5, 5), (5, 8)]
    items = model.item_vectors().detach()
    assert items.shape == (dataset.n_items, 8)
    users = model.user_vectors().detach()
    for u in (0, 7, 42):
        mine = dataset.train[dataset.train[:, 0] == u, 1]
        assert torch.allclose(users[u], items[mine].mean(0), atol=1e-6)


def test_group_params_put_the_adapter_in_the_item_group() -> None:
    torch.manual_seed(0)
    model = LightGCN(N_USERS, N_ITEMS, DIM, 2, "mean", "adapter", torch.randn(N_ITEMS, TEXT),
                     adapter=AdapterSpec(2, 6, False))
    groups = model.group_params()
    assert groups["user"] == [model.user]
    assert {id(p) for p in groups["item"]} == {id(model.item), *(id(p) for p in model.adapter.parameters())}


def test_user_init_item_mean_needs_text() -> None:
    with pytest.raises(UserError, match="model.user_init = 'item_mean'"):
        config.resolve({}, "test", ["model.item_init=xavier", "model.user_init=item_mean"])
    with pytest.raises(UserError, match="model.item_mode = 'adapter' needs pretrained"):
        config.resolve({}, "test", ["model.item_init=xavier", "model.item_mode=adapter"])


def test_training_moves_the_adapter_and_its_gradient_is_the_item_groups_norm(tiny_config) -> None:
    cfg = tiny_config("model.item_mode=adapter", "model.dim=8", "optim.clip_norm=0", "run.epochs=2",
                      "optim.item_lr=1e-2", "optim.warmup_epochs=0")
    recorder = Recording()
    run = Run(cfg, preset="test", sinks=[recorder])
    run.setup()
    start = {k: v.detach().clone() for k, v in run.model.adapter.state_dict().items()}
    seen: list[float] = []
    step = run.optimizer.step

    def checked_step(*args, **kwargs):
        assert run.model.item.grad is None  # no residual: the item table is not trained
        seen.append(float(torch.sqrt(sum(p.grad.double().pow(2).sum() for p in run.model.adapter.parameters()))))
        return step(*args, **kwargs)

    run.optimizer.step = checked_step  # type: ignore[method-assign]
    try:
        assert run.train() == "done"
    finally:
        run.cleanup()
    recorded = [s.grad_item for s in recorder.of(ev.StepMetrics)]
    assert len(recorded) == len(seen) > 0
    for mine, exact in zip(recorded, seen):
        assert mine == pytest.approx(exact, rel=1e-5) and mine > 0
    moved = [not torch.equal(start[k], v) for k, v in run.model.adapter.state_dict().items()]
    assert all(moved)
    assert not run.model.item.detach().any()  # the unused residual stays zero
    started = recorder.of(ev.RunStarted)[0]
    assert started.item_mode == "adapter"


@pytest.mark.parametrize("overrides", [
    ["objective.loss=bpr"],
    ["objective.loss=softmax"],
    ["objective.terms=[\"reg\", \"simgcl\"]"],
    ["objective.terms=[\"reg\", \"xsimgcl\"]"],
    ["objective.terms=[\"xsimgcl\"]", "objective.cl_noisy_ranking=true"],
])
def test_the_adapter_trains_under_every_objective(tiny_config, overrides: list[str]) -> None:
    cfg = tiny_config("model.item_mode=adapter", "model.dim=8", "model.adapter_residual=true", "run.epochs=2",
                      "optim.item_lr=1e-2", "optim.warmup_epochs=0", *overrides)
    recorder = Recording()
    run, how = train_to_end(cfg, recorder)
    assert how == "done"
    steps = recorder.of(ev.StepMetrics)
    assert all(np.isfinite(s.loss) and s.grad_item > 0 for s in steps)
    assert run.model.item.detach().abs().sum() > 0  # the residual moved off zero


def test_a_saved_adapter_run_loads_and_exports_the_vectors_it_trained(tiny_config, tmp_path: Path) -> None:
    cfg = tiny_config("model.item_mode=adapter", "model.dim=8", "model.adapter_residual=true", "run.epochs=1",
                      "optim.item_lr=1e-2", "optim.warmup_epochs=0")
    run, how = train_to_end(cfg)
    assert how == "done" and run.run_dir is not None
    loaded = load_model(run.run_dir.path, "last")
    assert any(k.startswith("adapter.") for k in loaded.model.state_dict())
    with torch.no_grad():
        assert torch.equal(loaded.model.item_vectors(), run.model.item_vectors())
    done = subprocess.run([sys.executable, "-m", "lgcn_tui", "export", str(run.run_dir.path), "--checkpoint", "last"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "120"},
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    exported = run.run_dir.path / "export"
    users, items = run.model.final_embeddings(run.adj)
    assert np.allclose(np.load(exported / "item_emb.npy"), items.numpy(), atol=1e-6)
    assert np.allclose(np.load(exported / "user_emb.npy"), users.numpy(), atol=1e-6)
    with torch.no_grad():
        assert np.allclose(np.load(exported / "item_ego.npy"), run.model.item_vectors().numpy(), atol=1e-6)
    assert np.load(exported / "item_emb.npy").shape[1] == 8

