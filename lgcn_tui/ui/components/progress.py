"""The progress line: epoch and step, a bar, steps per second and ETAs; or the error, once there is one."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ...sinks.history import Snapshot
from ..formatting import duration
from ..theme import MUTED, STATE_COLOURS


class ProgressLine(Static):
    """One line while training (updated without a layout pass, it changes every refresh); the
    error grows it to as many lines as the message needs, once."""

    def show(self, snap: Snapshot) -> None:
        if snap.error:
            where = snap.error_checkpoint
            tail = f"  last checkpoint: {where}" if where and where not in snap.error else ""
            self.add_class("-error")
            self.update(Text(f"✖ {snap.error}{tail}", style=f"bold {STATE_COLOURS['error']}"))
            return
        run = snap.run
        if run is None:
            self.update(Text("waiting for the first events…", style=MUTED), layout=False)
            return
        epoch = min(snap.epoch + 1, run.epochs)
        total = max(snap.total_steps, 1)
        left = f"epoch {epoch}/{run.epochs}  step {snap.step}/{total} "
        epoch_left, run_left = snap.eta()
        rate = f"{snap.rate:.1f}" if snap.rate else "-"
        right = f" {rate} steps/s  ETA epoch {duration(epoch_left)} · run {duration(run_left)}"
        if snap.state != "running":
            right = f" {rate} steps/s  {snap.state}" if not snap.finished else f" {snap.state}"
        width = max(self.content_size.width - len(left) - len(right), 4)
        done = round(width * snap.step / total)
        text = Text(left)
        text.append("━" * done, style=STATE_COLOURS["running"])
        text.append("─" * (width - done), style=MUTED)
        text.append(right)
        self.update(text, layout=False)
