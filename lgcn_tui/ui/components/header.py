"""The top line: which run this is, on what data and device, and what it is doing now."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.markup import escape
from textual.widgets import Static

from ...sinks.history import Snapshot
from ..theme import MUTED, STATE_COLOURS


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e4 else str(n)


class RunHeader(Horizontal):
    """Run folder, dataset sizes, device and preset on the left; the state on the right.

    The dataset size is never cut: when the line is too narrow, the preset goes first, then the
    device's detail, then the device, and only then is the run's name shortened.
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown: tuple[str, str] | None = None
        self.run_text = Static(id="header-run")
        self.state_text = Static(id="header-state")

    def compose(self) -> ComposeResult:
        yield self.run_text
        yield self.state_text

    def show(self, snap: Snapshot, *, fallback_name: str, watching: bool, state: str) -> None:
        run = snap.run
        if run is None:
            left = f"[b]{escape(fallback_name)}[/]  [{MUTED}]waiting for the run to start[/]"
        else:
            left = self._fit(Path(run.run_dir).name, run.preset, run.device, run.dataset,
                             self.run_text.content_size.width or 10_000)
        mode = f"[{MUTED}]watch[/] " if watching else ""
        right = f"{mode}[b {STATE_COLOURS.get(state, MUTED)}]● {state}[/]"
        if (left, right) == self.shown:
            return
        self.shown = (left, right)
        self.run_text.update(left, layout=False)
        self.state_text.update(right, layout=False)

    @staticmethod
    def _fit(name: str, preset: str, device: str, dataset: dict[str, int], width: int) -> str:
        data = f"{_count(dataset.get('users', 0))}×{_count(dataset.get('items', 0))} · " \
               f"{_count(dataset.get('train', 0))} train"
        short_device = device.split(" (")[0]
        for parts in ((f"{name} · {preset}" if preset else name, data, device), (name, data, device),
                      (name, data, short_device), (name, data)):
            if len(" │ ".join(parts)) <= width:
                break
        else:
            room = max(width - len(data) - 3, 2)
            parts = (name if len(name) <= room else name[:room - 1] + "…", data)
        head, *rest = parts
        bar = f" [{MUTED}]│[/] "
        return f"[b]{escape(head)}[/]" + "".join(f"{bar}{escape(p)}" for p in rest)
