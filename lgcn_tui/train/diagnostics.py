"""How much of its pretrained start each item vector keeps, and how alike items have become.

Both read layer-0 item vectors: they are what training changes. The similarity histogram
uses one fixed sample of item pairs per run, so histograms from different evaluations
compare like with like.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def retention(current: torch.Tensor, start: torch.Tensor) -> tuple[float, float]:
    """Mean and 10th percentile of each item's cosine to its start vector (zero rows skipped)."""
    keep = (start.norm(dim=1) > 0) & (current.norm(dim=1) > 0)
    if not bool(keep.any()):
        return 1.0, 1.0
    cos = F.cosine_similarity(current[keep].float(), start[keep].float(), dim=1)
    return float(cos.mean()), float(torch.quantile(cos, 0.1))


def sample_pairs(n_items: int, n_pairs: int, seed: int) -> torch.Tensor:
    """A fixed sample of distinct-item pairs, ``(n, 2)``."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randint(n_items, (n_pairs,), generator=gen)
    b = (a + 1 + torch.randint(max(n_items - 1, 1), (n_pairs,), generator=gen)) % n_items
    return torch.stack([a, b], 1)


def similarity_histogram(vectors: torch.Tensor, pairs: torch.Tensor, bins: int) -> tuple[list[float], list[int]]:
    """Histogram of cosine similarity over ``pairs``, on fixed edges from -1 to 1."""
    v = F.normalize(vectors.float(), dim=1)
    cos = (v[pairs[:, 0]] * v[pairs[:, 1]]).sum(1).clamp(-1, 1).cpu()
    counts = torch.histc(cos, bins=bins, min=-1.0, max=1.0)
    edges = torch.linspace(-1.0, 1.0, bins + 1)
    return [round(float(e), 6) for e in edges], [int(c) for c in counts]
