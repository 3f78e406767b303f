"""The learning-rate plan as a value: a pure function of group, step and manual scale.

The run creates it from the config and carries it in the run-started and LR-changed
events; the trainer asks it for each step's rate and the dashboard asks the same object
for the planned curve, so the two can never drift apart. No other module knows the rule:

- each group warms up linearly over ``warmup_steps`` to its base rate, then follows a
  cosine to ``min_lr`` at ``total_steps``;
- the item group may start late: its rate is 0 before ``item_start_step`` and its warmup
  begins there;
- a rate set by hand at step s rescales the group (``lr_scale``) so that the rate at s is
  the one asked for and the schedule's shape continues from there.

The residual weight α has its own, simpler schedule (``alpha_at``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GROUPS = ("user", "item")


def lr_at(step: int, base: float, warmup: int, total: int, min_lr: float, start: int = 0) -> float:
    if step < start:
        return 0.0
    t = step - start
    span = max(total - start, 1)
    if warmup > 0 and t < warmup:
        return base * (t + 1) / warmup
    progress = min(max(t - warmup, 0) / max(span - warmup, 1), 1.0)
    floor = min(min_lr, base)
    return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def alpha_at(epoch: int, alpha0: float, decay: float, floor: float) -> float:
    """Residual weight of the frozen part: linear decay per epoch, never below ``floor``."""
    return max(floor, alpha0 - decay * epoch)


@dataclass(frozen=True)
class LrSchedule:
    """Both groups' plan; its ``to_dict`` is the ``schedule`` object of ``metrics.jsonl``."""

    user_lr: float
    item_lr: float
    min_lr: float
    warmup_steps: int
    item_start_step: int
    total_steps: int
    lr_scale: dict[str, float] = field(default_factory=lambda: {g: 1.0 for g in GROUPS})

    @classmethod
    def plan(cls, user_lr: float, item_lr: float, min_lr: float, warmup_epochs: float, item_start_epoch: int,
             steps_per_epoch: int, epochs: int) -> LrSchedule:
        return cls(user_lr=user_lr, item_lr=item_lr, min_lr=min_lr,
                   warmup_steps=round(warmup_epochs * steps_per_epoch),
                   item_start_step=item_start_epoch * steps_per_epoch, total_steps=steps_per_epoch * epochs)

    def base(self, group: str) -> float:
        return self.user_lr if group == "user" else self.item_lr

    def scheduled(self, group: str, step: int) -> float:
        """The rate before any manual rescaling."""
        start = 0 if group == "user" else self.item_start_step
        return lr_at(step, self.base(group), self.warmup_steps, self.total_steps, self.min_lr, start)

    def lr(self, group: str, step: int) -> float:
        """The rate the run uses for ``group`` at ``step``."""
        return self.lr_scale[group] * self.scheduled(group, step)

    def planned(self, group: str, steps: np.ndarray) -> np.ndarray:
        """``lr`` at each of ``steps``, for drawing the plan ahead of the run."""
        return np.array([self.lr(group, int(s)) for s in steps], dtype=float)

    def with_rate(self, group: str, lr: float, step: int) -> LrSchedule:
        """The plan after a rate was set by hand at ``step``: ``lr`` there, the same shape after."""
        scheduled = self.scheduled(group, step)
        scale = lr / (scheduled if scheduled > 0 else self.base(group))
        return dataclasses.replace(self, lr_scale={**self.lr_scale, group: scale})

    def scaled(self, factor: float) -> LrSchedule:
        """Both groups' rates times ``factor`` from now on (a rollback after divergence halves them)."""
        return dataclasses.replace(self, lr_scale={g: factor * v for g, v in self.lr_scale.items()})

    def starting_rate(self, group: str) -> float:
        """What ``group`` runs at once it is past its start: for a dialog before the item group starts."""
        return self.base(group) * self.lr_scale[group]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LrSchedule:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["lr_scale"] = {g: float(values.get("lr_scale", {}).get(g, 1.0)) for g in GROUPS}
        return cls(**values)
