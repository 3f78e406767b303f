"""Where a run computes: the device it asked for, checked before anything is written."""

from __future__ import annotations

import os

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


def prepare_process(threads: int, deterministic: bool, amp: bool, device: torch.device) -> None:
    """Process-wide settings a training process wants before its first tensor.

    ``threads``: on a 2-core machine shared with other jobs, one thread made a small
    model's step 5x faster than two (measured), as OpenMP threads wait on each other.
    ``deterministic``: PyTorch's deterministic kernels (on CUDA ``index_add_`` then adds in
    a fixed order, so a resumed run can equal an uninterrupted one bit for bit); cuBLAS needs
    its workspace fixed before its first call for that. ``amp`` on CUDA also lets fp32
    matrix products use TF32.
    """
    keep_freed_memory()
    if threads:
        torch.set_num_threads(threads)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = amp


def precision(amp: bool, device: torch.device) -> torch.dtype:
    """The dtype of the graph products and scores: bf16 under ``run.amp`` on CUDA. The CPU has
    no fast bf16 sparse kernels, so there ``run.amp`` does nothing and every product is fp32."""
    return torch.bfloat16 if amp and device.type == "cuda" else torch.float32
