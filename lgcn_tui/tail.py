"""Following a file another process appends lines to: ``metrics.jsonl`` and ``RUN_DIR/control``.

Both the dashboard's ``watch`` and a headless run's control file need the same thing:
the complete lines written since the last look, never a half-written one, and a fresh
start when the file was cut back (a resume truncates ``metrics.jsonl`` to its size at the
checkpoint and appends from there).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO


class LineTail:
    """Complete lines appended to ``path`` since the last ``read``.

    The offset only moves past a newline, so a line still being written is read whole on a
    later call. The bytes just before the offset are remembered: if the file shrank or they
    changed, the file was rewritten and reading starts over from its beginning.
    """

    TAIL = 64

    def __init__(self, path: Path, from_end: bool = False, max_bytes: int = 8 << 20) -> None:
        """``from_end``: skip what the file holds now (it exists or is created empty)."""
        self.path, self.max_bytes = path, max_bytes
        self.offset = 0
        self._tail = b""
        if from_end:
            path.touch()
            self.offset = path.stat().st_size

    def read(self) -> tuple[list[bytes], bool]:
        """``(lines, restarted)``: the new complete lines, and whether reading started over."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return [], False
        restarted = False
        with open(self.path, "rb") as fh:
            if size < self.offset or not self._tail_matches(fh):
                self.offset, self._tail, restarted = 0, b"", True
            if size <= self.offset:
                return [], restarted
            fh.seek(self.offset)
            chunk = fh.read(min(size - self.offset, self.max_bytes))
        end = chunk.rfind(b"\n")
        if end < 0:
            return [], restarted
        complete = chunk[: end + 1]
        self.offset += len(complete)
        self._tail = complete[-self.TAIL:]
        return complete.splitlines(), restarted

    def _tail_matches(self, fh: BinaryIO) -> bool:
        if not self._tail:
            return True
        fh.seek(self.offset - len(self._tail))
        return fh.read(len(self._tail)) == self._tail
