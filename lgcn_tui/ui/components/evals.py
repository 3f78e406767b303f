"""Ranking quality per evaluation: the latest, the best so far, the popularity baseline, every K."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ...sinks.history import Snapshot
from ...contract.events import EvalResult
from ..formatting import bars
from ..overlay import Overlay
from ..theme import MUTED, OVERLAY

HEADLINE_K = 20


def _ks(metrics: dict[str, float]) -> list[int]:
    return sorted({int(key.split("@")[1]) for key in metrics if "@" in key})


def _fmt(metrics: dict[str, float] | None, key: str) -> str:
    value = metrics.get(key) if metrics else None
    return "-" if value is None else f"{value:.4f}"


class EvalPane(Static):
    """Recall and NDCG at every K for one split (valid when there is one), plus R@20/N@20 per evaluation."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.overlay: Overlay | None = None
        self.shown: tuple[object, ...] | None = None

    def show(self, snap: Snapshot) -> None:
        """Redrawn when an evaluation arrives: keyed by the newest one, since the history keeps a
        bounded number and its length stops changing on a long run."""
        newest = (snap.evals[-1].step, snap.evals[-1].split, snap.evals[-1].t) if snap.evals else None
        key = (newest, len(snap.evals), len(snap.baseline), self.content_size.width, id(self.overlay))
        if key == self.shown:
            return
        self.shown = key
        split = "valid" if any(e.split == "valid" for e in snap.evals) or "valid" in snap.baseline else "test"
        evals: list[EvalResult] = [e for e in snap.evals if e.split == split]
        last = evals[-1] if evals else None
        chose = next((e.step for e in reversed(snap.evals) if e.best), None)
        best = next((e for e in reversed(evals) if e.step == chose), None)
        baseline = snap.baseline.get(split)
        title = f"eval {split}"
        if last is not None:
            title += f" · ep {last.epoch}" + (f" · best ep {best.epoch}" if best else "")
        self.border_title = title
        source = last.metrics if last else baseline
        if source is None:
            self.update(Text("no evaluation yet (press e to run one)", style=MUTED), layout=False)
            return
        table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False, header_style=f"bold {MUTED}")
        for name in ("K", "recall", "ndcg", "best R", "pop R"):
            table.add_column(name, justify="right", no_wrap=True)
        for k in _ks(source):
            style = "bold" if k == HEADLINE_K else ""
            table.add_row(str(k), _fmt(last.metrics if last else None, f"recall@{k}"),
                          _fmt(last.metrics if last else None, f"ndcg@{k}"),
                          _fmt(best.metrics if best else None, f"recall@{k}"), _fmt(baseline, f"recall@{k}"),
                          style=style)
        width = max(self.content_size.width - 6, 4)
        trend = []
        for key, label in ((f"recall@{HEADLINE_K}", "R@20"), (f"ndcg@{HEADLINE_K}", "N@20")):
            values = [v for v in (e.metrics.get(key) for e in evals) if v is not None]
            if values:
                trend.append(Text.assemble((f"{label} ", MUTED), (bars(values, width), "#87ff87")))
        if self.overlay is not None:
            trend = self._compared(evals, split, width)
        self.update(Group(table, *trend), layout=False)

    def _compared(self, evals: list[EvalResult], split: str, width: int) -> list[Text]:
        """R@20 of this run and of the overlay ("vs", named in the loss pane's title) on one scale,
        each with its best value."""
        assert self.overlay is not None
        key = f"recall@{HEADLINE_K}"
        mine = [e.metrics[key] for e in evals if key in e.metrics]
        theirs = [e.metrics[key] for e in self.overlay.snap.evals if e.split == split and key in e.metrics]
        both = mine + theirs
        if not both:
            return [Text(f"vs {self.overlay.name}: no {split} evaluation yet", style=OVERLAY)]
        scale = (min(both), max(both))
        rows = []
        for label, values, colour in (("R@20", mine, "#87ff87"), ("vs  ", theirs, OVERLAY)):
            best = f" {max(values):.4f}" if values else " -"
            rows.append(Text.assemble((f"{label} ", MUTED), (bars(values, width - 7, scale), colour), (best, colour)))
        return rows
