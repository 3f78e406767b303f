"""What a run holds in device memory, worked out before it runs: ``lgcn-tui plan``.

Each figure follows the code it describes, per device, in bytes (N = users + items nodes,
d the dimension, s the bytes of a table element, E = 2 × training interactions):

- parameters: the node table, N·d·s (``model.lightgcn``; ``frozen`` still holds its item table).
- gradients: the step's gradient of the whole layer-0 table, N·d·s, which the parameters'
  ``.grad`` views keep alive until the next step (even in ``frozen`` mode, where only the users'
  part is used); ``residual`` adds the items' own, I·d·s.
- optimiser state (``run.lifecycle._optimizer``): Adam/AdamW keep ``exp_avg`` and ``exp_avg_sq``
  per trained parameter; Adafactor one factored second moment, (rows + d) floats per table.
- start vectors: the ``pretrained`` buffer (I·d, absent with Xavier items) and ``item_start``
  (I·d bfloat16).
- adjacency (``graph.adjacency``): int32 CSR of Â, (N+1)·4 + E·4 + E·4 bytes, twice under
  ``graph.norm = mean`` (its transpose), plus the locality order (int64 N, in the adjacency
  and in the model) when ``graph.reorder`` is on.
- divergence guard (``run.guard``): two copies of the model's state and the optimiser state,
  in pinned host memory, not on the device (shown apart: ``host``).
- DDP buckets: DDP copies the gradients into buckets of its own, as large again.

A step frees the last step's gradients before its forward (``zero_grad(set_to_none=True)``);
its propagation then holds up to two full float32 tables beside the resident ones
(``graph.propagate``), one more when the layer-0 table is a copy (a concatenation in
``frozen`` and ``residual`` modes, the float32 copy of a bfloat16 table), four more per
whole-table perturbed propagation (SimGCL, XSimGCL), and FSDP all-gathers the parameters
for it. The step's peak is the resident set, less the last step's gradients, plus that. Evaluation
(``Run.evaluate``) first drops the last step's gradients (the next step would), then
propagates over every node (three tables at once), then ranks with the
final vectors, a transposed copy of the item vectors and one score chunk of
``eval.chunk_users`` × items float32 (``train.ranking``). Under FSDP the parameters, their
gradients, optimiser state and the guard's copies of them are split over the ranks; buffers
and the adjacency are whole on every rank.

The persistent figures are checked against the tensors of a real run (tests/test_plan.py); the
peaks are read from the code and are meant to be compared with
``torch.cuda.max_memory_allocated`` on a GPU (benchmarks/gpu_check.py). Not counted: DGL's own
graph (``graph.backend = dgl``), the CUDA context, and the allocator's fragmentation.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .config import Config
from .errors import UserError

ITEM_MODES = ("frozen", "learnable", "residual", "xavier")
OPTIMIZERS = ("adam", "adamw", "adafactor")
PRECISIONS = ("fp32", "bf16")
STRATEGIES = ("ddp", "fsdp")
ELEMENT = {"fp32": 4, "bf16": 2}
START_ELEMENT = 2  # item_start is bfloat16 (model.lightgcn)
GUARD_COPIES = 2  # run.guard keeps the last two good states
CHECKPOINT_EXTRA = 30_000  # a checkpoint's config, counters and two generators' states (5 kB each), beside its tensors
PERTURBED_TABLES = 4  # held by one whole-table perturbed propagation (output, kept layer, noise, reordered copy)
UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Shape:
    """Everything the memory of a run depends on.

    ``item_mode`` is ``model.item_mode``, or ``xavier`` for learnable items without pretrained
    vectors; ``interactions`` counts training pairs; ``perturbed`` the whole-table perturbed
    propagations per step (``simgcl`` 2, ``xsimgcl`` 1); ``rows`` extra batch rows (softmax negatives).
    """

    users: int
    items: int
    interactions: int
    dim: int
    layers: int = 3
    item_mode: str = "learnable"
    optimizer: str = "adamw"
    precision: str = "fp32"
    strategy: str = "ddp"
    world_size: int = 1
    batch_size: int = 2048
    chunk_users: int = 1024
    norm: str = "symmetric"
    reorder: bool = True
    perturbed: int = 0
    rows: int = 0

    @property
    def nodes(self) -> int:
        return self.users + self.items

    @property
    def sharded(self) -> bool:
        return self.strategy == "fsdp" and self.world_size > 1


@dataclass(frozen=True)
class Line:
    name: str
    bytes: int
    what: str


@dataclass(frozen=True)
class Plan:
    """The figures for one ``Shape``, per device; ``lines`` are the resident items, in table order."""

    shape: Shape
    lines: tuple[Line, ...]
    step_work: int
    step_peak: int
    step_note: str
    eval_work: int
    eval_peak: int
    eval_note: str
    checkpoint: int
    host: int  # pinned host memory of the whole run (every rank): the divergence guard's copies

    @property
    def resident(self) -> int:
        return sum(line.bytes for line in self.lines)

    @property
    def peak(self) -> int:
        return max(self.step_peak, self.eval_peak)

    def figure(self, name: str) -> int:
        return next(line.bytes for line in self.lines if line.name == name)

    def largest(self) -> Line:
        """The biggest single item: a resident one, or the step's or evaluation's own work."""
        work = (Line("step work", self.step_work, ""), Line("evaluation work", self.eval_work, ""))
        return max((*self.lines, *work), key=lambda line: line.bytes)


def estimate(shape: Shape) -> Plan:
    """The memory plan of ``shape`` (see the module docstring for what each figure counts)."""
    s, d, n = ELEMENT[shape.precision], shape.dim, shape.nodes
    ways = shape.world_size if shape.sharded else 1
    table = n * d * s
    tables = [shape.users] + ([] if shape.item_mode == "frozen" else [shape.items])  # those the optimiser steps
    trained = sum(tables)
    params = table
    grads = table + (shape.items * d * s if shape.item_mode == "residual" else 0)
    if shape.optimizer == "adafactor":
        optim = sum((rows + d) * 4 + 4 for rows in tables)
    else:
        optim = 2 * trained * d * s + 4 * len(tables)
    start = shape.items * d * (START_ELEMENT + (0 if shape.item_mode == "xavier" else s))
    entries = 2 * shape.interactions
    csr = (n + 1) * 4 + entries * 8
    adjacency = csr * (2 if shape.norm == "mean" else 1) + (2 * n * 8 if shape.reorder else 0)
    model_state = params // ways + shape.items * d * START_ELEMENT + (n * 8 if shape.reorder else 0) + 4
    good_state = model_state + optim // ways
    lines = [
        Line("parameters", params // ways, "user + item tables, one storage"),
        Line("gradients", grads // ways, "the layer-0 table's gradient, kept to the next step"),
        Line("optimizer state", optim // ways, _optim_what(shape.optimizer)),
        Line("start vectors", start, "pretrained + item_start (bf16)" if shape.item_mode != "xavier"
             else "item_start (bf16); Xavier items: no pretrained"),
        Line("adjacency", adjacency, "CSR of Â" + (" and Âᵀ" if shape.norm == "mean" else "")
             + (" + node order" if shape.reorder else "")),
    ]
    if shape.strategy == "ddp" and shape.world_size > 1:
        lines.append(Line("ddp buckets", trained * d * s, "DDP's gradient buckets"))
    resident = sum(line.bytes for line in lines)
    gathered = table if shape.sharded else 0
    step_work = gathered + _step_tables(shape) * n * d * 4 + _batch(shape) + _products(shape)
    stepping = resident - grads // ways + step_work
    step_peak = max(stepping, resident)
    step_note = f"resident − last gradients + {fmt(step_work)} step work"
    final = n * d * 4
    ranking = final + shape.items * d * 4 + min(shape.chunk_users, shape.users) * _row(shape.items) * 4
    diagnostics = final + (4 if shape.item_mode == "residual" else 1) * shape.items * d * 4
    propagation = (3 + _copied_ego(shape)) * n * d * 4
    parts = {"propagation over all nodes": propagation + _products(shape),
             f"ranking, {shape.chunk_users} users a chunk": ranking, "diagnostics": diagnostics}
    what = max(parts, key=lambda name: parts[name])
    eval_work = gathered + parts[what]
    eval_note = f"resident − last gradients + {fmt(eval_work)}: {what}"
    checkpoint = params + shape.items * d * START_ELEMENT + (n * 8 if shape.reorder else 0) + optim + CHECKPOINT_EXTRA
    return Plan(shape, tuple(lines), step_work, step_peak, step_note, eval_work, resident - grads // ways + eval_work,
                eval_note,
                checkpoint, GUARD_COPIES * good_state * ways)


def _optim_what(name: str) -> str:
    return {"adafactor": "Adafactor: factored second moment",
            "adam": "Adam: exp_avg + exp_avg_sq", "adamw": "AdamW: exp_avg + exp_avg_sq"}[name]


def _step_tables(shape: Shape) -> int:
    """Full fp32 tables a step's propagation holds at once: its forward keeps the last two
    layers (one with two layers), its backward the gradient of two; a copied layer-0 table
    adds one, each perturbed propagation ``PERTURBED_TABLES``."""
    k = shape.layers
    forward = min(max(k - 1, 0), 2) + _copied_ego(shape)
    backward = 2 if k >= 2 else 1
    return max(forward, backward) + PERTURBED_TABLES * shape.perturbed


def _copied_ego(shape: Shape) -> int:
    """1 where the propagation reads a copy of the layer-0 table: a concatenation (``frozen``,
    ``residual``), or the float32 copy of a bfloat16 table (``graph.propagate`` works in float32)."""
    return int(shape.item_mode in ("frozen", "residual") or shape.precision == "bf16")


def _batch(shape: Shape) -> int:
    """A batch's own tensors: about a dozen row-sized fp32 blocks over its users, positives and
    negatives, and the CSR rows of Â it propagates through (at the mean degree)."""
    rows = min(3 * shape.batch_size + shape.rows, shape.nodes)
    edges = rows * 2 * shape.interactions // max(shape.nodes, 1)
    return 12 * rows * shape.dim * 4 + 2 * edges * 8


def _products(shape: Shape) -> int:
    """A sparse product's index workspace (``embedding_bag``'s int32 bag of every entry)."""
    return 2 * shape.interactions * 4 + shape.nodes * 4


def _row(items: int) -> int:
    """The score buffer's row length: rows start on 64-byte boundaries (``embedding_ranker``)."""
    return -(-items // 16) * 16


def shape_of(cfg: Config, users: int, items: int, interactions: int, dim: int) -> Shape:
    """The ``Shape`` of a config over a catalogue of the given size (``dim``: the model's, which
    pretrained vectors decide: ``LightGCN`` takes theirs)."""
    terms = cfg.objective.terms
    return Shape(users=users, items=items, interactions=interactions, dim=dim, layers=cfg.model.layers,
                 item_mode=cfg.model.item_mode if cfg.model.item_init == "pretrained" else "xavier",
                 optimizer=cfg.optim.name, strategy=cfg.dist.strategy, batch_size=cfg.optim.batch_size,
                 chunk_users=cfg.eval.chunk_users, norm=cfg.graph.norm,
                 reorder=cfg.graph.reorder and cfg.graph.backend == "torch",
                 perturbed=2 * ("simgcl" in terms) + ("xsimgcl" in terms),
                 rows=cfg.objective.softmax_negatives if cfg.objective.loss == "softmax" else 0)


def check(shape: Shape) -> Shape:
    """Refuse numbers no run could have, naming the option."""
    for flag, value, low in (("--users", shape.users, 1), ("--items", shape.items, 1),
                             ("--interactions", shape.interactions, 1), ("--dim", shape.dim, 1),
                             ("--layers", shape.layers, 0), ("--world-size", shape.world_size, 1)):
        if value < low:
            raise UserError(f"{flag} {value} must be at least {low}")
    if shape.interactions > shape.users * shape.items:
        raise UserError(f"--interactions {shape.interactions:,} is more than --users × --items = "
                        f"{shape.users * shape.items:,}: each (user, item) pair counts once")
    for flag, value, valid in (("--item-mode", shape.item_mode, ITEM_MODES), ("--optimizer", shape.optimizer, OPTIMIZERS),
                               ("--precision", shape.precision, PRECISIONS), ("--strategy", shape.strategy, STRATEGIES)):
        if value not in valid:
            raise UserError(f"{flag} {value!r} is not valid; choose one of: {', '.join(valid)}")
    return shape


def parse_size(text: str) -> int:
    """``80GB``, ``141 GB``, ``79.6GiB``: bytes. GB is 10⁹ bytes (as GPU makers count), GiB 2³⁰."""
    m = SIZE.match(text)
    if m is None or m.group(2).lower() not in UNITS:
        raise UserError(f"--memory {text!r} is not a memory size; write a number and a unit, e.g. 80GB, "
                        f"141GB or 79.6GiB (units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
    size = int(float(m.group(1)) * UNITS[m.group(2).lower()])
    if size <= 0:
        raise UserError(f"--memory {text!r} must be more than zero")
    return size


def fmt(size: float) -> str:
    """Decimal units, as ``--memory`` reads them: 6.1 GB is 6.1 × 10⁹ bytes."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(size) >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


@dataclass(frozen=True)
class Shrink:
    """One change that lowers the peak, with the peak it gives."""

    change: str
    peak: int

    def fits(self, memory: int) -> bool:
        return self.peak <= memory


WORLDS = (2, 4, 8, 16, 32, 64)


def shrinks(plan: Plan, memory: int) -> list[Shrink]:
    """The changes that lower the peak, lowest peak first: bfloat16 tables, Adafactor, FSDP over
    the fewest GPUs that fit (else the most ``WORLDS`` tries), and smaller score chunks when
    evaluation is the peak."""
    shape, out = plan.shape, []
    if shape.precision == "fp32":
        out.append(Shrink("bf16 tables (--precision bf16; train keeps fp32 today)",
                          estimate(dataclasses.replace(shape, precision="bf16")).peak))
    if shape.optimizer != "adafactor":
        out.append(Shrink("Adafactor: --set optim.name=adafactor",
                          estimate(dataclasses.replace(shape, optimizer="adafactor")).peak))
    if not shape.sharded:
        peaks = {w: estimate(dataclasses.replace(shape, strategy="fsdp", world_size=w)).peak for w in WORLDS}
        w = next((w for w in WORLDS if peaks[w] <= memory), WORLDS[-1])
        out.append(Shrink(f"FSDP across {w} GPUs: --set dist.strategy=fsdp --nproc {w}", peaks[w]))
    if plan.eval_peak > plan.step_peak and shape.chunk_users > 64:
        smaller = dataclasses.replace(shape, chunk_users=max(shape.chunk_users // 4, 64))
        out.append(Shrink(f"smaller score chunks: --set eval.chunk_users={smaller.chunk_users}", estimate(smaller).peak))
    return sorted((s for s in out if s.peak < plan.peak), key=lambda s: s.peak)


def verdict(plan: Plan, memory: int) -> str:
    spare = memory - plan.peak
    if spare >= 0:
        return f"fits: peak {fmt(plan.peak)} of {fmt(memory)}, {fmt(spare)} to spare"
    return f"does not fit: peak {fmt(plan.peak)} of {fmt(memory)}, {fmt(-spare)} short"


def to_json(plan: Plan, memory: int) -> dict[str, Any]:
    """The plan as plain numbers (bytes), for scripts."""
    largest = plan.largest()
    return {"shape": dataclasses.asdict(plan.shape), "memory": memory,
            "items": {line.name.replace(" ", "_"): line.bytes for line in plan.lines},
            "resident": plan.resident, "step_work": plan.step_work, "step_peak": plan.step_peak,
            "eval_work": plan.eval_work, "eval_peak": plan.eval_peak, "peak": plan.peak,
            "checkpoint": plan.checkpoint, "host_guard_copies": plan.host, "fits": plan.peak <= memory, "spare": memory - plan.peak,
            "largest": {"name": largest.name, "bytes": largest.bytes},
            "shrink": [{"change": s.change, "peak": s.peak, "fits": s.fits(memory)} for s in shrinks(plan, memory)]}


def describe(shape: Shape) -> str:
    """Two lines naming the shape, for the table's title."""
    where = f"{shape.strategy} × {shape.world_size}, per device" if shape.world_size > 1 else "one device"
    return (f"{shape.users:,} users + {shape.items:,} items × {shape.dim}, {shape.interactions:,} interactions\n"
            f"{shape.layers} layers · {shape.item_mode} · {shape.optimizer} · {shape.precision} · {where}")


@dataclass(frozen=True)
class Options:
    """``lgcn-tui plan``'s explicit numbers; None leaves the preset's (or the default config's) value."""

    users: int | None = None
    items: int | None = None
    interactions: int | None = None
    dim: int | None = None
    layers: int | None = None
    item_mode: str | None = None
    optimizer: str | None = None
    precision: str = "fp32"
    strategy: str | None = None
    world_size: int = 1


def shape_for(cfg: Config, options: Options, preset: str | None) -> Shape:
    """The shape to plan: the catalogue from the three counts when all are given, else counted
    by loading the preset's data; every other given option wins over the config. The dimension
    is ``--dim``, else that of the pretrained vectors (after PCA), else ``model.dim``."""
    counts = (options.users, options.items, options.interactions)
    pretrained_dim = cfg.data.pca_dim or cfg.data.pretrained_dim
    if all(c is not None for c in counts):
        users, items, interactions = counts  # type: ignore[misc]
    elif any(c is not None for c in counts):
        raise UserError("give all three of --users, --items and --interactions, or none of them to count "
                        "the preset's data")
    elif preset is None:
        raise UserError("plan needs a catalogue: --preset NAME (its data is loaded and counted) or "
                        "--users, --items and --interactions")
    else:
        users, items, interactions, pretrained_dim = _counted(cfg, pretrained_dim)
    shape = shape_of(cfg, users, items, interactions, cfg.model.dim)
    given = {"layers": options.layers, "item_mode": options.item_mode, "optimizer": options.optimizer,
             "strategy": options.strategy}
    shape = dataclasses.replace(shape, precision=options.precision, world_size=options.world_size,
                                **{k: v for k, v in given.items() if v is not None})
    dim = options.dim or (cfg.model.dim if shape.item_mode == "xavier" else pretrained_dim)
    return check(dataclasses.replace(shape, dim=dim))


def _counted(cfg: Config, pretrained_dim: int) -> tuple[int, int, int, int]:
    """Users, items and training interactions from the config's data, and its pretrained vectors' dimension."""
    from . import data

    dataset = data.load(cfg)
    if dataset.pretrained is not None:
        pretrained_dim = dataset.pretrained.shape[1]
    return dataset.n_users, dataset.n_items, len(dataset.train), pretrained_dim


def local_memory() -> int:
    """The local CUDA device's memory, for a ``--memory`` left out."""
    import torch

    if not torch.cuda.is_available():
        raise UserError("--memory is needed here (this machine has no CUDA device to read it from); "
                        "e.g. --memory 80GB")
    return torch.cuda.get_device_properties(0).total_memory


def print_plan(plan: Plan, memory: int, console: Console) -> None:
    """The memory table, the verdict, the largest item and what would shrink the peak."""
    table = Table("item", "size", "what", title=describe(plan.shape), title_justify="left", box=None)
    for line in plan.lines:
        table.add_row(line.name, fmt(line.bytes), line.what)
    table.add_section()
    table.add_row("[b]resident[/]", f"[b]{fmt(plan.resident)}[/]", "held from set-up to the end")
    table.add_row("[b]step peak[/]", f"[b]{fmt(plan.step_peak)}[/]", plan.step_note)
    table.add_row("[b]evaluation peak[/]", f"[b]{fmt(plan.eval_peak)}[/]", plan.eval_note)
    table.add_row("checkpoint", fmt(plan.checkpoint), "on disk, each: model + optimizer state")
    table.add_row("guard copies", fmt(plan.host), "pinned host memory, not the device's: the divergence guard's "
                  "2 good model + optimizer states")
    console.print(table)
    fits = plan.peak <= memory
    console.print(f"[b {'green' if fits else 'red'}]{verdict(plan, memory)}[/]", highlight=False)
    largest = plan.largest()
    console.print(f"largest item: {largest.name} ({fmt(largest.bytes)})", highlight=False)
    options = shrinks(plan, memory)
    if options:
        console.print("what would shrink the peak:", highlight=False)
        for s in options:
            console.print(f"  {escape(s.change)}: peak {fmt(s.peak)}{'' if s.fits(memory) else ' (still too big)'}",
                          highlight=False)
