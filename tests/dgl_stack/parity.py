"""Measure how closely the DGL backend follows the default one, on a real graph; print JSON.

Run inside the DGL environment (``tests/dgl_stack/env.py``) with the repository on
``PYTHONPATH``; ``tests/test_dgl_parity.py`` does that and asserts on the numbers. This
script only measures: every figure is a largest absolute difference (or the values
compared), so the tolerances live in one place, the test.

References are independent of both backends: Â written out densely in float64 from the
training pairs, its powers applied to the vectors, and the gradient of a weighted sum of
output rows written as a sum of ``(Âᵀ)^k`` products.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lgcn_tui import config, data
from lgcn_tui.graph.adjacency import build_adjacency
from lgcn_tui.graph.backend import make_backend
from lgcn_tui.contract import events as ev
from lgcn_tui.run.lifecycle import Run

LAYERS = 3
DIM = 64
CPU = torch.device("cpu")


def dense_adjacency(train: np.ndarray, n_users: int, n_items: int, norm: str) -> np.ndarray:
    """Â from a dense 0/1 matrix, the textbook way, in float64."""
    n = n_users + n_items
    a = np.zeros((n, n))
    a[train[:, 0], n_users + train[:, 1]] = 1.0
    a[n_users + train[:, 1], train[:, 0]] = 1.0
    deg = a.sum(1)
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    if norm == "symmetric":
        return np.sqrt(inv)[:, None] * a * np.sqrt(inv)[None, :]
    return inv[:, None] * a


def sequential_layers(a: np.ndarray, ego: np.ndarray, n_users: int, layers: int) -> list[np.ndarray]:
    """The recipe's order: items from users, then users from the new items, per layer."""
    hu, hi = ego[:n_users], ego[n_users:]
    out = [ego]
    for _ in range(layers):
        hi = a[n_users:, :n_users] @ hu
        hu = a[:n_users, n_users:] @ hi
        out.append(np.concatenate([hu, hi]))
    return out


def combined(layer_outputs: list[np.ndarray], combine: str) -> np.ndarray:
    return layer_outputs[-1] if combine == "last" else np.mean(layer_outputs, axis=0)


def maxdiff(a: Any, b: Any) -> float:
    a = a.detach().double().numpy() if isinstance(a, torch.Tensor) else a
    b = b.detach().double().numpy() if isinstance(b, torch.Tensor) else b
    return float(np.abs(a - b).max())


def propagation_checks(dataset: Any, norm: str, rng: np.random.Generator) -> dict[str, Any]:
    """Layer outputs and gradients of every backend against the dense references."""
    n_users, n = dataset.n_users, dataset.n_users + dataset.n_items
    # Node order, as the DGL backends propagate (the model uses the same for them).
    adj = build_adjacency(dataset.train, n_users, dataset.n_items, norm, reorder=False)
    a = dense_adjacency(dataset.train, n_users, dataset.n_items, norm)
    backends = {name: make_backend(name, dataset.train, n_users, dataset.n_items, norm, CPU)
                for name in ("torch", "dgl", "dgl-sequential")}
    ego64 = rng.standard_normal((n, DIM)) * 0.1
    ego = torch.from_numpy(ego64.astype(np.float32))
    paper = [ego.double().numpy()]
    for _ in range(LAYERS):
        paper.append(a @ paper[-1])
    seq = sequential_layers(a, ego.double().numpy(), n_users, LAYERS)
    result: dict[str, Any] = {"scale": [float(np.abs(x).max()) for x in paper], "layers": {}, "grads": {}}
    for k in range(1, LAYERS + 1):
        outs = {name: b.all(adj, ego, k, "last") for name, b in backends.items()}
        result["layers"][str(k)] = {
            "torch_vs_ref": maxdiff(outs["torch"], paper[k]),
            "dgl_vs_ref": maxdiff(outs["dgl"], paper[k]),
            "dgl_vs_torch": maxdiff(outs["dgl"], outs["torch"]),
            "sequential_vs_its_ref": maxdiff(outs["dgl-sequential"], seq[k]),
            "sequential_vs_paper": maxdiff(outs["dgl-sequential"], paper[k]),
        }
    rows = torch.from_numpy(np.sort(rng.choice(n, size=600, replace=False)))
    weights = torch.from_numpy(rng.standard_normal((len(rows), DIM)).astype(np.float32))
    for combine in ("mean", "last"):
        # d/d ego of sum(W ⊙ out[rows]) = Σ_k c_k (Âᵀ)^k Sᵀ W, with c_k = 1/(K+1) (mean) or [k = K] (last).
        coeff = [1 / (LAYERS + 1)] * (LAYERS + 1) if combine == "mean" else [0.0] * LAYERS + [1.0]
        g = np.zeros((n, DIM))
        g[rows.numpy()] = weights.double().numpy()
        ref = np.zeros((n, DIM))
        for c in coeff:
            ref += c * g
            g = a.T @ g
        grads = {}
        for name in ("torch", "dgl"):
            leaf = ego.clone().requires_grad_(True)
            out, ego_rows = backends[name].rows(adj, leaf, rows, LAYERS, combine)
            assert torch.equal(ego_rows, ego[rows])
            (out * weights).sum().backward()
            grads[name] = leaf.grad
        u = slice(0, n_users)
        i = slice(n_users, n)
        result["grads"][combine] = {
            "scale": float(np.abs(ref).max()),
            "torch_vs_ref_user": maxdiff(grads["torch"][u], ref[u]),
            "torch_vs_ref_item": maxdiff(grads["torch"][i], ref[i]),
            "dgl_vs_ref_user": maxdiff(grads["dgl"][u], ref[u]),
            "dgl_vs_ref_item": maxdiff(grads["dgl"][i], ref[i]),
            "dgl_vs_torch_user": maxdiff(grads["dgl"][u], grads["torch"][u]),
            "dgl_vs_torch_item": maxdiff(grads["dgl"][i], grads["torch"][i]),
        }
    return result


