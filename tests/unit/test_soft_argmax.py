"""Soft-argmax (DSNT) pieces against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from adaloss.soft_argmax import expected_points, js_divergence, soft_argmax_loss, spatial_softmax


def one_hot_logits(height: int, width: int, row: int, col: int, k: int = 1) -> torch.Tensor:
    """Scores whose softmax is exactly one-hot at (row, col): exp(-1e4) is 0 in float32."""
    logits = torch.full((1, k, height, width), -1e4)
    logits[0, :, row, col] = 0.0
    return logits


def test_softmax_of_equal_scores_is_uniform_and_maps_sum_to_one() -> None:
    maps = spatial_softmax(torch.zeros(2, 3, 4, 5))
    torch.testing.assert_close(maps, torch.full((2, 3, 4, 5), 1 / 20))
    maps = spatial_softmax(torch.randn(2, 3, 4, 5))
    torch.testing.assert_close(maps.sum(dim=(-2, -1)), torch.ones(2, 3))


def test_expected_point_of_a_one_hot_map_is_its_pixel() -> None:
    maps = spatial_softmax(one_hot_logits(4, 8, row=2, col=3))
    assert expected_points(maps).tolist() == [[[3.0, 2.0]]]


def test_expected_point_of_two_halves_is_their_midpoint() -> None:
    maps = torch.zeros(1, 1, 4, 8)
    maps[0, 0, 1, 2] = maps[0, 0, 3, 6] = 0.5  # (x, y) = (2, 1) and (6, 3)
    assert expected_points(maps).tolist() == [[[4.0, 2.0]]]


def test_js_divergence_is_zero_for_equal_maps_and_ln2_for_disjoint_ones() -> None:
    p = spatial_softmax(torch.randn(1, 2, 5, 5))
    torch.testing.assert_close(js_divergence(p, p), torch.zeros(1, 2), atol=1e-7, rtol=0)
    left, right = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    left[0, 0, 0] = 0.5  # the top row
    right[0, 0, 1] = 0.5  # the bottom row
    assert js_divergence(left, right).item() == pytest.approx(math.log(2))


def test_loss_distance_is_in_normalised_units() -> None:
    # one-hot at x = 3 on a map 8 wide, truth at x = 1: 2 px of a half-width of 4 px = 0.5
    logits = one_hot_logits(4, 8, row=2, col=3)
    loss = soft_argmax_loss(logits, torch.tensor([[[1.0, 2.0]]]), js_weight=0.0)
    assert loss.tolist() == pytest.approx([0.5])


def test_loss_js_term_against_a_hand_computed_gaussian() -> None:
    # a one-hot map exactly at the truth: distance 0, and JS(delta, g) with g the Gaussian of
    # sigma 1 normalised over the 7 x 7 map, g0 its value at the point:
    # JS = (ln(2 / (1 + g0)) + g0 ln(2 g0 / (1 + g0)) + (1 - g0) ln 2) / 2
    logits = one_hot_logits(7, 7, row=3, col=3)
    total = sum(math.exp(-((i - 3) ** 2 + (j - 3) ** 2) / 2) for i in range(7) for j in range(7))
    g0 = 1 / total
    expected = (
        math.log(2 / (1 + g0)) + g0 * math.log(2 * g0 / (1 + g0)) + (1 - g0) * math.log(2)
    ) / 2
    loss = soft_argmax_loss(logits, torch.tensor([[[3.0, 3.0]]]), sigma_t=1.0, js_weight=1.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    twice = soft_argmax_loss(logits, torch.tensor([[[3.0, 3.0]]]), js_weight=2.0)
    assert twice.item() == pytest.approx(2 * expected, rel=1e-5)


def test_unlabelled_points_count_nowhere() -> None:
    # two images; landmark 0 labelled only on image 0 (distance 0.5), landmark 1 on neither
    logits = torch.cat([one_hot_logits(4, 8, 2, 3, k=2), one_hot_logits(4, 8, 0, 0, k=2)])
    points = torch.tensor([[[1.0, 2.0], [math.nan, math.nan]], [[math.nan, 1.0], [math.nan, 0.0]]])
    logits.requires_grad_(True)
    loss = soft_argmax_loss(logits, points, js_weight=0.0)
    assert loss.tolist() == pytest.approx([0.5, 0.0])
    loss.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[:, 1].abs().sum() == 0


def test_points_must_match_the_logits() -> None:
    with pytest.raises(ValueError, match=r"points must be \(B, K, 2\)"):
        soft_argmax_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2))
