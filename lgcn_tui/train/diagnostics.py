"""How much of its pretrained start each item vector keeps, and how alike items have become.

Both read layer-0 item vectors: they are what training changes. The similarity histogram
uses one fixed sample of item pairs per run, so histograms from different evaluations
compare like with like. Both work on row blocks or on the sampled rows only, so a 1M-item
catalogue needs no full-size float copy of its vectors (the start vectors are kept in
bfloat16: ``model.lightgcn``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def retention(current: torch.Tensor, start: torch.Tensor, rows: int = 1 << 16) -> tuple[float, float]:
    """Mean and 10th percentile of each item's cosine to its start vector (zero rows skipped),
    in float32 whatever the tables' dtypes, ``rows`` items at a time."""
    parts = []
    for first in range(0, len(current), rows):
        now, then = current[first : first + rows].float(), start[first : first + rows].float()
        keep = (then.norm(dim=1) > 0) & (now.norm(dim=1) > 0)
        parts.append(F.cosine_similarity(now[keep], then[keep], dim=1))
    cos = torch.cat(parts)
    if not len(cos):
        return 1.0, 1.0
    return float(cos.mean()), float(torch.quantile(cos, 0.1))


def sample_pairs(n_items: int, n_pairs: int, seed: int) -> torch.Tensor:
    """A fixed sample of distinct-item pairs, ``(n, 2)``."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randint(n_items, (n_pairs,), generator=gen)
    b = (a + 1 + torch.randint(max(n_items - 1, 1), (n_pairs,), generator=gen)) % n_items
    return torch.stack([a, b], 1)


def similarity_histogram(vectors: torch.Tensor, pairs: torch.Tensor, bins: int) -> tuple[list[float], list[int]]:
    """Histogram of cosine similarity over ``pairs``, on fixed edges from -1 to 1."""
    first = F.normalize(vectors.index_select(0, pairs[:, 0]).float(), dim=1)
    second = F.normalize(vectors.index_select(0, pairs[:, 1]).float(), dim=1)
    cos = (first * second).sum(1).clamp(-1, 1).cpu()
    counts = torch.histc(cos, bins=bins, min=-1.0, max=1.0)
    edges = torch.linspace(-1.0, 1.0, bins + 1)
    return [round(float(e), 6) for e in edges], [int(c) for c in counts]
