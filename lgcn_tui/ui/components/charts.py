"""Line charts of the per-step series: loss, gradient norms, learning rates.

Built on ``textual-plot``'s ``PlotWidget`` (braille lines, several series, axes). Each
chart is redrawn from a snapshot at the dashboard's refresh rate, from at most two points
per cell, so drawing cost does not grow with the run. Panes are small at 80×24: y ticks
are few, x ticks appear only once the pane is tall enough to spare a row for them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from textual import events
from textual_plot import HiResMode, PlotWidget
from textual_plot.axis_formatter import NumericAxisFormatter

from ...sinks.history import Snapshot
from ..formatting import short_number
from ..series import downsample, log10, lr_plan
from ..theme import CLIP, GROUP_COLOURS, GROUP_PLAN_COLOURS, LOSS_EMA, LOSS_RAW, NOW

BRAILLE = HiResMode.BRAILLE
LABEL_WIDTH = 6
TALL = 10


class FewTicks(NumericAxisFormatter):
    """Nice-number ticks, but only as many as the pane has rows for; labels stay short.

    With ``log`` the axis holds log10 values and the labels show the values themselves.
    """

    def __init__(self, log: bool = False) -> None:
        self.log = log
        self.count = 2

    def get_ticks(self, min_: float, max_: float, max_ticks: int = 8) -> list[float]:
        span = max_ - min_
        if not (math.isfinite(span) and span > 0):
            return [min_] if math.isfinite(min_) else []
        target = max(self.count, 1)
        power = 10 ** math.floor(math.log10(span / target))
        interval = next(m * power for m in (1, 2, 5, 10) if span / (m * power) <= target)
        first = math.ceil(min_ / interval) * interval
        return [float(t) for t in np.arange(first, max_ + interval * 1e-6, interval)]

    def get_labels_for_ticks(self, ticks: Sequence[float]) -> list[str]:
        return [short_number(10**t if self.log else t) for t in ticks]


class Chart(PlotWidget, can_focus=False):
    """A compact, non-interactive plot with its legend and current values in the border title."""

    def __init__(self, title: str, *, log: bool = False, id: str | None = None) -> None:
        super().__init__(id=id, allow_pan_and_zoom=False)
        self.border_title = title
        self.y_ticks = FewTicks(log)

    def on_mount(self) -> None:
        self.margin_top = 0
        self.margin_left = LABEL_WIDTH
        self.set_y_formatter(self.y_ticks)
        self._fit()

    def on_resize(self, event: events.Resize) -> None:
        self._fit()

    def _fit(self) -> None:
        """Ticks and margins for the current size: a 4-row plot gets two y ticks, not eight."""
        rows = self.content_size.height
        self.margin_bottom = 1 if rows >= TALL else 0
        self.y_ticks.count = max(2, (rows - self.margin_bottom - 2) // 2)

    def points(self) -> int:
        """Two braille dots per cell across the plot area."""
        return max(2 * (self.content_size.width - LABEL_WIDTH - 2), 8)

    def line(self, x: np.ndarray, y: np.ndarray, style: str) -> None:
        if len(x) >= 2:
            self.plot(x, y, line_style=style, hires_mode=BRAILLE)

    def show(self, snap: Snapshot) -> None:
        raise NotImplementedError


class LossChart(Chart):
    """Smoothed loss over the run; the raw per-step loss is drawn faint underneath unless hidden."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__("loss", id=id)
        self.raw = True

    def show(self, snap: Snapshot) -> None:
        s = snap.steps
        self.clear()
        if not len(s):
            self.border_title = "loss"
            return
        n = self.points()
        if self.raw:
            self.line(*downsample(s.step, s.loss, n, "mean"), LOSS_RAW)
        self.line(*downsample(s.step, s.loss_ema, n, "last"), LOSS_EMA)
        raw = f"  [{LOSS_RAW}]raw {short_number(snap.last.loss)}[/]" if snap.last and self.raw else ""
        self.border_title = f"loss [{LOSS_EMA}]{short_number(float(s.loss_ema[-1]))}[/]{raw}"


class GradChart(Chart):
    """Gradient norms of both groups before clipping, on a log scale with the clip threshold as a line.

    Log scale because the threshold is often orders of magnitude above typical norms; on a
    linear axis the norms would be a flat line at zero.
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__("grad norm", log=True, id=id)

    def show(self, snap: Snapshot) -> None:
        s = snap.steps
        self.clear()
        clip = snap.run.clip_norm if snap.run else 0.0
        clip_text = f"  [{CLIP}]clip {short_number(clip)}[/]" if clip else "  no clip"
        if not len(s):
            self.border_title = f"grad norm{clip_text}"
            return
        n = self.points()
        for group, values in (("user", s.grad_user), ("item", s.grad_item)):
            self.line(*downsample(s.step, log10(values), n, "max"), GROUP_COLOURS[group])
        if clip:
            self.line(np.array([s.step[0], s.step[-1]]), np.log10([clip, clip]), CLIP)
        last = snap.last
        values = "  ".join(f"[{GROUP_COLOURS[g]}]{g} {short_number(getattr(last, 'grad_' + g))}[/]"
                           for g in ("user", "item")) if last else ""
        self.border_title = f"grad {values}{clip_text}"


class LrChart(Chart):
    """Both groups' rates so far, and the planned schedule ahead (dim) after the current step."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__("lr", id=id)

    def show(self, snap: Snapshot) -> None:
        s = snap.steps
        self.clear()
        if snap.run is None:
            self.border_title = "lr"
            return
        n = self.points()
        total = max(snap.total_steps, 1)
        past_points = max(int(n * snap.step / total), 2)
        for group in ("user", "item"):
            past = s.lr_user if group == "user" else s.lr_item
            if len(s):
                self.line(*downsample(s.step, past, past_points, "last"), GROUP_COLOURS[group])
            self.line(*lr_plan(snap, group, max(n - past_points, 2)), GROUP_PLAN_COLOURS[group])
        self.set_xlimits(0, total)
        if 0 < snap.step < total:
            self.add_v_line(snap.step, NOW)
        values = "  ".join(f"[{GROUP_COLOURS[g]}]{g} {short_number(snap.lr_now.get(g))}[/]" for g in ("user", "item"))
        self.border_title = f"lr {values}"
