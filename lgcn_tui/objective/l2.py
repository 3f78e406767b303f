"""The L2 penalty on the batch's layer-0 vectors, as in the LightGCN paper (weight ``optim.reg``).

    reg · ½(‖e_u‖² + ‖e_i‖² + ‖e_j‖²) / batch

It acts on the batch only, unlike the optimiser's weight decay, which shrinks every row.
"""

from __future__ import annotations

import torch

from ..config import Config
from . import Batch, Context, register


class L2Penalty:
    name = "reg"

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def __call__(self, batch: Batch, ctx: Context) -> torch.Tensor:
        squares = batch.user_ego.pow(2).sum() + batch.pos_ego.pow(2).sum() + batch.neg_ego.pow(2).sum()
        return self.weight * 0.5 * squares / len(batch.users)


def _make(cfg: Config) -> L2Penalty:
    return L2Penalty(cfg.optim.reg)


register("reg", _make)
