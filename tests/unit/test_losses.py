"""The per-landmark MSE against sums worked out by hand."""

from __future__ import annotations

import pytest
import torch

from adaloss.losses import landmark_mse


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
