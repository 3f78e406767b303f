"""Learning-rate and α schedules as pure functions of the step, easy to test and to plot ahead.

Each group warms up linearly over ``warmup`` steps to its base rate, then follows a cosine
to ``min_lr`` at ``total`` steps. The item group may start late: its rate is 0 before
``start`` and its warmup begins there. A rate set by hand at step s rescales the group so
that the rate at s is the one asked for and the schedule's shape continues from there.
"""

from __future__ import annotations

import math


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
