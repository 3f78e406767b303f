"""Where a run computes: the device it asked for, checked before anything is written."""

from __future__ import annotations

import torch

from ..errors import UserError
from ..train.memory import keep_freed_memory


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("run.device = 'cuda' but PyTorch sees no CUDA device; use run.device=cpu or auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def prepare_process(threads: int) -> None:
    """Process-wide settings a training process wants before its first tensor.

    ``threads``: on a 2-core machine shared with other jobs, one thread made a small
    model's step 5x faster than two (measured), as OpenMP threads wait on each other.
    """
    keep_freed_memory()
    if threads:
        torch.set_num_threads(threads)
