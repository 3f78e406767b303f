"""Ranking quality per evaluation: the latest, the best so far, the popularity baseline, every K."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ...sinks.history import Snapshot
from ...contract.events import EvalResult
from ...train.ranking import GROUPS
from ..formatting import bars
from ..overlay import Overlay
from ..theme import MUTED, OVERLAY

HEADLINE_K = 20


def _ks(metrics: dict[str, float]) -> list[int]:
    """The cut-offs evaluated; keys such as ``recall@20/head`` are the popularity breakdown, not a K."""
    return sorted({int(key.split("@")[1]) for key in metrics if "@" in key and "/" not in key})


def _breakdown(metrics: dict[str, float] | None) -> Text | None:
    """R@20 on head / tail / cold items at one evaluation, or None when it has no breakdown."""
    if not metrics or not any(f"recall@{HEADLINE_K}/{g}" in metrics for g in GROUPS):
        return None
    parts: list[tuple[str, str] | str] = [(f"R@{HEADLINE_K}", MUTED)]
    for group in GROUPS:
        value = metrics.get(f"recall@{HEADLINE_K}/{group}")
        parts += [(f" {group} ", MUTED), "-" if value is None else f"{value:.3f}"]
    return Text.assemble(*parts)


def _fmt(metrics: dict[str, float] | None, key: str) -> str:
    value = metrics.get(key) if metrics else None
    return "-" if value is None else f"{value:.4f}"


class EvalPane(Static):
    """Recall and NDCG at every K for one split (valid when there is one), R@20 on head / tail / cold
    items at the latest evaluation, plus R@20/N@20 per evaluation; lines that do not fit are left out
    from the least telling (N@20's trend, or in a comparison the breakdown)."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.overlay: Overlay | None = None
        self.shown: tuple[object, ...] | None = None

    def show(self, snap: Snapshot) -> None:
        """Redrawn when an evaluation arrives: keyed by the newest one, since the history keeps a
        bounded number and its length stops changing on a long run."""
        newest = (snap.evals[-1].step, snap.evals[-1].split, snap.evals[-1].t) if snap.evals else None
        key = (newest, len(snap.evals), len(snap.baseline), self.content_size.width, self.content_size.height,
               id(self.overlay))
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
        breakdown = [line for line in (_breakdown(last.metrics if last else None),) if line is not None]
        lines = [*breakdown, *trend]
        if self.overlay is not None:
            lines = [*self._compared(evals, split, width), *breakdown]
        height = self.content_size.height
        if height:  # 0 before the pane is laid out: nothing to fit yet
            lines = lines[: max(height - table.row_count - 1, 0)]
        self.update(Group(table, *lines), layout=False)

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
