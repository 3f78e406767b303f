"""The run: one object owns a training run from its first check to its last checkpoint.

``setup()`` checks everything that can fail (config, device, data, objective, the
checkpoint to resume from) before the run directory is created or locked, then builds
graph, model, optimiser and schedule and opens the sinks; ``train()`` is one loop from top
to bottom (draw the epoch's triples, step, evaluate on a schedule, checkpoint);
``save_checkpoint(reason)`` writes what ``run.checkpoints.payload`` says a resume needs;
``cleanup()`` closes the sinks and releases the directory. The headless runner, the
dashboard, ``ablate`` and the tests drive this same object; it never imports a UI toolkit
and runs on any thread.

Steering: commands (``contract.commands``) wait in a queue and are taken at publish points,
every ``run.publish_every`` steps and at least four times a second, where buffered step
metrics also leave as events. Between publish points the host never waits for the device:
a step's loss, terms and gradient norms stay there (``StepRecord``) and are read together
at the next publish point (``_settle``), where the divergence guard checks them in order;
only a state whose steps all passed is kept as good, checkpointed, or ends an epoch.

Exact resume: the sampler's generator state at the start of the epoch is saved with the
step inside the epoch, so a resumed run redraws the same triples and skips those done; the
step-noise generator's state rides along.

Several processes (``torchrun``): every rank runs this same object (``run.distributed``).
Rank 0 alone creates and locks the run directory, writes ``metrics.jsonl`` and replicated
checkpoints, and takes commands; every rank draws the same epoch and trains on rows
``r, r+N, …`` of each global batch of ``optim.batch_size`` (``train.sampler.rank_rows``), so
the numbers do not depend on the world size. One small all-reduce per step adds up the
loss terms (for the log and the guard), the gradient norms and rank 0's flags (commands
waiting, a timed checkpoint due); commands are then broadcast, so every rank applies them
at the same step.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import queue
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import torch

from .. import data, objective, rundir
from ..config import Config
from ..contract import commands as cmd
from ..contract import events as ev
from ..contract.schedule import LrSchedule, alpha_at
from ..contract.state import RunState
from ..errors import UserError
from ..sinks.external import check_extras, external_sinks
from ..sinks.jsonl import JsonlSink
from ..train.diagnostics import retention, sample_pairs, similarity_histogram
from ..train.ranking import (KnownItems, chunk_users, known_items, means, popularity_groups, popularity_sums, split_sums,
                             text_sums)
from ..train.sampler import NegativeSampler, rank_rows
from . import checkpoints as ckpt
from . import distributed, parallel
from .device import device_label, pick_device, prepare_process
from .guard import GoodState, Guard
from .loader import build_model
from .lock import RunLock
from .telemetry import GpuTelemetry

GROUPS = ("user", "item")
# A publish point at least this often (seconds): the dashboard refreshes at 4 Hz.
COMMAND_INTERVAL = 0.25


@dataclass
class TrainState:
    """The counters besides model, optimiser and schedule that a resume must restore."""

    epoch: int = 0
    step_in_epoch: int = 0
    step: int = 0
    epoch_rng: list[int] = field(default_factory=list)
    best_value: float = -math.inf
    best_epoch: int = -1
    bad_evals: int = 0
    metrics_offset: int = 0
    noise_rng: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class StepFlags:
    """What rank 0 tells every rank with each step's all-reduce: commands wait, a timed checkpoint is due."""

    commands: bool = False
    checkpoint: bool = False


@dataclass(frozen=True)
class StepRecord:
    """A step as it left the device: ``figures`` holds the loss, each term and the two
    groups' gradient norms, still on the device until the next publish point reads them all."""

    epoch: int
    step: int
    terms: tuple[str, ...]
    figures: torch.Tensor
    lr_user: float
    lr_item: float
    alpha: float | None


class Settled(Enum):
    """What reading the unchecked steps found: all passed, the run went back to its last good
    state (and carries on from there), or it must stop."""

    FINE = "fine"
    ROLLED_BACK = "rolled back"
    STOP = "stop"


def grad_squares(grads: list[torch.Tensor | None], device: torch.device) -> torch.Tensor:
    """``Σ g·g`` of a group's gradients (None: no gradient), on the device: a BLAS dot is 3×
    faster than ``Tensor.norm`` on CPU, where a Gowalla step spent 2 ms on the two norms. Like
    ``norm``, it is inf once the squares overflow float32, which the NaN/inf check then catches."""
    total = torch.zeros((), device=device)
    for grad in grads:
        if grad is not None:
            flat = grad.reshape(-1)
            total = total + torch.dot(flat, flat).float()
    return total


@contextlib.contextmanager
def rows_kept(table: torch.Tensor, rows: torch.Tensor | None) -> Iterator[None]:
    """Put ``rows`` of ``table`` back as they were after the block (an optimiser step).

    Rows without a gradient are still moved by weight decay (AdamW shrinks every row by
    lr·decay a step; Adam's coupled decay moves them by about a learning rate a step). For
    cold items that would wear their text start down with nothing learned in its place."""
    if rows is None:
        yield
        return
    saved = table.detach().index_select(0, rows)
    yield
    table.detach().index_copy_(0, rows, saved)


