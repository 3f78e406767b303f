"""Embedding diagnostics: α (residual weight), retention of the pretrained vectors, item–item similarity."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from ...sinks.history import Snapshot
from ..formatting import bars
from ..series import downsample
from ..theme import MUTED

ACCENT = "#d787ff"


class EmbeddingPane(Vertical):
    """α and retention as values with their history; the cosine histogram of the last evaluation."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown: tuple[object, ...] | None = None
        self.values = Static(id="emb-values")
        self.hist = Sparkline([], id="emb-hist")
        self.axis = Static(id="emb-axis")

    def compose(self) -> ComposeResult:
        yield self.values
        yield self.hist
        yield self.axis

    def show(self, snap: Snapshot) -> None:
        """Redrawn only when α, the diagnostics or the size changed: α moves once an epoch."""
        alpha = snap.steps.alpha
        key = (snap.run is not None, len(snap.retention), float(alpha[-1]) if len(alpha) else None,
               snap.diagnostics.t if snap.diagnostics else None, self.content_size.width)
        if key == self.shown:
            return
        self.shown = key
        width = max(self.content_size.width - 22, 4)
        text = Text()
        run = snap.run
        if run is not None and run.item_mode != "residual":
            text.append("α n/a", style="bold")
            text.append(f" (item mode {run.item_mode})", style=MUTED)
        elif len(alpha) and math.isfinite(alpha[-1]):
            _, shown = downsample(snap.steps.step, alpha, width, "last")
            text.append(f"α {alpha[-1]:.3f}  ", style="bold")
            text.append(bars(list(shown), width), style=ACCENT)
        else:
            text.append("α -", style="bold")
        d = snap.diagnostics
        text.append("\n")
        if run is not None and run.item_mode == "xavier":
            text.append("retention n/a", style="bold")
            text.append(" (no pretrained items)", style=MUTED)
        elif d is None or d.retention is None:
            text.append("retention - (after the first evaluation)", style=MUTED)
        else:
            text.append(f"retention {d.retention:.3f}", style="bold")
            text.append(f" p10 {d.retention_p10:.3f} ", style=MUTED)
            text.append(bars([r for _, r in snap.retention], width), style=ACCENT)
        self.values.update(text, layout=False)
        hist, axis = self.hist, self.axis
        if d is not None and d.sim_counts:
            hist.data = [float(c) for c in d.sim_counts]
            span = max(self.content_size.width, 20)
            low, high = f"{d.sim_edges[0]:.2f}", f"{d.sim_edges[-1]:.2f}"
            middle = "item–item cosine"
            gap = max(span - len(low) - len(high) - len(middle), 2)
            axis.update(Text(f"{low}{' ' * (gap // 2)}{middle}{' ' * (gap - gap // 2)}{high}", style=MUTED),
                        layout=False)
        else:
            hist.data = []
            axis.update(Text("cosine histogram: after an evaluation", style=MUTED), layout=False)
        self.border_title = f"embeddings · ep {d.epoch}" if d else "embeddings"
