"""Sampled softmax (InfoNCE over items), a ranking loss: the positive against M sampled items.

    ℓ = −1/B Σ_r log( e^{s(u_r, i_r)/τ} / (e^{s(u_r, i_r)/τ} + Σ_{j : n_j ≠ i_r} e^{s(u_r, n_j)/τ}) )

BPR compares each positive with one negative; the softmax compares it with M at once, which
ranks better on top-k metrics (Wu et al., "On the Effectiveness of Sampled Softmax Loss for
Item Recommendation", 2023). The M negatives n_1..n_M are drawn uniformly, with
replacement, from the items with training edges (never a cold item), once per batch from the context's generator and shared by every row, so the
scores are one B × M matrix product beside the B positive scores, and their final vectors
come from the step's own propagation (``extra_items``: at most M more rows in it). Uniform draws make the logQ
correction a constant, so none is applied. Scores are ``cosine`` (L2-normalised final
vectors; the temperature sets the sharpness) or ``dot`` (raw final vectors, as BPR).

Masking: a sampled negative equal to a row's own positive is dropped from that row only
(its logit is −∞); otherwise the positive would sit in its own denominator and be pushed
down against itself. Other items the user interacted with are not masked: with shared
negatives they are rare (M / n_items per training item) and cost a per-row lookup.

Defaults: M = 256 (the cited paper's gains flatten within a few hundred negatives; the extra
rows and the B × 256 product stay small beside the step), τ = 0.1 with cosine.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import Config
from . import Batch, Context, register


class SampledSoftmax:
    name = "softmax"

    def __init__(self, negatives: int, temperature: float, score: str) -> None:
        self.negatives, self.temperature, self.cosine = negatives, temperature, score == "cosine"

    def extra_items(self, ctx: Context) -> torch.Tensor:
        """The batch's shared negatives, propagated with its own rows (one propagation a step)."""
        items = ctx.adj.linked_items
        return items[torch.randint(len(items), (self.negatives,), generator=ctx.generator, device=items.device)]

    def __call__(self, batch: Batch, ctx: Context) -> torch.Tensor:
        negatives, neg_out = batch.extra, batch.extra_out
        assert negatives is not None and neg_out is not None, "the batch was made without this term"
        with torch.autocast(device_type=batch.users.device.type, enabled=False):
            user, pos, neg = batch.user_out.float(), batch.pos_out.float(), neg_out.float()
            if self.cosine:
                user, pos, neg = F.normalize(user, dim=-1), F.normalize(pos, dim=-1), F.normalize(neg, dim=-1)
            own = (user * pos).sum(-1, keepdim=True)
            others = (user @ neg.T).masked_fill(negatives.unsqueeze(0) == batch.pos.unsqueeze(1), float("-inf"))
            logits = torch.cat([own, others], 1) / self.temperature
            return (torch.logsumexp(logits, 1) - logits[:, 0]).mean()


def _make(cfg: Config) -> SampledSoftmax:
    o = cfg.objective
    return SampledSoftmax(o.softmax_negatives, o.softmax_temperature, o.softmax_score)


register("softmax", _make, ranking=True)
