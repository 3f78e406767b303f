"""Line charts of the per-step series: loss, gradient norms, learning rates.

Each chart turns a snapshot into a ``Figure`` (a few series and marks), rasterises it into
braille cells and caches the rendered lines until the data or the size changes. At 80×24
a chart is a 6-column y axis and a few rows of plot; taller panes add an x axis row.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.strip import Strip
from textual.widget import Widget

from ...sinks.history import Snapshot
from ..braille import Figure, Series, rasterise
from ..formatting import axis_number, short_number
from ..series import downsample, log10, lr_plan
from ..overlay import Overlay
from ..theme import CLIP, GROUP_COLOURS, GROUP_PLAN_COLOURS, LOSS_EMA, LOSS_RAW, MUTED, NOW, OVERLAY

LABEL_WIDTH = 6
TALL = 10


@lru_cache(maxsize=64)
def _colour(colour: str) -> Style:
    return Style(color=colour)


class Chart(Widget):
    """A non-interactive chart: legend and current values in the border title, data below."""

    def __init__(self, title: str, *, log: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = title
        self.log_scale = log
        self.raw = False
        self.figure = Figure()
        self.overlay: Overlay | None = None
        self.shown: tuple[object, ...] | None = None
        self._strips: list[Strip] | None = None

    def show(self, snap: Snapshot) -> None:
        """Rebuild only when the series, the plan or the pane changed."""
        s = snap.steps
        key = (len(s), s.step[-1] if len(s) else None, snap.step, snap.run is not None,
               snap.schedule, tuple(snap.lr_now.values()), self.raw, self.size, id(self.overlay))
        if key != self.shown:
            self.shown = key
            self.figure = self.build(snap)
            self._strips = None
            self.refresh()

    def build(self, snap: Snapshot) -> Figure:
        raise NotImplementedError

    def points(self) -> int:
        """Two braille dots per cell across the plot area."""
        return max(2 * (self.size.width - LABEL_WIDTH), 8)

    def on_resize(self, event: events.Resize) -> None:
        self._strips = None

    def render_line(self, y: int) -> Strip:
        if self._strips is None:
            self._strips = self._draw()
        if y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width, self.rich_style)

    def _label(self, value: float) -> str:
        return axis_number(10**value if self.log_scale else value, LABEL_WIDTH - 1)

    def _draw(self) -> list[Strip]:
        width, height = self.size
        base = self.rich_style
        muted = base + _colour(MUTED)
        axis = 1 if height >= TALL else 0
        rows, plot_width = height - axis, width - LABEL_WIDTH
        limits = self.figure.limits()
        if limits is None or rows < 1 or plot_width < 2:
            return [Strip.blank(width, base)] * height
        (x0, x1), (y0, y1) = limits
        labels = {0: self._label(y1), rows - 1: self._label(y0)}
        if rows >= 5:
            labels[rows // 2] = self._label((y0 + y1) / 2)
        strips = []
        for r, runs in enumerate(rasterise(self.figure, plot_width, rows, limits)):
            label = labels.get(r)
            segments = [Segment(f"{label or '':>{LABEL_WIDTH - 1}}"[: LABEL_WIDTH - 1], muted),
                        Segment("┤" if label else "│", muted)]
            segments += [Segment(text, base + _colour(colour) if colour else base) for text, colour in runs]
            strips.append(Strip(segments, width))
        if axis:
            left, right = f"{x0:.0f}", f"{x1:.0f}"
            gap = max(plot_width - len(left) - len(right) - 4, 0)
            text = f"{'':>{LABEL_WIDTH - 1}}└{left}{' ' * (gap // 2)}step{' ' * (gap - gap // 2)}{right}"
            strips.append(Strip([Segment(text[:width], muted)], width))
        return strips


class LossChart(Chart):
    """Smoothed loss over the run; the raw per-step loss is drawn faint underneath unless hidden.

    The title names each term of the objective with its value at the last step, whatever
    terms the config chose; they add up to the raw loss, which the title shows instead for
    runs recorded before steps carried their terms.
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__("loss", id=id)
        self.raw = True

    def build(self, snap: Snapshot) -> Figure:
        s = snap.steps
        if not len(s):
            self.border_title = "loss"
            return Figure()
        n = self.points()
        series = [Series(*downsample(s.step, s.loss, n, "mean"), LOSS_RAW)] if self.raw else []
        series.append(Series(*downsample(s.step, s.loss_ema, n, "last"), LOSS_EMA))
        end = float(max(snap.step, 1))
        other = self.overlay.snap.steps if self.overlay is not None else None
        if other is not None and len(other):
            series.insert(0, Series(*downsample(other.step, other.loss_ema, n, "last"), OVERLAY))
            end = max(end, float(other.step[-1]))
        last = snap.last
        if last is not None and last.terms:  # they add up to the raw loss, so they stand in for it
            after = " ·" + "".join(f" {name} {short_number(value)}" for name, value in last.terms.items())
        else:
            after = f"  [{LOSS_RAW}]raw {short_number(last.loss)}[/]" if last and self.raw else ""
        if other is not None and len(other):
            after += f"  [{OVERLAY}]vs {self.overlay.name} {short_number(float(other.loss_ema[-1]))}[/]"
        self.border_title = f"loss [{LOSS_EMA}]{short_number(float(s.loss_ema[-1]))}[/]{after}"
        return Figure(series, xlim=(0.0, end))


