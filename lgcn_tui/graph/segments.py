"""Gathering many index ranges at once, the step both a CSR row slice and a per-user mask need."""

from __future__ import annotations

import torch


def segments(starts: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(owner, index)`` over the concatenated ranges ``[starts[j], starts[j] + lengths[j])``:
    for each element, its range number ``j`` (int32) and its position, in time proportional
    to the output rather than to the array the ranges point into. ``index`` keeps the
    integer type of ``starts`` (int32 gathers are faster than int64 ones on CPU)."""
    total = int(lengths.sum())
    offsets = torch.cumsum(lengths, 0, dtype=lengths.dtype) - lengths
    index = torch.repeat_interleave(starts - offsets, lengths, output_size=total)
    index += torch.arange(total, dtype=index.dtype, device=starts.device)
    owner = torch.repeat_interleave(torch.arange(len(lengths), dtype=torch.int32, device=starts.device), lengths,
                                    output_size=total)
    return owner, index
