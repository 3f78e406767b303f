"""A sink that hands each event to a thread of its own, for loggers too slow to sit in a training step.

Turning a step into TensorBoard protobufs or a W&B history row costs a few hundred
microseconds of Python, a tenth of a GPU step; here the training thread pays one queue put
and the conversion runs beside it. ``flush`` waits for the queue to drain, so a checkpoint
still follows everything handled before it.

A logger that fails stops being fed, and its error is raised once, from the next ``flush``
(before a checkpoint is written): the run stops with a message naming the setting that
switches the logger off, rather than training on with a log that silently ended.
"""

from __future__ import annotations

import queue
import threading

from ..contract.events import Event, Sink


class OffThread:
    """``target`` receives every event, in order, on a daemon thread. ``key`` and ``off``: the
    setting that switches it on and the value that switches it off, named when it fails."""

    def __init__(self, target: Sink, key: str, off: str) -> None:
        self.target, self.key, self.off = target, key, off
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._failed = False
        self._error: Exception | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=f"sink {key}", daemon=True)
        self._thread.start()

    def handle(self, event: Event) -> None:
        if not self._failed:
            self._queue.put(event)

    def flush(self) -> None:
        self._queue.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"logging for {self.key} failed ({type(error).__name__}: {error}); "
                               f"resume with --set {self.key}={self.off} to train without it") from error
        if not self._failed:
            self.target.flush()

    def close(self) -> None:
        """Drain, stop the thread and close the logger; safe to repeat."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self.target.close()

    def _work(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                if not self._failed:
                    self.target.handle(event)
            except Exception as exc:  # noqa: BLE001 - raised on the training thread by the next flush
                self._failed, self._error = True, exc
            finally:
                self._queue.task_done()
