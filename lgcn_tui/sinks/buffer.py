"""A sink that only appends, so a live dashboard costs the training thread one deque append per event.

The dashboard drains it into its ``History`` on its own timer (a few times a second): the
bucketing, smoothing and locking a history does per event then run on the UI thread, in
batches, instead of inside every training step. ``deque.append`` and ``popleft`` are
atomic under CPython, so neither side takes a lock.
"""

from __future__ import annotations

from collections import deque

from ..contract.events import Event, Sink


class EventBuffer:
    def __init__(self) -> None:
        self._events: deque[Event] = deque()

    def handle(self, event: Event) -> None:
        self._events.append(event)

    def __len__(self) -> int:
        """Events waiting for the viewer: a backlog that grows means the UI falls behind."""
        return len(self._events)

    def drain(self, into: Sink) -> int:
        """Hand every buffered event to ``into``, oldest first; returns how many."""
        n = 0
        while self._events:
            into.handle(self._events.popleft())
            n += 1
        return n

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None
