"""Progress of an embedding run: a bar on a terminal, plain lines anywhere else.

A rich bar on a pipe, a file or under nohup draws nothing until it ends, so a run of
many minutes would look hung; there a line every 10 % (or every minute, whichever comes
first) says how far it got and how long it has left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

PARTS = 10  # a line each time another tenth is done
EVERY_S = 60.0


@contextmanager
def track(console: Console, total: int) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``, to call as each ``n`` texts are encoded."""
    if console.is_terminal:
        columns = (TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TextColumn("texts"),
                   TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("embed", total=total)
            yield lambda n: bar.advance(task, n)
    else:
        yield ProgressLines(console, total).advance


class ProgressLines:
    """``encoded 12,800 / 120,000 texts (10 %), 45 s, ETA 6 min`` at each 10 % and at least once a minute."""

    def __init__(self, console: Console, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.total, self.clock = console, total, clock
        self.done = 0
        self.started = self.last = clock()

    def advance(self, n: int) -> None:
        before, self.done = self.done, self.done + n
        now = self.clock()
        crossed = PARTS * self.done // self.total > PARTS * before // self.total
        if crossed or self.done == self.total or now - self.last >= EVERY_S:
            self.last = now
            self.console.print(self.line(now - self.started), markup=False, highlight=False)

    def line(self, elapsed: float) -> str:
        left = elapsed * (self.total - self.done) / self.done
        eta = f", ETA {duration(left)}" if self.done < self.total else ""
        return (f"encoded {self.done:,} / {self.total:,} texts ({100 * self.done // self.total} %), "
                f"{duration(elapsed)}{eta}")


def duration(seconds: float) -> str:
    """Seconds as a person reads them in a log: ``45 s``, ``6 min``, ``1.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
