"""The model's layer-0 table: shared storage for users and items, the same values and gradients as a concatenation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lgcn_tui.model.lightgcn import LightGCN


def model(mode: str) -> LightGCN:
    torch.manual_seed(0)
    pretrained = torch.randn(7, 4)
    return LightGCN(5, 7, 4, 2, "mean", mode, pretrained)


@pytest.mark.parametrize("separate", [False, True])
@pytest.mark.parametrize("mode", ["learnable", "residual", "frozen"])
def test_ego_equals_the_concatenation_with_the_same_gradients(mode: str, separate: bool) -> None:
    m = model(mode)
    m.set_alpha(0.7)
    if separate:  # as after a move to another device: the parameters no longer share storage
        m.user = nn.Parameter(m.user.detach().clone())
    weights = torch.randn(12, 4)
    ego = m.ego()
    assert torch.equal(ego, torch.cat([m.user, m.item_vectors()]))
    (ego * weights).sum().backward()
    assert torch.equal(m.user.grad, weights[:5])
    if mode == "learnable":
        assert torch.equal(m.item.grad, weights[5:])
    elif mode == "residual":
        assert torch.allclose(m.item.grad, 0.3 * weights[5:])
    else:
        assert m.item.grad is None


def test_learnable_ego_is_the_parameters_storage_not_a_copy() -> None:
    m = model("learnable")
    ego = m.ego()
    assert ego.data_ptr() == m.user.data_ptr()
    with torch.no_grad():
        m.item[2] += 1.0  # an optimizer step writes the parameters in place
    assert torch.equal(m.ego()[5 + 2], m.item[2])
