"""Divergence: a real last good state kept in memory, loss spikes caught as well as NaN/inf.

When a step's loss or gradient is not finite, or the loss jumps above ``spike_factor``
times the median of the recent losses, the weights of the last few steps may already be
blown up — a checkpoint of them would only make a resume diverge again. So the guard keeps
copies of model, optimiser and schedule every ``keep_every`` steps of the current epoch
(always one at its start) and hands back the older of the last two, from before the climb
began. The run decides what to do next (``divergence.policy``).

The copies live in host memory. On a GPU two good states are two more copies of the
tables and the optimiser's moments (40 GB for 1M users + 1M items × 768 with AdamW), more
than the model's own footprint; in pinned host memory they cost device memory nothing, and
a copy from the device into a pinned buffer is queued behind the step that made the state,
so keeping one never makes the host wait. The buffers of the copy that drops out are
reused for the next, so pinning (slow) happens twice per run, not every ``keep_every``
steps. ``last_good`` waits for the copies to land before anyone reads them.
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


def _to_host(value: Any, reuse: Any) -> Any:
    """``value`` (a state dict: tensors in dicts and lists) copied to host memory, into the
    tensors of ``reuse`` (the same structure from an earlier copy) where they fit."""
    if isinstance(value, torch.Tensor):
        fits = (isinstance(reuse, torch.Tensor) and reuse.shape == value.shape and reuse.dtype == value.dtype
                and reuse is not value)
        if value.device.type == "cpu":
            return reuse.copy_(value) if fits else value.detach().clone()
        target = reuse if fits else torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
        return target.copy_(value.detach(), non_blocking=True)
    if isinstance(value, dict):
        return {k: _to_host(v, reuse.get(k) if isinstance(reuse, dict) else None) for k, v in value.items()}
    if isinstance(value, list | tuple):
        parts = [_to_host(v, reuse[i] if isinstance(reuse, list | tuple) and i < len(reuse) else None)
                 for i, v in enumerate(value)]
        return type(value)(parts)
    return copy.deepcopy(value)


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
        """Copy the state before step ``step`` to host memory; a new epoch drops the previous
        epoch's copies (their buffers are reused)."""
        spare = self.kept.popleft() if len(self.kept) == self.kept.maxlen else None
        if step_in_epoch == 0:
            spare = spare or (self.kept.popleft() if self.kept else None)
            self.kept.clear()
        reuse = (spare.model, spare.optimizer) if spare is not None else ({}, {})
        self.kept.append(GoodState(step, step_in_epoch, _to_host(model.state_dict(), reuse[0]),
                                   _to_host(optimizer.state_dict(), reuse[1]), schedule))

    def last_good(self) -> GoodState:
        """The older kept state, its copies landed (they are queued behind the device's work)."""
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return self.kept[0]

    def forget_recent(self) -> None:
        """After a rollback, the losses since the good state no longer describe the run."""
        self.losses.clear()
        while len(self.kept) > 1:
            self.kept.pop()
