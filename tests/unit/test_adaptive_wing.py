"""Adaptive Wing loss against the paper's formula evaluated by hand (math module, scalars)."""

from __future__ import annotations

import math

import pytest
import torch

from adaloss.adaptive_wing import adaptive_wing

OMEGA, THETA, EPSILON, ALPHA = 14.0, 0.5, 1.0, 2.1


def by_hand(error: float, y: float) -> tuple[float, float]:
    """(loss, d loss / d error) of one pixel, written out from the paper."""
    a = ALPHA - y
    if error < THETA:
        u = (error / EPSILON) ** a
        return OMEGA * math.log(1 + u), OMEGA * a * (error / EPSILON) ** (a - 1) / EPSILON / (1 + u)
    r = (THETA / EPSILON) ** a
    slope = OMEGA * a * (THETA / EPSILON) ** (a - 1) / (EPSILON * (1 + r))
    return slope * error - (THETA * slope - OMEGA * math.log(1 + r)), slope


def one_pixel(pred: float, y: float, **options) -> tuple[float, float]:
    """The loss of a 1 x 1 map and its gradient with respect to the prediction."""
    prediction = torch.tensor([[[[pred]]]], dtype=torch.float64, requires_grad=True)
    loss = adaptive_wing(prediction, torch.tensor([[[[y]]]], dtype=torch.float64), **options)
    loss.sum().backward()
    return float(loss.detach()), float(prediction.grad)


@pytest.mark.parametrize(
    ("pred", "y"),
    [(0.25, 0.0), (0.1, 0.0), (1.0, 0.0), (3.0, 0.0), (0.7, 1.0), (0.0, 1.0), (0.6, 0.9)],
)
def test_loss_and_gradient_on_both_sides_of_theta(pred: float, y: float) -> None:
    loss, gradient = one_pixel(pred, y)
    expected, slope = by_hand(abs(y - pred), y)
    assert loss == pytest.approx(expected, rel=1e-12)
    # d/d pred = d/d error * sign(pred - y)
    assert gradient == pytest.approx(slope * math.copysign(1.0, pred - y), rel=1e-9)


def test_hand_values_at_the_background() -> None:
    # y = 0, error 0.25: 14 ln(1 + 0.25^2.1) = 14 ln(1.05441) = 0.7417
    assert one_pixel(0.25, 0.0)[0] == pytest.approx(14 * math.log(1 + 0.25**2.1), rel=1e-12)
    assert one_pixel(0.25, 0.0)[0] == pytest.approx(0.7417, abs=1e-4)
    assert one_pixel(0.0, 0.0) == (0.0, 0.0)  # a perfect background pixel costs nothing


@pytest.mark.parametrize("y", [0.0, 0.3, 1.0])
def test_loss_and_slope_are_continuous_at_theta(y: float) -> None:
    below, above = one_pixel(y + THETA - 1e-9, y), one_pixel(y + THETA + 1e-9, y)
    assert below[0] == pytest.approx(above[0], abs=1e-7)
    assert below[1] == pytest.approx(above[1], rel=1e-6)
    assert above[0] == pytest.approx(OMEGA * math.log(1 + (THETA / EPSILON) ** (ALPHA - y)))


def test_per_landmark_mean_and_the_weighted_map() -> None:
    # two landmarks on 3 x 3 maps: landmark 0 has a peak of 1 in the centre predicted as 0.5
    # (error 0.5 = theta, the linear branch), landmark 1 is all background predicted exactly.
    target = torch.zeros(1, 2, 3, 3, dtype=torch.float64)
    target[0, 0, 1, 1] = 1.0
    pred = torch.zeros_like(target)
    pred[0, 0, 1, 1] = 0.5
    centre = by_hand(0.5, 1.0)[0]
    plain = adaptive_wing(pred, target)
    torch.testing.assert_close(plain, torch.tensor([centre / 9, 0.0], dtype=torch.float64))
    # the dilation of a centre peak covers the whole 3 x 3 map: every pixel weighs 11
    weighted = adaptive_wing(pred, target, weight_map=True)
    torch.testing.assert_close(weighted, torch.tensor([11 * centre / 9, 0.0], dtype=torch.float64))


def test_bad_shapes_and_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(B, K, H, W\)"):
        adaptive_wing(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="alpha > 1"):
        adaptive_wing(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), alpha=1.0)
