"""Short text for numbers, durations and tiny inline bar charts; panes are narrow at 80×24."""

from __future__ import annotations

import math
from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"


def _exponent(value: float, decimals: int) -> str:
    mantissa, exponent = f"{value:.{decimals}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def short_number(value: float | None) -> str:
    """Three significant digits in at most six characters: ``0.0123``, ``3e-4``, ``1234``, ``1.2e4``.

    ``-`` for a missing value.
    """
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if 1e3 <= magnitude < 1e4:
        return f"{value:.0f}"
    if 1e-2 <= magnitude < 1e3:
        return f"{value:.3g}"
    return _exponent(value, 1)


def axis_number(value: float, width: int = 5) -> str:
    """The most precise of a few renderings that fits ``width`` characters (y-axis labels)."""
    if not math.isfinite(value):
        return "-"
    for text in (short_number(value), f"{value:.2g}", _exponent(value, 0)):
        if len(text) <= width:
            return text
    return _exponent(value, 0)[:width]


def duration(seconds: float | None) -> str:
    """``m:ss`` under an hour, ``h:mm:ss`` above; ``--:--`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def bars(values: Sequence[float], width: int, scale: tuple[float, float] | None = None) -> str:
    """A one-row block chart of the last ``width`` values, scaled between their min and max, or
    ``scale`` (low, high) so that two rows compare."""
    shown = [v for v in values if v is not None and math.isfinite(v)][-width:] if width > 0 else []
    if not shown:
        return ""
    low, high = scale if scale is not None else (min(shown), max(shown))
    shown = [min(max(v, low), high) for v in shown]
    span = high - low
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[top if span == 0 else round((v - low) / span * top)] for v in shown)
