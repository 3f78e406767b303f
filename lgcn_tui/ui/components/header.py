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
    """Run folder, preset, device and dataset sizes on the left (cut to fit); the state on the right."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown: tuple[str, str] | None = None
        self.run_text = Static(id="header-run")
        self.state_text = Static(id="header-state")

    def compose(self) -> ComposeResult:
        yield self.run_text
        yield self.state_text

    def show(self, snap: Snapshot, *, fallback_name: str, watching: bool, state: str, device_note: str) -> None:
        run = snap.run
        if run is None:
            left = f"[b]{escape(fallback_name)}[/]  [{MUTED}]waiting for the run to start[/]"
        else:
            d = run.dataset
            data = f"{_count(d.get('users', 0))}×{_count(d.get('items', 0))} · {_count(d.get('train', 0))} train"
            preset = f" · {escape(run.preset)}" if run.preset else ""
            bar = f"  [{MUTED}]│[/] "
            left = f"[b]{escape(Path(run.run_dir).name)}[/]{preset}{bar}{escape(run.device)}{device_note}{bar}{data}"
        mode = f"[{MUTED}]watch[/] " if watching else ""
        right = f"{mode}[b {STATE_COLOURS.get(state, MUTED)}]● {state}[/]"
        if (left, right) == self.shown:
            return
        self.shown = (left, right)
        self.run_text.update(left, layout=False)
        self.state_text.update(right, layout=False)
