"""Following a file another process appends lines to: ``metrics.jsonl`` and ``RUN_DIR/control``.

Both the dashboard's ``watch`` and a headless run's control file need the same thing:
the complete lines written since the last look, never a half-written one, and a fresh
start when the file was cut back (a resume truncates ``metrics.jsonl`` to its size at the
checkpoint and appends from there).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


class LineTail:
    """Complete lines appended to ``path`` since the last ``read``.

    The offset only moves past a newline, so a line still being written is read whole on a
    later call. The bytes just before the offset are remembered: if the file shrank or they
    changed, the file was rewritten and reading starts over from its beginning. A line
    longer than ``max_bytes`` is skipped up to its newline, so it cannot jam the reader for
    good; the sizes of the lines skipped by the last ``read`` are in ``oversized``.
    """

    TAIL = 64

    def __init__(self, path: Path, from_end: bool = False, max_bytes: int = 8 << 20) -> None:
        """``from_end``: skip what the file holds now (it exists, or is created empty, readable by its owner only)."""
        self.path, self.max_bytes = path, max_bytes
        self.offset = 0
        self.oversized: list[int] = []
        self._tail = b""
        self._skipping = 0
        if from_end:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            self.offset = path.stat().st_size

    def read(self) -> tuple[list[bytes], bool]:
        """``(lines, restarted)``: the new complete lines, and whether reading started over."""
        self.oversized = []
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return [], False
        restarted, lines = False, []
        with open(self.path, "rb") as fh:
            if size < self.offset or not self._tail_matches(fh):
                self.offset, self._tail, self._skipping, restarted = 0, b"", 0, True
            while self.offset < size and not lines:
                fh.seek(self.offset)
                chunk = fh.read(min(size - self.offset, self.max_bytes))
                if self._skipping:
                    newline = chunk.find(b"\n")
                    used = len(chunk) if newline < 0 else newline + 1
                    self._skipping += used
                    self.offset += used
                    if newline >= 0:
                        self.oversized.append(self._skipping)
                        self._skipping = 0
                    continue
                end = chunk.rfind(b"\n")
                if end < 0:
                    if len(chunk) < self.max_bytes:
                        break  # a line still being written
                    self._skipping, self.offset = len(chunk), self.offset + len(chunk)
                    continue
                lines = chunk[: end + 1].splitlines()
                self.offset += end + 1
            fh.seek(max(self.offset - self.TAIL, 0))
            self._tail = fh.read(min(self.offset, self.TAIL))
        return lines, restarted

    def _tail_matches(self, fh: BinaryIO) -> bool:
        if not self._tail:
            return True
        fh.seek(self.offset - len(self._tail))
        return fh.read(len(self._tail)) == self._tail
