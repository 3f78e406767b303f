"""Learning-rate and α schedules, and the residual blend of item vectors."""

from __future__ import annotations

import math

import pytest
import torch

from lgcn_tui.model.lightgcn import LightGCN
from lgcn_tui.contract.schedule import alpha_at, lr_at


def test_warmup_is_linear_up_to_the_base_rate() -> None:
    assert lr_at(0, 1e-3, warmup=10, total=100, min_lr=1e-5) == pytest.approx(1e-4)
    assert lr_at(4, 1e-3, warmup=10, total=100, min_lr=1e-5) == pytest.approx(5e-4)
    assert lr_at(9, 1e-3, warmup=10, total=100, min_lr=1e-5) == pytest.approx(1e-3)


def test_cosine_decays_from_base_to_the_floor() -> None:
    base, floor = 1e-3, 1e-5
    assert lr_at(10, base, 10, 110, floor) == pytest.approx(base)
    midway = floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * 0.5))
    assert lr_at(60, base, 10, 110, floor) == pytest.approx(midway)
    assert lr_at(110, base, 10, 110, floor) == pytest.approx(floor)
    assert lr_at(500, base, 10, 110, floor) == pytest.approx(floor)
    values = [lr_at(s, base, 10, 110, floor) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_delayed_item_start_is_zero_then_warms_up_from_its_start() -> None:
    assert lr_at(19, 3e-4, warmup=5, total=100, min_lr=1e-5, start=20) == 0.0
    assert lr_at(20, 3e-4, warmup=5, total=100, min_lr=1e-5, start=20) == pytest.approx(3e-4 / 5)
    assert lr_at(24, 3e-4, warmup=5, total=100, min_lr=1e-5, start=20) == pytest.approx(3e-4)
    assert lr_at(100, 3e-4, warmup=5, total=100, min_lr=1e-5, start=20) == pytest.approx(1e-5)


def test_alpha_decays_linearly_per_epoch_to_its_floor() -> None:
    assert [round(alpha_at(e, 0.8, 0.02, 0.0), 6) for e in (0, 1, 10)] == [0.8, 0.78, 0.6]
    assert alpha_at(39, 0.8, 0.02, 0.0) == pytest.approx(0.02)
    assert alpha_at(100, 0.8, 0.02, 0.0) == 0.0
    assert alpha_at(100, 0.8, 0.02, 0.3) == 0.3


def test_residual_item_vector_blends_frozen_and_learnable() -> None:
    pretrained = torch.randn(5, 4)
    model = LightGCN(3, 5, 4, 2, "mean", "residual", pretrained)
    assert torch.allclose(model.item_vectors(), pretrained)  # both parts start at the text vectors
    with torch.no_grad():
        model.item.add_(1.0)
    model.set_alpha(0.8)
    assert torch.allclose(model.item_vectors(), 0.8 * pretrained + 0.2 * (pretrained + 1.0))
    model.set_alpha(0.0)
    assert torch.allclose(model.item_vectors(), pretrained + 1.0)


def test_frozen_items_get_no_gradient_and_learnable_do() -> None:
    pretrained = torch.randn(5, 4)
    frozen = LightGCN(3, 5, 4, 1, "mean", "frozen", pretrained)
    learnable = LightGCN(3, 5, 4, 1, "mean", "learnable", pretrained)
    for model in (frozen, learnable):
        model.ego().sum().backward()
    assert frozen.item.grad is None and frozen.user.grad is not None
    assert learnable.item.grad is not None
    assert torch.equal(frozen.item_vectors(), pretrained)


def test_users_are_xavier_uniform() -> None:
    model = LightGCN(400, 5, 64, 1, "mean", "learnable", None)
    bound = math.sqrt(6 / (400 + 64))
    assert model.user.abs().max() <= bound
    assert model.user.abs().max() > 0.9 * bound
