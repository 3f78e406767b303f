"""``metrics.jsonl``: every event as one JSON line, the run's durable history.

Step lines are buffered and flushed at most every ``interval`` seconds; every other event
is flushed at once, and ``flush`` also fsyncs before a checkpoint records the file size.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from ..contract.events import Event, StepMetrics, event_from_dict


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class JsonlSink:
    def __init__(self, path: Path, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self._fh = open(path, "a", encoding="utf-8")
        self._last_flush = time.monotonic()

    def handle(self, event: Event) -> None:
        self._fh.write(json.dumps(_finite(event.to_dict())) + "\n")
        now = time.monotonic()
        if not isinstance(event, StepMetrics) or now - self._last_flush >= self.interval:
            self._fh.flush()
            self._last_flush = now

    def flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()


def read_events(path: Path) -> list[dict[str, Any]]:
    """All complete lines of a metrics file (a line still being written is skipped)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n"):
                out.append(json.loads(line))
    return out


def load_events(path: Path) -> list[Event]:
    """The typed events of a metrics file (a missing file has none)."""
    return [event_from_dict(line) for line in read_events(path)] if path.exists() else []
