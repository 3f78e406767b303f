"""Keep freed memory in the process instead of handing it back to the kernel after every step.

A training step allocates and frees several node-sized tensors (70,839 × d floats on
Gowalla). glibc serves blocks that large with fresh ``mmap`` pages and unmaps them on
``free``, so every step faults its whole working set in again: on Gowalla at 64-d that was
about 21,000 page faults (87 MB) per step, with the kernel's share of the step's CPU time
larger than every gather and index operation together. Asking malloc to serve them from its
heap and not to trim it makes each step reuse the previous step's pages. The price is that
the process keeps its peak memory until it exits, which a training run does anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Apply the malloc settings above; ``False`` where the C library has no glibc ``mallopt``."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