class Collect:
    """A sink that keeps the step and evaluation events."""

    def __init__(self) -> None:
        self.steps: list[ev.StepMetrics] = []
        self.evals: list[ev.EvalResult] = []

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepMetrics):
            self.steps.append(event)
        elif isinstance(event, ev.EvalResult) and event.model == "lightgcn":
            self.evals.append(event)

    def flush(self) -> None: ...

    def close(self) -> None: ...


def training_checks(data_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The same short run through ``Run.train`` with each backend: losses, parameters, metrics."""
    runs: dict[str, Any] = {}
    for backend in ("torch", "dgl"):
        cfg = config.resolve({}, "parity", [
            "data.format=recbole", f'data.path="{data_dir}"', "model.item_init=xavier", f"model.dim={DIM}",
            f"model.layers={LAYERS}", "optim.batch_size=32768", "optim.warmup_epochs=0", "optim.user_lr=1e-3",
            "optim.item_lr=1e-3", "run.epochs=2", "run.seed=0", "eval.ks=[10, 20]", "eval.sim_pairs=0",
            f'run.out_dir="{out_dir / backend}"', f"graph.backend={backend}"])
        sink = Collect()
        trainer = Run(cfg, preset="parity", sinks=[sink])
        trainer.setup()
        start = trainer.model.user_vectors().detach().clone()
        state = str(trainer.train())
        trainer.cleanup()
        runs[backend] = {"state": state, "steps": sink.steps, "evals": sink.evals, "start_user": start,
                         "backend": trainer.model.backend.name,
                         "user": trainer.model.user_vectors().detach().clone(),
                         "item": trainer.model.item_vectors().detach().clone()}
    t, d = runs["torch"], runs["dgl"]
    return {
        "states": [t["state"], d["state"]],
        "backends": [t["backend"], d["backend"]],
        "user_moved": maxdiff(t["user"], t["start_user"]),
        "steps": [len(t["steps"]), len(d["steps"])],
        "loss_torch": [s.loss for s in t["steps"]],
        "loss_diff": max(abs(a.loss - b.loss) for a, b in zip(t["steps"], d["steps"])),
        "grad_norm_diff": max(max(abs(a.grad_user - b.grad_user), abs(a.grad_item - b.grad_item))
                              for a, b in zip(t["steps"], d["steps"])),
        "user_diff": maxdiff(t["user"], d["user"]),
        "item_diff": maxdiff(t["item"], d["item"]),
        "metrics_torch": [{"epoch": e.epoch, "split": e.split, **e.metrics} for e in t["evals"]],
        "metrics_dgl": [{"epoch": e.epoch, "split": e.split, **e.metrics} for e in d["evals"]],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the ml-100k folder (RecBole atomic files)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON report")
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = config.resolve({}, "parity", ["data.format=recbole", f'data.path="{args.data}"', "model.item_init=xavier"])
    dataset = data.load(cfg)
    report: dict[str, Any] = {
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "dgl": importlib.metadata.version("dgl"),
                     "numpy": np.__version__},
        "graph": {"users": dataset.n_users, "items": dataset.n_items, "edges": len(dataset.train)},
        "propagation": {norm: propagation_checks(dataset, norm, np.random.default_rng(0))
                        for norm in ("symmetric", "mean")},
    }
    with tempfile.TemporaryDirectory() as tmp:
        report["training"] = training_checks(args.data, Path(tmp))
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
