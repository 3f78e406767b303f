"""The cost model behind docs/scale.md: memory per rank and bytes sent per step, DDP, FSDP and row-sharded.

Nothing here is measured: it is arithmetic over the sizes below, printed as the tables
that docs/scale.md shows, so the document can be regenerated when an assumption changes.

    python benchmarks/scale_model.py

Assumptions (each is in the table's notes): fp32 everywhere; Adam (parameter, gradient and
two moments: 16 bytes per table element); L = 3 layers; a step propagates the whole graph
(LightGCN's gradient reaches every node within L hops of the batch, which is nearly all),
6 sparse products of Â with an N×d table per step (3 forward, 3 backward), each moving
``nnz·(8 + 4d) + 4·N·d`` bytes of GPU memory (index and value, one gathered row per
non-zero, the output); 12·N·d bytes of working buffers for the layer outputs; the CSR
adjacency at 8 bytes per non-zero. Links: NVLink 4 (H100 SXM) 450 GB/s per direction per
GPU; InfiniBand NDR 400 Gb/s = 50 GB/s per GPU; HBM3 3.35 TB/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

L = 3
PRODUCTS = 2 * L
HBM = 3.35e12
LINKS = {"NVLink": 450e9, "InfiniBand": 50e9}
GB = 1e9


@dataclass(frozen=True)
class Graph:
    name: str
    users: int
    items: int
    train: int
    dim: int
    halo: dict[int, float]  # k -> halo rows per rank as a fraction of N (measured, or modelled)

    @property
    def nodes(self) -> int:
        return self.users + self.items

    @property
    def nnz(self) -> int:
        return 2 * self.train


def uniform_halo(nodes: int, nnz: int, k: int) -> float:
    """Distinct non-owned neighbours of a rank's rows if neighbours were uniform: an upper bound."""
    return min(1 - math.exp(-nnz / (k * nodes)), 1 - 1 / k)


# Gowalla: measured on ../shared/data/gowalla (random row partition; see docs/scale.md).
GOWALLA = Graph("Gowalla", 29_858, 40_981, 810_128, 64, {2: 0.499, 8: 0.725, 64: 0.725})
# Amazon-Book: the LightGCN paper's split; halo modelled as Gowalla's measured fractions.
AMAZON = Graph("Amazon-Book", 52_643, 91_599, 2_380_730, 64, {2: 0.499, 8: 0.725, 64: 0.725})
# A 10M-item catalogue with 768-d (text-embedding-sized) vectors: 10M users and 500M
# training interactions assumed; halo from the uniform-neighbour bound.
_CAT = (10_000_000, 10_000_000, 500_000_000)
CATALOGUE = Graph("10M items × 768-d", *_CAT, 768,
                  {k: uniform_halo(_CAT[0] + _CAT[1], 2 * _CAT[2], k) for k in (2, 8, 64)})


def memory(g: Graph, k: int, strategy: str) -> float:
    """Bytes one rank holds at the peak of a step."""
    table = 4 * g.nodes * g.dim
    adjacency = 8 * g.nnz
    if strategy == "ddp":
        return 4 * table + 3 * table + adjacency
    if strategy == "fsdp":
        return 4 * table / k + table + 3 * table + adjacency  # shards, the gathered table, buffers
    halo = g.halo[k] * table
    return (4 + 3) * table / k + halo + adjacency / k


def sent(g: Graph, k: int, strategy: str) -> float:
    """Bytes one rank sends per step (ring collectives)."""
    table = 4 * g.nodes * g.dim
    if strategy == "ddp":
        return 2 * (k - 1) / k * table  # all-reduce of the dense gradient
    if strategy == "fsdp":
        return 3 * (k - 1) / k * table  # all-gather (forward, backward), reduce-scatter
    return 2 * L * g.halo[k] * table  # halo rows out in each layer, their gradients back


def compute_s(g: Graph, k: int, strategy: str) -> float:
    """Seconds of sparse products per step on one H100 (memory-bound); only row-sharding splits them."""
    per_product = g.nnz * (8 + 4 * g.dim) + 4 * g.nodes * g.dim
    whole = PRODUCTS * per_product / HBM
    return whole / k if strategy == "row" else whole


def crossover(g: Graph, k: int) -> float:
    """Link bandwidth (B/s) above which row-sharded steps beat DDP's: its extra bytes cost less than the
    propagation it splits saves."""
    extra = sent(g, k, "row") - sent(g, k, "ddp")
    saved = compute_s(g, k, "ddp") - compute_s(g, k, "row")
    return extra / saved if extra > 0 else 0.0


def main() -> None:
    for g in (GOWALLA, AMAZON, CATALOGUE):
        print(f"\n### {g.name}: N = {g.nodes:,} nodes, nnz(Â) = {g.nnz:,}, d = {g.dim}, one table "
              f"{4 * g.nodes * g.dim / GB:.3g} GB\n")
        print("| ranks k | strategy | memory per rank (GB) | sent per step per rank (GB) | propagation per step (ms, H100) "
              "| comm per step NVLink (ms) | comm per step IB (ms) |")
        print("|---|---|---|---|---|---|---|")
        for k in (2, 8, 64):
            for strategy in ("ddp", "fsdp", "row"):
                mem, out, comp = memory(g, k, strategy), sent(g, k, strategy), compute_s(g, k, strategy)
                print(f"| {k} | {strategy} | {mem / GB:.3g} | {out / GB:.3g} | {1e3 * comp:.3g} "
                      f"| {1e3 * out / LINKS['NVLink']:.3g} | {1e3 * out / LINKS['InfiniBand']:.3g} |")
        print("\nRow-sharded beats DDP per step above a link bandwidth of: "
              + "; ".join(f"k = {k}: {crossover(g, k) / GB:.3g} GB/s (halo {g.halo[k]:.0%} of N)" for k in (2, 8, 64)))


if __name__ == "__main__":
    main()
