"""The per-landmark MSE against sums worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from adaloss.losses import labelled, landmark_mse


def test_landmark_mse_hand_computation() -> None:
    # (B, K, H, W) = (2, 2, 1, 2)
    pred = torch.tensor([[[[1.0, 2.0]], [[0.0, 0.0]]], [[[3.0, 0.0]], [[1.0, -1.0]]]])
    target = torch.tensor([[[[0.0, 0.0]], [[0.0, 2.0]]], [[[1.0, 0.0]], [[1.0, 1.0]]]])
    # landmark 0 differences: 1, 2, 2, 0 -> (1 + 4 + 4 + 0) / 4
    # landmark 1 differences: 0, -2, 0, -2 -> (0 + 4 + 0 + 4) / 4
    assert landmark_mse(pred, target).tolist() == [9 / 4, 8 / 4]


def test_landmark_mse_volumes_and_gradient() -> None:
    pred = torch.zeros(3, 2, 2, 3, 4, requires_grad=True)
    target = torch.ones(3, 2, 2, 3, 4)
    target[:, 1] = 3.0
    losses = landmark_mse(pred, target)
    assert losses.tolist() == [1.0, 9.0]
    losses.sum().backward()
    # d/dpred of mean((pred - target)^2) over 3 * 24 values = 2 (pred - target) / 72
    assert pred.grad is not None
    assert torch.allclose(pred.grad[:, 0], torch.full((3, 2, 3, 4), -2 / 72))
    assert torch.allclose(pred.grad[:, 1], torch.full((3, 2, 3, 4), -6 / 72))


def test_landmark_mse_rejects_mismatched_or_flat_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        landmark_mse(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"\(B, K, \*spatial\)"):
        landmark_mse(torch.zeros(2, 3), torch.zeros(2, 3))


def test_weighted_mse_averages_over_the_images_that_label_each_landmark() -> None:
    # the hand example above; per image: landmark 0 e = (1 + 4) / 2 = 2.5 and (4 + 0) / 2 = 2,
    # landmark 1 e = (0 + 4) / 2 = 2 and (0 + 4) / 2 = 2
    pred = torch.tensor([[[[1.0, 2.0]], [[0.0, 0.0]]], [[[3.0, 0.0]], [[1.0, -1.0]]]])
    target = torch.tensor([[[[0.0, 0.0]], [[0.0, 2.0]]], [[[1.0, 0.0]], [[1.0, 1.0]]]])
    labelled_only = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # landmark 0 on image 0 only
    assert landmark_mse(pred, target, labelled_only).tolist() == [2.5, 0.0]
    assert landmark_mse(pred, target, torch.ones(2, 2)).tolist() == [9 / 4, 8 / 4]
    halves = torch.tensor([[3.0, 1.0], [1.0, 1.0]])  # (3 * 2.5 + 2) / 4
    assert landmark_mse(pred, target, halves).tolist() == [9.5 / 4, 2.0]


def test_an_unlabelled_landmark_gets_no_gradient() -> None:
    pred = torch.zeros(2, 2, 3, 3, requires_grad=True)
    target = torch.ones(2, 2, 3, 3)
    weight = labelled(torch.tensor([[[1.0, 2.0], [math.nan, math.nan]], [[0.0, 1.0], [4.0, 4.0]]]))
    assert weight.tolist() == [[1.0, 0.0], [1.0, 1.0]]
    landmark_mse(pred, target, weight).sum().backward()
    assert pred.grad is not None
    assert pred.grad[0, 1].abs().sum() == 0  # image 0 does not label landmark 1
    # landmark 1 averages over image 1 alone: d/dpred of mean over 9 pixels = 2 (0 - 1) / 9
    assert torch.allclose(pred.grad[1, 1], torch.full((3, 3), -2 / 9))
    assert torch.allclose(pred.grad[:, 0], torch.full((2, 3, 3), -2 / 18))


def test_weight_must_be_per_image_and_landmark() -> None:
    with pytest.raises(ValueError, match=r"weight must be \(B, K\) = \(2, 3\)"):
        landmark_mse(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), torch.ones(3))
