"""Chart data from a snapshot: downsampling to what a pane can show, and the LR plan ahead.

A pane a few dozen cells wide shows at most two points per cell in braille, so series are
cut to about twice the pane width before drawing; drawing cost then no longer grows with
the length of the run. Nothing here imports Textual.
"""

from __future__ import annotations

import numpy as np

from ..sinks.history import Snapshot


def downsample(x: np.ndarray, y: np.ndarray, points: int, how: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Reduce to at most ``points`` by grouping neighbours; ``how`` is mean, max (keeps spikes) or last.

    NaN values are ignored within a group; a group of only NaN stays NaN, so gaps survive.
    Vectorised with ``reduceat``: this runs for every chart at every refresh.
    """
    if points <= 0 or len(x) <= points:
        return x, y
    starts = (np.arange(points) * len(x)) // points
    ends = np.append(starts[1:], len(x))
    xs = x[ends - 1].astype(float)
    if how == "last":
        return xs, y[ends - 1].astype(float)
    finite = np.isfinite(y)
    counts = np.add.reduceat(finite.astype(int), starts)
    if how == "max":
        ys = np.fmax.reduceat(np.where(finite, y, np.nan), starts)
    else:
        ys = np.add.reduceat(np.where(finite, y, 0.0), starts) / np.maximum(counts, 1)
    return xs, np.where(counts > 0, ys, np.nan)


def log10(values: np.ndarray) -> np.ndarray:
    """log10 with zeros and negatives as NaN, which the plot leaves out."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(values)
    out[~np.isfinite(out)] = np.nan
    return out


def lr_plan(snap: Snapshot, group: str, points: int) -> tuple[np.ndarray, np.ndarray]:
    """The planned rate from the current step to the end of the run, at the group's current scale."""
    if snap.schedule is None or snap.step >= snap.total_steps:
        return np.array([]), np.array([])
    steps = np.unique(np.linspace(snap.step, snap.total_steps - 1, max(points, 2)).astype(int))
    return steps.astype(float), snap.schedule.planned(group, steps)
