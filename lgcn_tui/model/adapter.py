"""The item encoder of ``item_mode = "adapter"``: a small trainable MLP over frozen text vectors.

AlphaRec (Sheng et al., "Language Representations Can be What Recommenders Need", 2024)
maps language-model item vectors through a two-layer MLP into the graph's embedding space
and trains only the MLP: every item, cold ones included, gets its vector from its text,
and the text vector's width (384, 768, 4096) no longer decides the model's. Here the
depth and width are settings: ``layers`` linear maps with LeakyReLU between them, hidden
width ``hidden``; one layer is a linear projection.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class AdapterSpec:
    """``model.adapter_layers``, ``model.adapter_hidden``, ``model.adapter_residual``."""

    layers: int
    hidden: int
    residual: bool


class Adapter(nn.Module):
    def __init__(self, d_in: int, d_out: int, layers: int, hidden: int) -> None:
        super().__init__()
        widths = [d_in, *([hidden] * (layers - 1)), d_out]
        parts: list[nn.Module] = []
        for k, (a, b) in enumerate(zip(widths, widths[1:])):
            if k:
                parts.append(nn.LeakyReLU())
            parts.append(nn.Linear(a, b))
        self.net = nn.Sequential(*parts)

    def reset_parameters(self) -> None:
        for part in self.net:
            if isinstance(part, nn.Linear):
                part.reset_parameters()

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.net(text)
