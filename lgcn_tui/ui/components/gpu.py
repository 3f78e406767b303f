"""The GPU line: utilisation, memory, power and temperature of the run's GPU; hidden on the CPU."""

from __future__ import annotations

from textual.markup import escape
from textual.widgets import Static

from ...contract import events as ev
from ...sinks.history import Snapshot
from ..theme import MUTED


def _gb(size: int) -> str:
    """Decimal gigabytes, as ``lgcn-tui plan`` writes them, so the two compare at a glance."""
    return f"{size / 1e9:.1f}"


def gpu_parts(sample: ev.GpuSample) -> list[tuple[str, str]]:
    """``(label, value)`` pairs in the order they are dropped last to first when the line is narrow."""
    parts = []
    if sample.utilization is not None:
        parts.append(("gpu", f"{sample.utilization:.0f}%"))
    if sample.memory_used is not None and sample.memory_total is not None:
        parts.append(("mem", f"{_gb(sample.memory_used)}/{_gb(sample.memory_total)} GB"))
    parts.append(("alloc", f"{_gb(sample.allocated)} GB peak {_gb(sample.peak_allocated)}"))
    if sample.power_w is not None:
        parts.append(("", f"{sample.power_w:.0f} W"))
    if sample.temperature_c is not None:
        parts.append(("", f"{sample.temperature_c:.0f} °C"))
    return parts


def gpu_text(sample: ev.GpuSample, width: int) -> str:
    """The figures that fit ``width`` columns, labels muted; the allocator's are kept longest."""
    parts = gpu_parts(sample)
    while len(parts) > 1 and len(" │ ".join(f"{label} {value}".strip() for label, value in parts)) > width:
        parts.remove(next(p for p in reversed(parts) if p[0] != "alloc"))
    bar = f" [{MUTED}]│[/] "
    return bar.join(f"[{MUTED}]{label}[/] {escape(value)}" if label else escape(value) for label, value in parts)


class GpuLine(Static):
    """One line under the progress bar once the run has published a ``GpuSample``; until then
    (and for a CPU run, always) it takes no room, so the panes keep their rows."""

    def show(self, snap: Snapshot) -> None:
        if snap.gpu is None:
            return
        self.display = True
        self.update(gpu_text(snap.gpu, self.content_size.width or 10_000), layout=False)
