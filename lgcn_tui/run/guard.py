"""Divergence: a real last good state kept in memory, loss spikes caught as well as NaN/inf.

When a step's loss or gradient is not finite, or the loss jumps above ``spike_factor``
times the median of the recent losses, the weights of the last few steps may already be
blown up — a checkpoint of them would only make a resume diverge again. So the guard keeps
copies of model, optimiser and schedule every ``keep_every`` steps of the current epoch
(always one at its start) and hands back the older of the last two, from before the climb
began. The run decides what to do next (``divergence.policy``).
"""

from __future__ import annotations

import copy
import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

from ..config import DivergenceConfig
from ..contract.schedule import LrSchedule

MIN_HISTORY = 10


@dataclass(frozen=True)
class GoodState:
    step: int
    step_in_epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    schedule: LrSchedule


class Guard:
    def __init__(self, cfg: DivergenceConfig) -> None:
        self.cfg = cfg
        self.losses: deque[float] = deque(maxlen=cfg.spike_window)
        self.kept: deque[GoodState] = deque(maxlen=2)

    def verdict(self, loss: float, grads_finite: bool) -> str | None:
        """Why this step diverged, or None; a finite loss joins the recent history only when it passes."""
        if not (math.isfinite(loss) and grads_finite):
            return "the loss or a gradient became NaN/inf"
        if self.cfg.spike_factor > 0 and len(self.losses) >= min(MIN_HISTORY, self.cfg.spike_window):
            median = statistics.median(self.losses)
            if loss > self.cfg.spike_factor * median > 0:
                return (f"the loss spiked to {loss:.4g}, {loss / median:.0f}× the median {median:.4g} of the "
                        f"last {len(self.losses)} steps (divergence.spike_factor = {self.cfg.spike_factor:g})")
        self.losses.append(loss)
        return None

    def due(self, step_in_epoch: int) -> bool:
        """Every ``keep_every`` steps of an epoch, and whenever none is kept (a run resumed mid-epoch)."""
        return not self.kept or step_in_epoch % self.cfg.keep_every == 0

    def keep(self, step: int, step_in_epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             schedule: LrSchedule) -> None:
        """Copy the state before step ``step``; a new epoch drops the previous epoch's copies."""
        if step_in_epoch == 0:
            self.kept.clear()
        self.kept.append(GoodState(step, step_in_epoch, {k: v.detach().clone() for k, v in model.state_dict().items()},
                                   copy.deepcopy(optimizer.state_dict()), schedule))

    def last_good(self) -> GoodState:
        return self.kept[0]

    def forget_recent(self) -> None:
        """After a rollback, the losses since the good state no longer describe the run."""
        self.losses.clear()
        while len(self.kept) > 1:
            self.kept.pop()
