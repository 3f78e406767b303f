"""BPR, the LightGCN paper's ranking loss: −log σ(s(u,i) − s(u,j)) averaged over the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import Config
from . import Batch, Context, register


class Bpr:
    name = "bpr"

    def __call__(self, batch: Batch, ctx: Context) -> torch.Tensor:
        margin = (batch.user_out * batch.pos_out).sum(-1) - (batch.user_out * batch.neg_out).sum(-1)
        return F.softplus(-margin).mean()


def _make(_cfg: Config) -> Bpr:
    return Bpr()


register("bpr", _make, ranking=True)
