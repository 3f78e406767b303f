"""The batch's distinct users and items, found without a host round trip.

Contrastive terms compare each distinct user (item) of a batch once. ``torch.unique``
returns as many rows as there are distinct values, so the host must learn that count, and
on an accelerator it waits for every queued kernel first. A mask of first occurrences has
the batch's own shape, and a term that weights rows by it computes the same value.
"""

from __future__ import annotations

import torch


def first_occurrence(ids: torch.Tensor) -> torch.Tensor:
    """Bool, shaped like ``ids``: is this the first time its value appears?"""
    order = torch.argsort(ids, stable=True)
    ordered = ids.index_select(0, order)
    first = torch.ones_like(ordered, dtype=torch.bool)
    torch.ne(ordered[1:], ordered[:-1], out=first[1:])
    return torch.empty_like(first).scatter_(0, order, first)
