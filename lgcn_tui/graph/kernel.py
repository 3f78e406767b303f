"""Which product kernel multiplies by Â fastest on this device, measured on the run's own Â.

``bag`` (``F.embedding_bag`` over the CSR arrays) was measured about 3× faster than
``torch.sparse.mm`` on the CPU; on CUDA cuSPARSE's CSR product may win, as ``bag`` sums a
row in one warp and the busiest rows (1,415 neighbours on Gowalla) can set its time. No
rule says which wins on a given card, table width and graph, so ``graph.kernel = auto``
times both when a run starts and the run's config records the winner, which a resume then
reuses (the kernels compute the same products; only their rounding order differs).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from .adjacency import Adjacency
from .propagate import spmm

KERNELS = ("bag", "sparse")


def _timed(run: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Milliseconds per call after one warm-up call, the device drained before reading the clock."""
    run()
    _drain(device)
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    _drain(device)
    return (time.perf_counter() - started) * 1000 / repeats


def _drain(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(adj: Adjacency, dim: int, repeats: int = 3) -> dict[str, float]:
    """Milliseconds per full product ``Â x`` with a ``dim``-wide table, for each kernel the
    device runs (one that raises, say for the products' dtype, is left out)."""
    device = adj.matrix.device
    x = torch.randn(adj.n_nodes, dim, device=device, generator=torch.Generator(device).manual_seed(0)).to(adj.dtype)
    times: dict[str, float] = {}
    for kernel in KERNELS:
        try:
            times[kernel] = _timed(lambda k=kernel: spmm(adj.matrix, x, k), device, repeats)
        except (RuntimeError, NotImplementedError):
            continue
    return times


def choose(adj: Adjacency, dim: int) -> tuple[str, str]:
    """The fastest kernel and a sentence saying what was measured."""
    times = measure(adj, dim)
    best = min(times, key=times.__getitem__)
    figures = ", ".join(f"{k} {ms:.2f} ms" for k, ms in sorted(times.items(), key=lambda kv: kv[1]))
    return best, (f"graph.kernel = auto chose {best!r} ({figures} per product at d={dim}, "
                  f"{adj.dtype} on {adj.matrix.device.type}); the run's config records it for a resume")
