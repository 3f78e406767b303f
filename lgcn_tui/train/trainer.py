"""The training loop: plain Python, steerable by commands, observable through events.

One loop from top to bottom: set up, then for each epoch draw the epoch's triples, step
through them, evaluate on a schedule, checkpoint. Between steps the trainer drains its
command queue (pause, resume, checkpoint, set_lr, evaluate, stop); everything it does is
published as typed events to its sinks. It never imports a UI toolkit and runs in any
thread.

Exact resume: the sampler's generator state at the start of the epoch is saved with the
step inside the epoch, so a resumed run redraws the same triples and skips those done.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config
from ..data.dataset import Dataset
from ..errors import UserError
from ..graph.adjacency import Adjacency, build_adjacency
from ..graph.backend import make_backend
from ..model.lightgcn import LightGCN, bpr_loss
from ..rundir import RunDir
from . import checkpoint as ckpt
from . import events as ev
from .commands import Command
from .diagnostics import retention, sample_pairs, similarity_histogram
from .memory import keep_freed_memory
from .metrics import rank_metrics
from .sampler import NegativeSampler
from .schedule import alpha_at, lr_at

GROUPS = ("user", "item")


@dataclass
class TrainState:
    """Everything besides model and optimiser that a resume must restore."""

    epoch: int = 0
    step_in_epoch: int = 0
    step: int = 0
    epoch_rng: list[int] = field(default_factory=list)
    lr_scale: dict[str, float] = field(default_factory=lambda: {"user": 1.0, "item": 1.0})
    best_value: float = -math.inf
    best_epoch: int = -1
    bad_evals: int = 0
    metrics_offset: int = 0


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("run.device = 'cuda' but PyTorch sees no CUDA device; use run.device=cpu or auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def build_model(cfg: Config, dataset: Dataset, device: torch.device) -> tuple[Adjacency, LightGCN]:
    """Adjacency and model for a config; the same for training, evaluation and export."""
    # DGL propagates over its own graph in node order; only our products use the locality order.
    reorder = cfg.graph.reorder and cfg.graph.backend == "torch"
    adj = build_adjacency(dataset.train, dataset.n_users, dataset.n_items, cfg.graph.norm, reorder).to(device)
    backend = make_backend(cfg.graph.backend, dataset.train, dataset.n_users, dataset.n_items, cfg.graph.norm, device)
    torch.manual_seed(cfg.run.seed)
    pretrained = torch.from_numpy(dataset.pretrained) if dataset.pretrained is not None else None
    model = LightGCN(dataset.n_users, dataset.n_items, cfg.model.dim, cfg.model.layers, cfg.model.combine,
                     cfg.model.item_mode, pretrained, backend, adj.position).to(device)
    return adj, model


def grad_norm(grad: torch.Tensor) -> float:
    """L2 norm of a gradient as ``√(g·g)``: a BLAS dot is 3× faster than ``Tensor.norm`` on
    CPU, where a Gowalla step spent 2 ms on the two norms. Like ``norm``, it is inf once the
    squares overflow float32, which the NaN/inf check then catches."""
    flat = grad.reshape(-1)
    return math.sqrt(torch.dot(flat, flat).item())


def known_items(dataset: Dataset, split: str) -> np.ndarray:
    """Pairs masked when ranking ``split``: training items, and for ``test`` validation items too."""
    return dataset.train if split == "valid" else np.concatenate([dataset.train, dataset.valid])


def evaluate_split(model: LightGCN, adj: Adjacency, dataset: Dataset, split: str, ks: list[int],
                   chunk: int, should_stop=lambda: False) -> dict[str, float] | None:
    """Full-ranking metrics on ``valid`` (train masked) or ``test`` (train and valid masked)."""
    users, items = model.final_embeddings(adj)
    known = known_items(dataset, split)
    items_t = items.T.contiguous()
    # One score buffer for all chunks: a fresh 1024 × n_items tensor per chunk spends a third
    # of the evaluation faulting in new pages. Its rows start on 64-byte boundaries: with an
    # odd row length (Gowalla's 40,981 items) the product into it took twice the CPU time.
    width = -(-dataset.n_items // 16) * 16
    buffer = torch.empty(min(chunk, dataset.n_users), width, device=users.device)[:, : dataset.n_items]

    def score(u: torch.Tensor) -> torch.Tensor:
        out = buffer[: len(u)]
        return torch.mm(users.index_select(0, u.to(users.device)), items_t, out=out)

    return rank_metrics(score, dataset.n_users, dataset.n_items, known, getattr(dataset, split), ks, chunk,
                        should_stop)


def popularity_metrics(dataset: Dataset, split: str, ks: list[int], chunk: int) -> dict[str, float]:
    """The baseline every model must beat: rank items by training popularity for everyone."""
    counts = torch.from_numpy(np.bincount(dataset.train[:, 1], minlength=dataset.n_items)).float()
    known = known_items(dataset, split)
    result = rank_metrics(lambda u: counts.expand(len(u), -1).clone(), dataset.n_users, dataset.n_items,
                          known, getattr(dataset, split), ks, chunk)
    assert result is not None
    return result


class Trainer:
    def __init__(self, cfg: Config, run: RunDir, dataset: Dataset, sinks: list[ev.Sink],
                 commands: "queue.Queue[Command] | None" = None, preset: str = "",
                 resume_from: Path | None = None) -> None:
        keep_freed_memory()
        if cfg.run.threads:
            # Process-wide: on a 2-core machine shared with other jobs, one thread made a small
            # model's step 5x faster than two (measured), as OpenMP threads wait on each other.
            torch.set_num_threads(cfg.run.threads)
        self.cfg, self.run_dir, self.dataset, self.sinks = cfg, run, dataset, sinks
        self.commands: queue.Queue[Command] = commands if commands is not None else queue.Queue()
        self.preset = preset
        self.device = pick_device(cfg.run.device)
        self.amp = cfg.run.amp and self.device.type == "cuda"
        self._check_splits()
        self.adj, self.model = build_model(cfg, dataset, self.device)
        self.sampler = NegativeSampler(dataset.train, dataset.n_users, dataset.n_items)
        self.steps_per_epoch = math.ceil(len(dataset.train) / cfg.optim.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.run.epochs
        self.optimizer = self._optimizer()
        self.generator = torch.Generator().manual_seed(cfg.run.seed)
        self.pairs = sample_pairs(dataset.n_items, cfg.eval.sim_pairs, cfg.run.seed) if cfg.eval.sim_pairs else None
        self.state = TrainState(epoch_rng=self.generator.get_state().tolist())
        self.resumed = resume_from is not None
        self.paused = False
        if resume_from is not None:
            self._restore(ckpt.load(resume_from), resume_from)

    # ----- set-up -------------------------------------------------------------------
    def _check_splits(self) -> None:
        split = self.cfg.eval.best_metric.split("/")[0]
        if len(getattr(self.dataset, split)) == 0:
            other = "test" if split == "valid" else "valid"
            raise UserError(f"eval.best_metric = {self.cfg.eval.best_metric!r} but the dataset has no "
                            f"{split} interactions; set eval.best_metric={other}/"
                            f"{self.cfg.eval.best_metric.split('/')[1]}")
        if len(self.dataset.train) == 0:
            raise UserError(f"dataset {self.dataset.name!r} has no training interactions")

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        groups = [
            {"params": [self.model.user], "lr": o.user_lr, "name": "user"},
            {"params": [self.model.item], "lr": o.item_lr, "name": "item"},
        ]
        if o.name == "adafactor":
            return torch.optim.Adafactor(groups, lr=o.user_lr, weight_decay=o.weight_decay)
        cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
        # The fused kernel updates the dense 70k×d tables in one pass: ~6x faster than the loop.
        # On CPU it needs torch 2.4; the DGL test stack (torch 2.2) takes the loop there.
        fused = self.device.type == "cuda" or torch.__version__ >= (2, 4)
        return cls(groups, lr=o.user_lr, weight_decay=o.weight_decay, fused=fused)

    def _restore(self, payload: dict[str, Any], path: Path) -> None:
        if payload.get("dataset") != self.dataset.stats():
            raise UserError(f"checkpoint {path} was made on a dataset of {payload.get('dataset')} but the "
                            f"config now loads {self.dataset.stats()}; resume with the run's own config")
        ckpt.restore_model(self.model, payload["model"], path)
        self.optimizer.load_state_dict(payload["optimizer"])
        self.state = TrainState(**payload["state"])
        self.generator.set_state(torch.tensor(self.state.epoch_rng, dtype=torch.uint8))
        if self.run_dir.metrics.exists():
            with open(self.run_dir.metrics, "r+b") as fh:
                fh.truncate(self.state.metrics_offset)

    # ----- schedules ----------------------------------------------------------------
    def lr(self, group: str, step: int) -> float:
        o = self.cfg.optim
        warmup = round(o.warmup_epochs * self.steps_per_epoch)
        base = o.user_lr if group == "user" else o.item_lr
        start = 0 if group == "user" else o.item_start_epoch * self.steps_per_epoch
        return self.state.lr_scale[group] * lr_at(step, base, warmup, self.total_steps, o.min_lr, start)

    def alpha(self, epoch: int) -> float | None:
        m = self.cfg.model
        return alpha_at(epoch, m.alpha0, m.alpha_decay, m.alpha_min) if m.item_mode == "residual" else None

    def schedule_info(self) -> dict[str, Any]:
        o = self.cfg.optim
        return {"user_lr": o.user_lr, "item_lr": o.item_lr, "min_lr": o.min_lr,
                "warmup_steps": round(o.warmup_epochs * self.steps_per_epoch),
                "item_start_step": o.item_start_epoch * self.steps_per_epoch,
                "total_steps": self.total_steps, "lr_scale": dict(self.state.lr_scale)}

    # ----- events -------------------------------------------------------------------
    def publish(self, event: ev.Event) -> None:
        for sink in self.sinks:
            sink.handle(event)

    def _state(self, name: str) -> None:
        self.publish(ev.StateChanged(state=name, epoch=self.state.epoch, step=self.state.step))

    # ----- checkpoints --------------------------------------------------------------
    def save(self, reason: str) -> Path:
        for sink in self.sinks:
            sink.flush()
        self.state.metrics_offset = self.run_dir.metrics.stat().st_size if self.run_dir.metrics.exists() else 0
        payload = {
            "version": 1,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "state": dataclasses.asdict(self.state),
            "config": self.cfg.to_dict(),
            "dataset": self.dataset.stats(),
            "reason": reason,
        }
        path = ckpt.step_path(self.run_dir.checkpoints, self.state.step, reason)
        ckpt.save_atomic(payload, path)
        if reason == "epoch":
            ckpt.prune(self.run_dir.checkpoints, self.cfg.checkpoint.keep_last)
        if reason == "best":
            path.replace(self.run_dir.best)
            path = self.run_dir.best
        self.publish(ev.CheckpointSaved(path=str(path), reason=reason, epoch=self.state.epoch, step=self.state.step))
        return path

    # ----- commands -----------------------------------------------------------------
    def _handle(self, command: Command) -> bool:
        """Apply one command; returns True when the run must stop."""
        self.publish(ev.CommandReceived(command=command.name, args=command.to_dict(), source=command.source))
        if command.name == "pause" and not self.paused:
            self.paused = True
            self._state("paused")
        elif command.name == "resume" and self.paused:
            self.paused = False
            self._state("running")
        elif command.name == "checkpoint":
            self.save("manual")
        elif command.name == "set_lr":
            self._set_lr(command.group or "item", float(command.lr or 0.0))
        elif command.name == "evaluate":
            self.evaluate()
        elif command.name == "stop":
            if command.save:
                self.save("stop")
            return True
        return False

    def _set_lr(self, group: str, lr: float) -> None:
        self.state.lr_scale[group] = 1.0
        scheduled = self.lr(group, self.state.step)
        o = self.cfg.optim
        base = o.user_lr if group == "user" else o.item_lr
        self.state.lr_scale[group] = lr / (scheduled if scheduled > 0 else base)
        self._apply_lr()
        self.publish(ev.LrChanged(group=group, lr=lr, step=self.state.step, source="command"))

    def _apply_lr(self) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr(g["name"], self.state.step)

    def _poll(self) -> bool:
        """Drain commands; while paused, wait for more. Returns True when the run must stop."""
        while True:
            try:
                command = self.commands.get(block=self.paused, timeout=0.2 if self.paused else None)
            except queue.Empty:
                if self.paused:
                    continue
                return False
            if self._handle(command):
                return True
            if not self.paused and self.commands.empty():
                return False

    def _stop_requested(self) -> bool:
        """During a long evaluation only a stop is acted on; other commands wait their turn."""
        pending = list(self.commands.queue)
        return any(c.name == "stop" for c in pending)

    # ----- evaluation ---------------------------------------------------------------
    def evaluate(self) -> None:
        self._state("evaluating")
        self.model.eval()
        e = self.cfg.eval
        results: dict[str, tuple[dict[str, float], float]] = {}
        for split in ("valid", "test"):
            if not len(getattr(self.dataset, split)):
                continue
            started = time.perf_counter()
            metrics = evaluate_split(self.model, self.adj, self.dataset, split, e.ks, e.chunk_users,
                                     self._stop_requested)
            if metrics is None:
                self.model.train()
                self._state("running")
                return
            results[split] = metrics, time.perf_counter() - started
        best_split, metric = e.best_metric.split("/")
        value = results[best_split][0][metric]
        improved = value > self.state.best_value
        if improved:
            self.state.best_value, self.state.best_epoch, self.state.bad_evals = value, self.state.epoch, 0
        else:
            self.state.bad_evals += 1
        for split, (metrics, seconds) in results.items():
            self.publish(ev.EvalResult(epoch=self.state.epoch, step=self.state.step, split=split,
                                       metrics=metrics, best=improved, seconds=seconds))
        self._diagnostics()
        if improved:
            self.save("best")
        self.model.train()
        self._state("paused" if self.paused else "running")

    @torch.no_grad()
    def _diagnostics(self) -> None:
        items = self.model.item_vectors()
        keep, p10 = retention(items, self.model.item_start)
        edges, counts = ([], [])
        if self.pairs is not None:
            edges, counts = similarity_histogram(items, self.pairs.to(items.device), self.cfg.eval.sim_bins)
        self.publish(ev.Diagnostics(epoch=self.state.epoch, step=self.state.step, retention=keep,
                                    retention_p10=p10, sim_edges=edges, sim_counts=counts))

    def baselines(self) -> None:
        for split in ("valid", "test"):
            if len(getattr(self.dataset, split)):
                metrics = popularity_metrics(self.dataset, split, self.cfg.eval.ks, self.cfg.eval.chunk_users)
                self.publish(ev.EvalResult(epoch=0, step=0, split=split, metrics=metrics, model="popularity"))

    # ----- the loop -----------------------------------------------------------------
    def _step(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> ev.StepMetrics | None:
        """One optimiser step; returns None (and leaves the parameters untouched) on NaN/inf."""
        o = self.cfg.optim
        self._apply_lr()
        items = torch.cat([pos, neg]).to(self.device)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            u, i, eu, ei = self.model(self.adj, users.to(self.device), items)
            (pos_out, neg_out), (pos_ego, neg_ego) = i.split(len(users)), ei.split(len(users))
            bpr, reg = bpr_loss(u, pos_out, neg_out, eu, pos_ego, neg_ego, o.reg)
            loss = bpr + reg
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.state.epoch < o.item_start_epoch:
            self.model.item.grad = None
        params = {"user": self.model.user, "item": self.model.item}
        norms = {g: (grad_norm(p.grad) if p.grad is not None else 0.0) for g, p in params.items()}
        if not all(math.isfinite(x) for x in (loss.item(), *norms.values())):
            return None
        total = math.hypot(*norms.values())
        if o.clip_norm and total > o.clip_norm:
            for p in params.values():
                if p.grad is not None:
                    p.grad.mul_(o.clip_norm / (total + 1e-6))
        self.optimizer.step()
        alpha = self.alpha(self.state.epoch)
        return ev.StepMetrics(epoch=self.state.epoch, step=self.state.step, loss=loss.item(), bpr=bpr.item(),
                              reg=reg.item(), grad_user=norms["user"], grad_item=norms["item"],
                              lr_user=self.optimizer.param_groups[0]["lr"],
                              lr_item=self.optimizer.param_groups[1]["lr"], alpha=alpha)

    def _nan(self) -> None:
        path = self.save("nan")
        self.paused = True
        self.publish(ev.Message(level="error", checkpoint=str(path),
                                text=f"loss or gradient became NaN/inf at epoch {self.state.epoch} step "
                                     f"{self.state.step}; paused with the last good state saved to {path}. "
                                     "Lower a learning rate and resume, or stop."))
        self._state("paused")

    def run_safely(self) -> str:
        """``run``, but an unexpected failure is published, with a checkpoint if one can be written."""
        try:
            return self.run()
        except Exception as exc:
            saved: str | None = None
            try:
                saved = str(self.save("error"))
            except Exception as save_exc:  # noqa: BLE001 - the original failure matters more
                self.publish(ev.Message(level="warning", text=f"could not save a checkpoint: {save_exc}"))
            where = f"; last checkpoint: {saved}" if saved else ""
            self.publish(ev.Message(level="error", text=f"training failed: {type(exc).__name__}: {exc}{where}",
                                    checkpoint=saved))
            self._state("error")
            raise

    def run(self) -> str:
        """Train to the end (or until stopped); returns the final state: done or stopped."""
        s, cfg = self.state, self.cfg
        self.publish(ev.RunStarted(run_dir=str(self.run_dir.path), name=cfg.run.name, preset=self.preset,
                                   dataset=self.dataset.stats(), device=device_label(self.device),
                                   item_mode=cfg.model.item_mode if cfg.model.item_init == "pretrained" else "xavier",
                                   epochs=cfg.run.epochs, steps_per_epoch=self.steps_per_epoch,
                                   start_step=s.step, resumed=self.resumed, clip_norm=cfg.optim.clip_norm,
                                   schedule=self.schedule_info()))
        for note in self.dataset.notes:
            self.publish(ev.Message(level="warning", text=note))
        if not self.resumed:
            self.baselines()
        self._state("running")
        self.model.train()
        while s.epoch < cfg.run.epochs:
            self.generator.set_state(torch.tensor(s.epoch_rng, dtype=torch.uint8))
            users, pos, neg = self.sampler.epoch(self.generator)
            alpha = self.alpha(s.epoch)
            if alpha is not None:
                self.model.set_alpha(alpha)
            started, losses = time.perf_counter(), []
            bs = cfg.optim.batch_size
            while s.step_in_epoch < self.steps_per_epoch:
                if (self.paused or not self.commands.empty()) and self._poll():
                    self._state("stopped")
                    return "stopped"
                sl = slice(s.step_in_epoch * bs, (s.step_in_epoch + 1) * bs)
                metrics = self._step(users[sl], pos[sl], neg[sl])
                if metrics is None:
                    self._nan()
                    continue
                losses.append(metrics.loss)
                self.publish(metrics)
                s.step_in_epoch += 1
                s.step += 1
            self.publish(ev.EpochEnd(epoch=s.epoch, step=s.step, mean_loss=float(np.mean(losses)) if losses else math.nan,
                                     seconds=time.perf_counter() - started))
            s.epoch += 1
            s.step_in_epoch = 0
            s.epoch_rng = self.generator.get_state().tolist()
            if s.epoch % cfg.eval.every == 0 or s.epoch == cfg.run.epochs:
                self.evaluate()
            self.save("epoch")
            if cfg.eval.patience and s.bad_evals >= cfg.eval.patience:
                self.publish(ev.Message(level="info", text=f"early stop: {cfg.eval.best_metric} has not improved "
                                                           f"for {s.bad_evals} evaluations (best at epoch {s.best_epoch})"))
                break
        self._state("done")
        return "done"
