"""Every supervised loss against values worked by hand (docs/methods.md formulas), plus gradients."""

from __future__ import annotations

import math

import pytest
import torch

from kdmark.losses import (
    CoordLoss,
    adaptive_wing_loss,
    coord_l1,
    coord_mse,
    coord_smooth_l1,
    heatmap_mse,
    wing_loss,
)

PRED = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
TARGET = torch.tensor([[[1.0, 0.0], [1.0, 3.0]]])  # per-coordinate errors 1, 0, 0, 2


def test_mse_l1_smooth_l1_by_hand():
    assert coord_mse(PRED, TARGET).item() == pytest.approx((1 + 0 + 0 + 4) / 4)
    assert coord_l1(PRED, TARGET).item() == pytest.approx((1 + 0 + 0 + 2) / 4)
    assert coord_smooth_l1(PRED, TARGET).item() == pytest.approx((0.5 + 0 + 0 + 1.5) / 4)


def test_weights_drop_invisible_points():
    w = torch.tensor([[1.0, 0.0]])
    assert coord_mse(PRED, TARGET, w).item() == pytest.approx((1 + 0) / 2)
    assert coord_l1(PRED, TARGET, torch.tensor([[0.0, 1.0]])).item() == pytest.approx((0 + 2) / 2)


def test_wing_by_hand():
    pred, target = torch.tensor([[[1.0, 12.0]]]), torch.zeros(1, 1, 2)
    # |x| = 1 < w: 10 ln(1 + 1/2) = 4.0546511; |x| = 12 >= w: 12 - C, C = 10 - 10 ln(6) = -7.9175947
    assert wing_loss(pred, target, w=10, epsilon=2).item() == pytest.approx((4.054651081 + 19.917594692) / 2)
    # continuous at |x| = w
    below = wing_loss(torch.tensor([[[10.0 - 1e-6, 0]]]), torch.zeros(1, 1, 2)).item() * 2
    above = wing_loss(torch.tensor([[[10.0 + 1e-6, 0]]]), torch.zeros(1, 1, 2)).item() * 2
    assert below == pytest.approx(above, abs=1e-4)


def test_coord_loss_works_in_input_pixels():
    loss = CoordLoss("wing", scale=128, w=10, epsilon=2)
    pred, target = torch.tensor([[[1 / 128, 12 / 128]]]), torch.zeros(1, 1, 2)
    assert loss(pred, target).item() == pytest.approx((4.054651081 + 19.917594692) / 2, rel=1e-5)


def test_adaptive_wing_by_hand():
    # 3x3 map, target 1 at the centre; prediction 0.3 there (|d| = 0.7 >= theta) and 0.2 elsewhere (|d| < theta)
    target = torch.zeros(1, 1, 3, 3)
    target[0, 0, 1, 1] = 1.0
    pred = torch.full((1, 1, 3, 3), 0.2)
    pred[0, 0, 1, 1] = 0.3
    # y = 1: A = 14 * (1/(1+0.5^1.1)) * 1.1 * 0.5^0.1 / 1, C = 0.5A - 14 ln(1+0.5^1.1), loss = A*0.7 - C
    centre = 7.320027929831665
    other = 0.4688125297770733  # 14 ln(1 + 0.2^2.1), y = 0
    # every pixel of a 3x3 map sees the peak in its 3x3 max-pool: weight 10 + 1 everywhere
    expected = 11 * (centre + 8 * other) / 9
    assert adaptive_wing_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)
    p = 2.1 - 1
    a = 14 * (1 / (1 + 0.5**p)) * p * 0.5 ** (p - 1)
    assert centre == pytest.approx(a * 0.7 - (0.5 * a - 14 * math.log1p(0.5**p)))


def test_adaptive_wing_is_zero_at_target_and_weighted():
    t = torch.rand(2, 3, 8, 8)
    assert adaptive_wing_loss(t, t).item() == pytest.approx(0.0, abs=1e-7)
    pred = t + 0.1
    w = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    assert adaptive_wing_loss(pred, t, w).item() != pytest.approx(adaptive_wing_loss(pred, t).item())


def test_heatmap_mse_by_hand():
    pred, target = torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2)
    pred[0, 0, 0, 0], pred[0, 1, 1, 1] = 2.0, 1.0
    assert heatmap_mse(pred, target).item() == pytest.approx((4 + 1) / 8)
    assert heatmap_mse(pred, target, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(1 / 4)


@pytest.mark.parametrize("fn", [wing_loss, coord_smooth_l1, coord_mse])
def test_coordinate_gradcheck(fn):
    pred = (torch.randn(2, 3, 2, dtype=torch.float64) * 5).requires_grad_()
    target = torch.randn(2, 3, 2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: fn(p, target), (pred,))


def test_adaptive_wing_gradcheck():
    target = torch.rand(1, 2, 4, 4, dtype=torch.float64)
    pred = (target + 0.3 * torch.randn_like(target)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: adaptive_wing_loss(p, target), (pred,))
