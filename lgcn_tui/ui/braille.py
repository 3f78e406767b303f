"""Rasterise line series into braille cells: 2×4 dots per terminal cell, one colour per cell.

The charts draw through this instead of a plotting widget because redraw cost decides
whether the dashboard slows training (see benchmarks/bench_dashboard.py): every segment is
rasterised with numpy, and a row comes out as a few runs of equal colour, so a chart costs
about a millisecond however long the run. Nothing here imports Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Bit of each dot within a braille cell, indexed [row 0..3][column 0..1] (Unicode order).
DOT_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint8)
BLANK = 0x2800


@dataclass(frozen=True)
class Series:
    """A polyline; NaN values break it. Later series are drawn over earlier ones."""

    x: np.ndarray
    y: np.ndarray
    colour: str


@dataclass(frozen=True)
class Figure:
    """What one chart shows: lines, horizontal marks (a threshold) and vertical marks (now)."""

    series: list[Series] = field(default_factory=list)
    hlines: list[tuple[float, str]] = field(default_factory=list)
    vlines: list[tuple[float, str]] = field(default_factory=list)
    xlim: tuple[float, float] | None = None

    def limits(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """Data range in x and y, or None when there is nothing to draw; a flat line gets a small span."""
        xs = [s.x[np.isfinite(s.y)] for s in self.series]
        ys = [s.y[np.isfinite(s.y)] for s in self.series] + [np.array([y for y, _ in self.hlines])]
        xs = [x for x in xs if len(x)]
        ys = [y for y in ys if len(y)]
        if not ys or (not xs and self.xlim is None):
            return None
        x0, x1 = self.xlim if self.xlim else (min(float(x.min()) for x in xs), max(float(x.max()) for x in xs))
        y0, y1 = min(float(y.min()) for y in ys), max(float(y.max()) for y in ys)
        if y1 <= y0:
            pad = abs(y0) * 0.1 or 1e-9
            y0, y1 = y0 - pad, y1 + pad
        return (x0, x1 if x1 > x0 else x0 + 1), (y0, y1)


def _segments(cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every dot on the straight segments between consecutive points (vectorised DDA)."""
    c0, c1, r0, r1 = cols[:-1], cols[1:], rows[:-1], rows[1:]
    n = np.maximum(np.abs(c1 - c0), np.abs(r1 - r0)).astype(int) + 1
    start = np.repeat(np.cumsum(n) - n, n)
    frac = (np.arange(int(n.sum())) - start) / np.repeat(np.maximum(n - 1, 1), n)
    seg = np.repeat(np.arange(len(n)), n)
    return (np.rint(c0[seg] + (c1 - c0)[seg] * frac).astype(int),
            np.rint(r0[seg] + (r1 - r0)[seg] * frac).astype(int))


def rasterise(fig: Figure, width: int, height: int,
              limits: tuple[tuple[float, float], tuple[float, float]]) -> list[list[tuple[str, str | None]]]:
    """Rows of ``(text, colour)`` runs filling ``width`` cells; colour None is blank space."""
    if width <= 0 or height <= 0:
        return []
    (x0, x1), (y0, y1) = limits
    w, h = width * 2, height * 4
    bits = np.zeros((height, width), dtype=np.uint8)
    owner = np.full((height, width), -1, dtype=int)
    colours: list[str] = []

    def to_cols(x: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(x, dtype=float) - x0) / (x1 - x0) * (w - 1), 0, w - 1)

    def to_rows(y: np.ndarray) -> np.ndarray:
        return np.clip((y1 - np.asarray(y, dtype=float)) / (y1 - y0) * (h - 1), 0, h - 1)

    def plot(cols: np.ndarray, rows: np.ndarray, colour: str) -> None:
        colours.append(colour)
        cells_r, cells_c = rows // 4, cols // 2
        np.bitwise_or.at(bits, (cells_r, cells_c), DOT_BITS[rows % 4, cols % 2])
        owner[cells_r, cells_c] = len(colours) - 1

    for y, colour in fig.hlines:
        cols = np.arange(0, w, 2)
        plot(cols, np.full(len(cols), int(round(float(to_rows(np.array([y]))[0])))), colour)
    for x, colour in fig.vlines:
        rows = np.arange(0, h, 2)
        plot(np.full(len(rows), int(round(float(to_cols(np.array([x]))[0])))), rows, colour)
    for s in fig.series:
        ok = np.isfinite(s.y) & np.isfinite(s.x)
        # Split at gaps so a NaN breaks the line instead of bridging it.
        for run in np.split(np.arange(len(ok)), np.flatnonzero(np.diff(ok.astype(int))) + 1):
            if len(run) and ok[run[0]]:
                cols, rows = to_cols(s.x[run]), to_rows(s.y[run])
                if len(run) == 1:
                    plot(np.rint(cols).astype(int), np.rint(rows).astype(int), s.colour)
                else:
                    plot(*_segments(cols, rows), s.colour)
    codes = np.where(bits > 0, BLANK + bits.astype(np.uint32), ord(" ")).astype("<u4")
    owners = np.where(bits > 0, owner, -1)
    out = []
    for r in range(height):
        text = codes[r].tobytes().decode("utf-32-le")
        bounds = [0, *(np.flatnonzero(np.diff(owners[r])) + 1).tolist(), width]
        out.append([(text[a:b], colours[owners[r, a]] if owners[r, a] >= 0 else None)
                    for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    return out