class Run:
    """A new run (``directory``: a fixed folder for it, else a fresh one under ``run.out_dir``)
    or a resumed one (``resume``: its run directory; ``checkpoint``: default its newest).

    ``sinks`` receive every event besides ``metrics.jsonl``, which the run always writes.
    ``interactive``: someone is watching (the dashboard), so a diverged run pauses for them
    under ``divergence.policy = auto`` instead of stopping. ``changed``: the ``key: old -> new``
    lines of a resume's ``--set``, logged when it starts.
    """

    def __init__(self, cfg: Config, *, preset: str = "", sinks: Sequence[ev.Sink] = (),
                 directory: Path | None = None, resume: Path | None = None, checkpoint: Path | None = None,
                 break_lock: bool = False, interactive: bool = False, changed: Sequence[str] = ()) -> None:
        self.cfg, self.preset, self.interactive = cfg, preset, interactive
        self.directory, self.resume_dir, self.checkpoint = directory, resume, checkpoint
        self.break_lock = break_lock
        self.commands: queue.Queue[cmd.Command] = queue.Queue()
        self.sinks: list[ev.Sink] = list(sinks)
        self.run_dir: rundir.RunDir | None = None
        self.lock: RunLock | None = None
        self.paused = False
        self.resumed = resume is not None
        self.changed = list(changed)
        self.diverged: str | None = None
        self.rollbacks = 0
        self.state = TrainState()
        self.world = distributed.SOLO
        self._flags = StepFlags()
        self._pending: list[ev.StepMetrics] = []
        self._unchecked: list[StepRecord] = []
        self._epoch_losses: dict[int, float] = {}
        self._notices: list[str] = []
        self._facts: list[str] = []
        self._known_items: dict[str, KnownItems] = {}
        self._last_publish = self._last_checkpoint = time.monotonic()
        self.gpu = GpuTelemetry()

    def send(self, command: cmd.Command) -> None:
        """Queue a command; it is taken at the next publish point (thread-safe)."""
        self.commands.put(command)

    # ----- set-up -------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        self.world, self.device = distributed.start(pick_device(cfg.run.device), cfg.dist.timeout_s)
        prepare_process(cfg.run.threads, cfg.run.deterministic, cfg.run.amp, self.device)
        try:
            self._setup()
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            distributed.stop(self.world)
            raise

    def _setup(self) -> None:
        cfg, world = self.cfg, self.world
        self.amp = cfg.run.amp and self.device.type == "cuda"
        self.dataset = data.load(cfg)
        self._check_splits()
        self.groups = popularity_groups(self.dataset.train, self.dataset.n_items, cfg.eval.head_share)
        self.objective = objective.build(cfg)
        check_extras(cfg)
        saved = self._chosen_checkpoint() if self.resumed else None
        self.adj, self.model = build_model(cfg, self.dataset, self.device, self._facts)
        cfg.graph.kernel = self.adj.kernel
        if cfg.run.amp and self.device.type == "cpu":
            self._facts.append("run.amp does nothing on the CPU: products and scores run in fp32 there")
        self.parallel = parallel.build(self.model, world, cfg.dist.strategy, cfg.objective)
        # Fixed for the run (dist.strategy cannot change on resume), so a run's checkpoints are all alike.
        self.sharded_checkpoints = cfg.dist.strategy == "fsdp"
        self.sampler = NegativeSampler(self.dataset.train, self.dataset.n_users, self.dataset.n_items)
        self.steps_per_epoch = math.ceil(len(self.dataset.train) / cfg.optim.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.run.epochs
        o = cfg.optim
        self.schedule = LrSchedule.plan(o.user_lr, o.item_lr, o.min_lr, o.warmup_epochs, o.item_start_epoch,
                                        self.steps_per_epoch, cfg.run.epochs)
        self.optimizer = self._optimizer()
        self.cold_rows = self._cold_rows()
        self.generator = torch.Generator().manual_seed(cfg.run.seed)
        # Terms that draw their own noise draw different numbers on each rank.
        self.context = objective.Context(self.model, self.adj,
                                         torch.Generator(device=self.device).manual_seed(cfg.run.seed + world.rank))
        self.guard = Guard(cfg.divergence)
        self.pairs = sample_pairs(self.dataset.n_items, cfg.eval.sim_pairs, cfg.run.seed) if cfg.eval.sim_pairs else None
        self.state = TrainState(epoch_rng=self.generator.get_state().tolist())
        self.run_dir = rundir.RunDir(distributed.agree(world, self._claim_directory))
        if saved is not None:
            self._restore(saved)
        if world.leader:
            if self.changed:
                self.run_dir.config.write_text(cfg.to_toml())
                self._notices.append(f"resumed with changed settings (now in {self.run_dir.config}): "
                                     f"{'; '.join(self.changed)}")
            self.sinks.insert(0, JsonlSink(self.run_dir.metrics))
            self.sinks.extend(external_sinks(cfg, self.run_dir, resumed=self.resumed))

    def _claim_directory(self) -> Path:
        """Rank 0: the run directory, created (a new run) and locked; the other ranks learn its path."""
        if self.resume_dir is not None:
            run_dir = rundir.RunDir(self.resume_dir)
        else:
            run_dir = rundir.create(self.cfg, self.preset, self.directory)
        self.lock = RunLock.acquire(run_dir.path, break_lock=self.break_lock, notify=self._notices.append)
        return run_dir.path

    def _chosen_checkpoint(self) -> tuple[Path, dict]:
        """The checkpoint to resume from: rank 0 picks it, every rank reads that file."""
        if self.world.size == 1:
            return self._read_checkpoint()
        path = distributed.agree(self.world, lambda: self._read_checkpoint()[0])
        return path, ckpt.load(path)

    def _check_splits(self) -> None:
        split, metric = self.cfg.eval.best_metric.split("/")
        if len(self.dataset.train) == 0:
            raise UserError(f"dataset {self.dataset.name!r} has no training interactions")
        if len(getattr(self.dataset, split)) == 0:
            other = "test" if split == "valid" else "valid"
            carve = (" or data.carve_valid=auto (hold out each user's last training item)"
                     if split == "valid" and self.cfg.data.carve_valid == "off" else "")
            raise UserError(f"eval.best_metric = {self.cfg.eval.best_metric!r} but the dataset has no "
                            f"{split} interactions; set eval.best_metric={other}/{metric}{carve}")

    def _read_checkpoint(self) -> tuple[Path, dict]:
        """The checkpoint asked for, else the newest one that loads: a kill can leave the newest truncated."""
        if self.checkpoint is not None:
            return self.checkpoint, ckpt.load(self.checkpoint)
        assert self.resume_dir is not None
        folder = rundir.RunDir(self.resume_dir).checkpoints
        refused: list[str] = []
        for _, _, path in reversed(ckpt.listed(folder)):
            try:
                saved = path, ckpt.load(path)
            except UserError as exc:
                refused.append(str(exc))
                continue
            self._notices += [f"{reason}; resuming from {path.name}, the newest that loads" for reason in refused]
            return saved
        why = f": {'; '.join(refused)}" if refused else ""
        raise UserError(f"{folder} holds no checkpoint to resume from{why}")

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        rates = {"user": o.user_lr, "item": o.item_lr}
        groups = [{"params": params, "lr": rates[name], "name": name}
                  for name, params in self.model.group_params().items()]
        if o.name == "adafactor":
            return torch.optim.Adafactor(groups, lr=o.user_lr, weight_decay=o.weight_decay)
        cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
        # The fused kernel updates the dense 70k×d tables in one pass: ~6x faster than the loop.
        # On CPU it needs torch 2.4; the DGL test stack (torch 2.2) takes the loop there.
        fused = self.device.type == "cuda" or torch.__version__ >= (2, 4)
        return cls(groups, lr=o.user_lr, weight_decay=o.weight_decay, fused=fused)

    def _cold_rows(self) -> torch.Tensor | None:
        """Rows of the trained item table that no loss reaches (items without training edges),
        which ``rows_kept`` shields from weight decay; None when there is nothing to shield (an
        adapter's residual starts at zero, where decay leaves it)."""
        rows = self.adj.edgeless_rows
        rows = rows[rows >= self.model.n_users] - self.model.n_users
        trained = self.model.item.requires_grad and self.model.adapter is None
        if not (len(rows) and trained and self.cfg.optim.weight_decay > 0):
            return None
        if self.parallel.sharded:
            self._notices.append(f"optim.weight_decay moves the vectors of the {len(rows)} items without training "
                                 "interactions every step, with no gradient to hold them: under dist.strategy = "
                                 "'fsdp' their rows are sharded and cannot be kept; use dist.strategy = 'ddp' or "
                                 "optim.weight_decay = 0 to keep their text start")
            return None
        return rows

    def _restore(self, saved: tuple[Path, dict]) -> None:
        path, payload = saved
        if payload.get("dataset") != self.dataset.stats():
            raise UserError(f"checkpoint {path} was made on a dataset of {payload.get('dataset')} but the "
                            f"config now loads {self.dataset.stats()}; resume with the run's own config")
        if ckpt.is_sharded(path):
            ckpt.restore_sharded(path, self.model, self.optimizer)
        else:
            ckpt.restore_model(self.model, payload["model"], path)
            self.optimizer.load_state_dict(payload["optimizer"])
        self.state = TrainState(**payload["state"])
        scales = LrSchedule.from_dict(payload["schedule"]).lr_scale
        self.schedule = dataclasses.replace(self.schedule, lr_scale=scales)
        self.generator.set_state(torch.tensor(self.state.epoch_rng, dtype=torch.uint8))
        if self.state.noise_rng and self.world.size == 1:
            self.context.generator.set_state(torch.tensor(self.state.noise_rng, dtype=torch.uint8))
        assert self.run_dir is not None
        if self.world.leader and self.run_dir.metrics.exists():
            with open(self.run_dir.metrics, "r+b") as fh:
                fh.truncate(self.state.metrics_offset)

    def cleanup(self) -> None:
        """Close the sinks (``metrics.jsonl`` made durable) and release the run directory; safe to repeat."""
        self._publish_steps()
        for sink in self.sinks:
            sink.close()
        if self.lock is not None:
            self.lock.release()
        if hasattr(self, "parallel"):
            self.parallel.release()
        distributed.stop(self.world)

    # ----- events -------------------------------------------------------------------
    def publish(self, event: ev.Event) -> None:
        for sink in self.sinks:
            sink.handle(event)

    def _publish_steps(self) -> None:
        pending, self._pending = self._pending, []
        for metrics in pending:
            self.publish(metrics)

    def _announce(self) -> None:
        """Notices from set-up (a lock taken over, a checkpoint that did not load) and facts
        worth a line (the product kernel measured), once the log is open."""
        for note in self._notices:
            self.publish(ev.Message(level="warning", text=note))
        for fact in self._facts:
            self.publish(ev.Message(level="info", text=fact))
        self._notices, self._facts = [], []

    def _state(self, state: RunState) -> None:
        self.publish(ev.StateChanged(state=state, epoch=self.state.epoch, step=self.state.step))

    # ----- checkpoints --------------------------------------------------------------
    def save_checkpoint(self, reason: str) -> Path:
        """Write a checkpoint; its path, on every rank. Replicated tables are alike on every rank,
        so rank 0 writes them alone; under ``dist.strategy = fsdp`` every rank writes its shards
        (``checkpoints.save_sharded``), so every rank must call this at the same step."""
        assert self.run_dir is not None
        folder, leader = self.run_dir.checkpoints, self.world.leader
        path = ckpt.step_path(folder, self.state.step, reason, self.sharded_checkpoints)
        payload = None
        if leader:
            self._publish_steps()
            for sink in self.sinks:
                sink.flush()
            self.state.metrics_offset = self.run_dir.metrics.stat().st_size if self.run_dir.metrics.exists() else 0
            self.state.noise_rng = self.context.generator.get_state().tolist()
            tables = ({}, {}) if self.sharded_checkpoints else (self.model.state_dict(), self.optimizer.state_dict())
            payload = ckpt.payload(model=tables[0], optimizer=tables[1], state=dataclasses.asdict(self.state),
                                   schedule=self.schedule.to_dict(), config=self.cfg.to_dict(),
                                   dataset=self.dataset.stats(), reason=reason)
        if self.sharded_checkpoints:
            ckpt.save_sharded(path, self.model, self.optimizer, payload, leader,
                              lambda: distributed.barrier(self.world))
        elif leader:
            assert payload is not None
            ckpt.save_atomic(payload, path)
        self._last_checkpoint = time.monotonic()
        if reason == "best":
            best = ckpt.best_path(folder, self.sharded_checkpoints)
            if leader:
                ckpt.replace(path, best)
            path = best
        if leader:
            if reason in ckpt.ROUTINE:
                ckpt.prune(folder, self.cfg.checkpoint.keep_last)
            self.publish(ev.CheckpointSaved(path=str(path), reason=reason, epoch=self.state.epoch,
                                            step=self.state.step))
        return path

    # ----- commands -----------------------------------------------------------------
    def _apply(self, command: cmd.Command) -> bool:
        """Carry out one command; True when the run must stop."""
        self.publish(ev.CommandReceived(command=command.name, args=cmd.to_dict(command), source=command.source))
        if isinstance(command, cmd.Pause) and not self.paused:
            self.paused = True
            self._state(RunState.PAUSED)
        elif isinstance(command, cmd.Resume) and self.paused:
            self.paused = False
            self._state(RunState.RUNNING)
        elif isinstance(command, cmd.SaveCheckpoint):
            self.save_checkpoint("manual")
        elif isinstance(command, cmd.SetLr):
            self.schedule = self.schedule.with_rate(command.group, command.lr, self.state.step)
            self._apply_lr()
            self.publish(ev.LrChanged(group=command.group, lr=command.lr, step=self.state.step, source="command",
                                      schedule=self.schedule))
        elif isinstance(command, cmd.Evaluate):
            self.evaluate()
        elif isinstance(command, cmd.Stop):
            if command.save:
                self.save_checkpoint("stop")
            return True
        return False

    def _publish_point(self, force: bool = False) -> bool:
        """Every ``run.publish_every`` steps and at least every ``COMMAND_INTERVAL`` seconds:
        buffered step metrics leave as events and queued commands are taken; while paused,
        wait for more. Returns True when the run must stop. ``publish_every = 0`` (the
        default) means every step on the CPU, where reading a step's figures costs nothing,
        and by the clock alone on an accelerator, where each read waits for the device.

        With several ranks, commands are taken when the step's flags say rank 0 holds some
        (or at a forced point, or while paused): the ranks decide alike, and all enter the
        broadcast that hands rank 0's commands to every rank."""
        now = time.monotonic()
        every = self.cfg.run.publish_every or (1 if self.device.type == "cpu" else 0)
        due = (every > 0 and self.state.step % every == 0) or now - self._last_publish >= COMMAND_INTERVAL
        wanted = force or due or self.paused or self._flags.commands
        # With several ranks the step's all-reduce has brought its figures to the host already,
        # and every rank must meet a divergence at the same step: they settle after each step.
        if (wanted or self.world.size > 1) and self._settle() is Settled.STOP:
            return True
        if not wanted:
            return False
        if force or due or self.paused:
            self._last_publish = now
            self._publish_steps()
            if self.world.leader:
                for sample in self.gpu.events(self.device, self.state.epoch, self.state.step):
                    self.publish(sample)
        if self.world.size > 1 and not (force or self.paused or self._flags.commands):
            return False
        while True:
            taken = self._take_commands()
            for command in taken:
                if self._apply(command):
                    return True
            if not self.paused and (self.world.size > 1 or not taken):
                return False

    def _take_commands(self) -> list[cmd.Command]:
        """Rank 0's queued commands, on every rank; while paused, rank 0 waits a moment for one
        (with several ranks the others wait in the broadcast, which comes well within its timeout)."""
        taken: list[cmd.Command] = []
        if self.world.leader:
            try:
                taken.append(self.commands.get(block=self.paused, timeout=0.2 if self.paused else None))
                while True:
                    taken.append(self.commands.get_nowait())
            except queue.Empty:
                pass
        return distributed.broadcast(self.world, taken)

    def _interval_due(self) -> bool:
        """``checkpoint.every_steps`` / ``every_minutes``; the end of an epoch writes its own checkpoint."""
        c, s = self.cfg.checkpoint, self.state
        if s.step_in_epoch == self.steps_per_epoch:
            return False
        by_steps = c.every_steps > 0 and s.step % c.every_steps == 0
        return by_steps or (self._flags.checkpoint if self.world.size > 1 else self._minutes_due())

    def _minutes_due(self) -> bool:
        """``checkpoint.every_minutes`` by this process's clock (rank 0's decides for all)."""
        minutes = self.cfg.checkpoint.every_minutes
        return minutes > 0 and time.monotonic() - self._last_checkpoint >= 60 * minutes

    def _stop_requested(self) -> bool:
        """During a long evaluation only a stop is acted on; other commands wait their turn.
        With several ranks an evaluation runs to its end (the ranks would have to agree per chunk)."""
        return self.world.size == 1 and any(isinstance(c, cmd.Stop) for c in list(self.commands.queue))

    def _gathered(self, summed: tuple[dict[str, float], int]) -> dict[str, float]:
        """Metric sums of every rank's share of the users, added up, as means."""
        sums, n_users = summed
        if self.world.size == 1:
            return means(sums, n_users)
        total = distributed.all_sum(self.world, torch.tensor(list(sums.values()), dtype=torch.float64,
                                                             device=self.device)).tolist()
        return means(dict(zip(sums, total)), n_users)

    # ----- evaluation ---------------------------------------------------------------
    def evaluate(self) -> None:
        self._state(RunState.EVALUATING)
        # The next step drops them anyway; dropped now, evaluation has a table's worth more room.
        self.optimizer.zero_grad(set_to_none=True)
        self.model.eval()
        e = self.cfg.eval
        with self.parallel.whole_tables():
            users, items = self.model.final_embeddings(self.adj)
            diagnostics = self._diagnostics() if self.world.leader else None
        results: dict[str, tuple[dict[str, float], float]] = {}
        for split in ("valid", "test"):
            if not len(getattr(self.dataset, split)):
                continue
            started = time.perf_counter()
            summed = split_sums(users, items, self._known(split), getattr(self.dataset, split), e.ks,
                                self._chunk(), self._stop_requested, self.world.share, self.groups)
            if summed is None:
                self.model.train()
                self._state(RunState.RUNNING)
                return
            metrics = self._gathered(summed)
            if self.cfg.model.item_init == "xavier":  # a cold item has only noise to rank by (data.load says so)
                metrics = {key: value for key, value in metrics.items() if not key.endswith("/cold")}
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
                                       metrics=metrics, best=improved and split == best_split, seconds=seconds))
        if diagnostics is not None:
            self.publish(diagnostics)
        if improved:
            self.save_checkpoint("best")
        self.model.train()
        self._state(RunState.PAUSED if self.paused else RunState.RUNNING)

    @torch.no_grad()
    def _diagnostics(self) -> ev.Diagnostics:
        items = self.model.item_vectors()
        pretrained = self.cfg.model.item_init == "pretrained"
        keep, p10 = retention(items, self.model.item_start) if pretrained else (None, None)
        edges, counts = ([], [])
        if self.pairs is not None:
            edges, counts = similarity_histogram(items, self.pairs.to(items.device), self.cfg.eval.sim_bins)
        return ev.Diagnostics(epoch=self.state.epoch, step=self.state.step, retention=keep,
                              retention_p10=p10, sim_edges=edges, sim_counts=counts)

    def _known(self, split: str) -> KnownItems:
        """The items masked when ranking ``split``, indexed on the device once per run."""
        if split not in self._known_items:
            pairs = known_items(self.dataset, split)
            self._known_items[split] = KnownItems.of(pairs, self.dataset.n_users, self.device)
        return self._known_items[split]

    def _chunk(self) -> int:
        e = self.cfg.eval
        return chunk_users(e.chunk_users, e.memory_budget_mb, self.dataset.n_items)

    def _baselines(self) -> None:
        """Popularity, and with text vectors the no-training text baseline (``train.ranking.text_sums``)."""
        baselines = {"popularity": popularity_sums}
        if self.dataset.pretrained is not None:
            baselines["text"] = text_sums
        for model, sums in baselines.items():
            for split in ("valid", "test"):
                if len(getattr(self.dataset, split)):
                    summed = sums(self.dataset, self._known(split), getattr(self.dataset, split), self.cfg.eval.ks,
                                  self._chunk(), self.world.share, self.groups)
                    self.publish(ev.EvalResult(epoch=0, step=0, split=split, metrics=self._gathered(summed),
                                               model=model))

    # ----- the loop -----------------------------------------------------------------
    def _apply_lr(self) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = self.schedule.lr(g["name"], self.state.step)

    def alpha(self, epoch: int) -> float | None:
        m = self.cfg.model
        return alpha_at(epoch, m.alpha0, m.alpha_decay, m.alpha_min) if m.item_mode == "residual" else None

    def _step(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, share: float = 1.0) -> StepRecord:
        """One optimiser step, without waiting for the device: its figures stay there
        (``StepRecord``) until ``_settle`` reads them with those of the steps before.

        Clipping and the NaN/inf check run on the device too: with a fused optimiser the
        clip factor is its ``grad_scale`` and a non-finite step its ``found_inf`` (the update is
        skipped in the kernel); other optimisers scale the gradients, and a non-finite update
        is undone when ``_settle`` goes back to the last good state.

        ``share``: this rank's rows over the global batch's. Each rank's loss is a mean over
        its rows; weighted by ``share × N`` before DDP/FSDP average the gradients, the ranks
        give the gradient of the global batch's mean, uneven last batches included."""
        o = self.cfg.optim
        self._apply_lr()
        # Before the forward, so last step's gradients are not held through it.
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            batch = self.objective.batch(users, pos, neg, self.context, self.parallel.step_module)
            loss, terms = self.objective(batch, self.context)
        (loss if self.world.size == 1 else loss * (share * self.world.size)).backward()
        params = self.model.group_params()
        if self.state.epoch < o.item_start_epoch:
            for p in params["item"]:
                p.grad = None
        if self.world.size == 1:
            norms = torch.stack([grad_squares([p.grad for p in ps], self.device) for ps in params.values()]).sqrt()
            parts = [loss.detach().float().reshape(1), *(t.detach().float().reshape(1) for t in terms.values()), norms]
            figures = torch.cat(parts)
        else:
            figures = torch.tensor(self._reduced(loss, terms, share, params), device=self.device)
            norms = figures[-2:]
        self._update(norms, [p for ps in params.values() for p in ps])
        return StepRecord(epoch=self.state.epoch, step=self.state.step, terms=tuple(terms), figures=figures,
                          lr_user=self.optimizer.param_groups[0]["lr"], lr_item=self.optimizer.param_groups[1]["lr"],
                          alpha=self.alpha(self.state.epoch))

    def _update(self, norms: torch.Tensor, params: list[torch.nn.Parameter]) -> None:
        """Clip to ``optim.clip_norm`` (of both groups together) and step, all on the device;
        cold items' rows are put back after it (``rows_kept``)."""
        clip = self.cfg.optim.clip_norm
        total = torch.linalg.vector_norm(norms)
        scale = None
        if clip:
            scale = torch.where(total > clip, (total + 1e-6) / clip, torch.ones_like(total))
        if getattr(self.optimizer, "_step_supports_amp_scaling", False):
            self.optimizer.grad_scale = scale  # type: ignore[attr-defined]
            self.optimizer.found_inf = (~torch.isfinite(total)).float()  # type: ignore[attr-defined]
        elif scale is not None:
            for p in params:
                if p.grad is not None:
                    p.grad.div_(scale)
        with rows_kept(self.model.item, self.cold_rows):
            self.optimizer.step()

    def _settle(self) -> Settled:
        """Read the figures of the steps not yet checked (one wait for the device), in step
        order: each passes the guard and joins the metrics to publish, or the first that does
        not sends the run back to its last good state (``_diverged``); after that, a publish
        point is held at once, where a run paused by the divergence waits."""
        records, self._unchecked = self._unchecked, []
        if not records:
            return Settled.FINE
        for record, values in zip(records, torch.stack([r.figures for r in records]).tolist()):
            loss, norms = values[0], values[-2:]
            reason = self.guard.verdict(loss, all(math.isfinite(x) for x in norms))
            if reason is not None:
                if self._diverged(reason, record.step) or self._publish_point(force=True):
                    return Settled.STOP
                return Settled.ROLLED_BACK
            self._epoch_losses[record.step] = loss
            self._pending.append(ev.StepMetrics(
                epoch=record.epoch, step=record.step, loss=loss, terms=dict(zip(record.terms, values[1:-2])),
                grad_user=norms[0], grad_item=norms[1], lr_user=record.lr_user, lr_item=record.lr_item,
                alpha=record.alpha))
        return Settled.FINE

    def _reduced(self, loss: torch.Tensor, terms: dict[str, torch.Tensor], share: float,
                 params: dict[str, list[torch.nn.Parameter]]) -> list[float]:
        """The step's one all-reduce: the global batch's loss and terms (share-weighted means)
        and the global gradient norms (the figures of a ``StepRecord``), alike on every rank,
        and rank 0's ``StepFlags``. Reading the flags waits for the device: with several ranks
        the host learns every step whether commands wait."""
        flags = [0.0, 0.0]
        if self.world.leader:
            flags = [float(not self.commands.empty()), float(self._minutes_due())]
        parts = [loss.detach().float() * share, *(t.detach().float() * share for t in terms.values()),
                 *(sum(self.parallel.grad_squares(p.grad).float() for p in ps) for ps in params.values()),
                 torch.tensor(flags, device=loss.device)]
        summed = distributed.all_sum(self.world, torch.cat([t.reshape(-1) for t in parts])).tolist()
        n = len(terms)
        self._flags = StepFlags(commands=summed[-2] > 0, checkpoint=summed[-1] > 0)
        norms = [math.sqrt(sq) if sq >= 0 else math.nan for sq in summed[n + 1 : n + 3]]
        return [*summed[: n + 1], *norms]

    def _device_label(self) -> str:
        label = device_label(self.device)
        if self.world.size > 1:
            label += f" × {self.world.size} ranks ({self.cfg.dist.strategy})"
        return label

    def _diverged(self, reason: str, bad_step: int) -> bool:
        """Go back to the last good state, checkpoint it, then follow ``divergence.policy``; True: stop."""
        d, s = self.cfg.divergence, self.state
        self._restore_good(self.guard.last_good())
        path = self.save_checkpoint("diverged")
        policy = d.policy if d.policy != "auto" else ("pause" if self.interactive else "stop")
        if policy == "rollback" and self.rollbacks < d.max_rollbacks:
            self.rollbacks += 1
            self.schedule = self.schedule.scaled(0.5)
            self.guard.forget_recent()
            self.publish(ev.Message(level="warning", checkpoint=str(path),
                                    text=f"{reason} at step {bad_step}; rolled back to step {s.step} and halved both "
                                         f"learning rates (rollback {self.rollbacks} of {d.max_rollbacks})"))
            for group in GROUPS:
                self.publish(ev.LrChanged(group=group, lr=self.schedule.lr(group, s.step), step=s.step,
                                          source="rollback", schedule=self.schedule))
            return False
        o = self.cfg.optim
        assert self.run_dir is not None
        text = (f"{reason} at epoch {s.epoch} step {bad_step}; the last good state (step {s.step}) is saved to "
                f"{path}. Lower the learning rates and resume: lgcn-tui train --resume {self.run_dir.path} "
                f"--set optim.user_lr={o.user_lr / 10:g} --set optim.item_lr={o.item_lr / 10:g}")
        if policy == "rollback":
            text = f"{d.max_rollbacks} rollbacks did not help: {text}"
        self.publish(ev.Message(level="error", checkpoint=str(path), text=text))
        if policy == "pause":
            self.paused = True
            self._state(RunState.PAUSED)
            return False
        self.diverged = text
        return True

    def _restore_good(self, good: GoodState) -> None:
        self.model.load_state_dict(good.model)
        self.optimizer.load_state_dict(copy.deepcopy(good.optimizer))
        self.schedule = good.schedule
        self.state.step, self.state.step_in_epoch = good.step, good.step_in_epoch
        self._pending = [m for m in self._pending if m.step < good.step]
        self._unchecked = []
        self._epoch_losses = {step: loss for step, loss in self._epoch_losses.items() if step < good.step}

    def complete(self) -> RunState:
        """Set up, train to the end or until stopped, clean up: for callers that need nothing
        beside the run while it trains (benchmarks, tests); a failure is raised after cleanup."""
        self.setup()
        try:
            return self.train()
        finally:
            self.cleanup()

    def train(self) -> RunState:
        """Train to the end or until stopped (DONE or STOPPED); a failure is published, with a
        checkpoint if one can be written, then raised."""
        try:
            return self._loop()
        except Exception as exc:
            saved: str | None = None
            try:
                if self.world.size == 1:
                    saved = str(self.save_checkpoint("error"))
                else:
                    saved = self._last_saved()
            except Exception as save_exc:  # noqa: BLE001 - the original failure matters more
                self.publish(ev.Message(level="warning", text=f"could not save a checkpoint: {save_exc}"))
            where = f"; last checkpoint: {saved}" if saved else ""
            self.publish(ev.Message(level="error", text=f"training failed: {type(exc).__name__}: {exc}{where}",
                                    checkpoint=saved))
            self._state(RunState.ERROR)
            raise

    def _stopped(self) -> RunState:
        self._state(RunState.STOPPED)
        return RunState.STOPPED

    def _on_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """An epoch's triples, moved once: from pinned memory the copy does not hold up the host."""
        if self.device.type == "cpu":
            return tensor
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def _last_saved(self) -> str | None:
        """The newest checkpoint on disk. With several ranks a failure is often a rank gone, and
        writing one more checkpoint could wait on it in a collective: the last one written stands."""
        assert self.run_dir is not None
        newest = ckpt.latest(self.run_dir.checkpoints)
        return str(newest) if newest is not None else None

    def _loop(self) -> RunState:
        s, cfg = self.state, self.cfg
        assert self.run_dir is not None
        self.publish(ev.RunStarted(run_dir=str(self.run_dir.path), name=cfg.run.name, preset=self.preset,
                                   dataset=self.dataset.stats(), device=self._device_label(),
                                   item_mode=cfg.model.item_mode if cfg.model.item_init == "pretrained" else "xavier",
                                   epochs=cfg.run.epochs, steps_per_epoch=self.steps_per_epoch,
                                   start_step=s.step, resumed=self.resumed, clip_norm=cfg.optim.clip_norm,
                                   schedule=self.schedule))
        self._announce()
        for note in self.dataset.notes:
            self.publish(ev.Message(level="warning", text=note))
        if not self.resumed:
            self._baselines()
        self._state(RunState.RUNNING)
        self.model.train()
        if self._publish_point(force=True):
            return self._stopped()
        while s.epoch < cfg.run.epochs:
            self.generator.set_state(torch.tensor(s.epoch_rng, dtype=torch.uint8))
            users, pos, neg = (self._on_device(t) for t in self.sampler.epoch(self.generator))
            alpha = self.alpha(s.epoch)
            if alpha is not None:
                self.model.set_alpha(alpha)
            started, self._epoch_losses = time.perf_counter(), {}
            bs = cfg.optim.batch_size
            while True:
                at_end = s.step_in_epoch == self.steps_per_epoch
                if at_end or self.guard.due(s.step_in_epoch):
                    # Only a state whose steps all passed is kept, or ends the epoch.
                    settled = self._settle()
                    if settled is Settled.STOP:
                        return self._stopped()
                    if settled is Settled.ROLLED_BACK:
                        continue
                    if at_end:
                        break
                    self.guard.keep(s.step, s.step_in_epoch, self.model, self.optimizer, self.schedule)
                start = s.step_in_epoch * bs
                stop = min(start + bs, len(users))
                rows = rank_rows(start, stop, self.world.share)
                share = len(range(*rows.indices(len(users)))) / (stop - start)
                if share == 0:  # an uneven last batch left this rank no row: it steps on one, weighted 0
                    rows = slice(start, start + 1)
                self._unchecked.append(self._step(users[rows], pos[rows], neg[rows], share))
                s.step_in_epoch += 1
                s.step += 1
                if self._interval_due():
                    settled = self._settle()
                    if settled is Settled.STOP:
                        return self._stopped()
                    if settled is Settled.FINE:
                        self.save_checkpoint("interval")
                if self._publish_point():
                    return self._stopped()
            self._publish_steps()
            losses = list(self._epoch_losses.values())
            self.publish(ev.EpochEnd(epoch=s.epoch, step=s.step, mean_loss=float(np.mean(losses)) if losses else math.nan,
                                     seconds=time.perf_counter() - started))
            s.epoch += 1
            s.step_in_epoch = 0
            s.epoch_rng = self.generator.get_state().tolist()
            if s.epoch % cfg.eval.every == 0 or s.epoch == cfg.run.epochs:
                self.evaluate()
            self.save_checkpoint("epoch")
            if cfg.eval.patience and s.bad_evals >= cfg.eval.patience:
                self.publish(ev.Message(level="info", text=f"early stop: {cfg.eval.best_metric} has not improved "
                                                           f"for {s.bad_evals} evaluations (best at epoch {s.best_epoch})"))
                break
        self._state(RunState.DONE)
        return RunState.DONE