class GradChart(Chart):
    """Gradient norms of both groups before clipping, on a log scale, with the clip threshold as a line.

    Log scale because the threshold is often orders of magnitude above typical norms; on a
    linear axis the norms would be a flat line at zero.
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__("grad norm", log=True, id=id)

    def build(self, snap: Snapshot) -> Figure:
        s = snap.steps
        clip = snap.run.clip_norm if snap.run else 0.0
        clip_text = f"  [{CLIP}]clip {short_number(clip)}[/]" if clip else "  no clip"
        last = snap.last
        values = "  ".join(f"[{GROUP_COLOURS[g]}]{g} {short_number(getattr(last, 'grad_' + g))}[/]"
                           for g in ("user", "item")) if last else ""
        self.border_title = f"grad {values}{clip_text}" if values else f"grad norm{clip_text}"
        if not len(s):
            return Figure()
        n = self.points()
        series = [Series(*downsample(s.step, log10(values), n, "max"), GROUP_COLOURS[group])
                  for group, values in (("user", s.grad_user), ("item", s.grad_item))]
        return Figure(series, hlines=[(float(np.log10(clip)), CLIP)] if clip else [],
                      xlim=(0.0, float(max(snap.step, 1))))


class LrChart(Chart):
    """Both groups' rates so far, and the planned schedule ahead (dim) after the current step."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__("lr", id=id)

    def build(self, snap: Snapshot) -> Figure:
        values = "  ".join(f"[{GROUP_COLOURS[g]}]{g} {short_number(snap.lr_now.get(g))}[/]" for g in ("user", "item"))
        self.border_title = f"lr {values}" if snap.run else "lr"
        if snap.run is None:
            return Figure()
        s = snap.steps
        n = self.points()
        total = max(snap.total_steps, 1)
        past_points = max(int(n * snap.step / total), 2)
        series = []
        for group in ("user", "item"):
            series.append(Series(*lr_plan(snap, group, max(n - past_points, 2)), GROUP_PLAN_COLOURS[group]))
            if len(s):
                past = s.lr_user if group == "user" else s.lr_item
                series.append(Series(*downsample(s.step, past, past_points, "last"), GROUP_COLOURS[group]))
        now = [(float(snap.step), NOW)] if 0 < snap.step < total else []
        return Figure(series, vlines=now, xlim=(0.0, float(total)))
