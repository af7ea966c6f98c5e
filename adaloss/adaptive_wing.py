"""Adaptive Wing loss (Wang, Bo and Fuxin, ICCV 2019) for heatmap regression, one value per
landmark like `landmark_mse`: the other way to live with one fixed sigma, by reshaping the loss
instead of the target.

For a target pixel value y in [0, 1] and the error d = |y - y_hat|, with a = alpha - y:

    AWing(d) = omega * ln(1 + (d / epsilon)^a)      if d < theta
             = A * d - C                            otherwise
    A = omega * a * (theta / epsilon)^(a - 1) / (epsilon * (1 + (theta / epsilon)^a))
    C = theta * A - omega * ln(1 + (theta / epsilon)^a)

A and C make the loss and its slope continuous at theta. Near the peak (y -> 1, a -> 1.1) the
small-error branch behaves like the L1 loss and keeps pulling small errors down; on the
background (y = 0, a = 2.1) it is flat near zero, so the many background pixels weigh little.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# The paper's values (mmpose's AdaptiveWingLoss defaults).
OMEGA, THETA, EPSILON, ALPHA = 14.0, 0.5, 1.0, 2.1
# The paper's weighted loss map: weight W + 1 where a 3 x 3 grey dilation of the target is at
# least the threshold (the foreground and its rim), 1 elsewhere.
MAP_WEIGHT, MAP_THRESHOLD = 10.0, 0.2


def adaptive_wing(
    pred: Tensor,
    target: Tensor,
    *,
    omega: float = OMEGA,
    theta: float = THETA,
    epsilon: float = EPSILON,
    alpha: float = ALPHA,
    weight_map: bool = False,
) -> Tensor:
    """The Adaptive Wing loss per landmark, averaged over the batch and the pixels.

    Args:
        pred: (B, K, H, W) predicted heatmaps.
        target: (B, K, H, W) targets with values in [0, 1] (peak 1, as `render_heatmaps` draws).
        omega, theta, epsilon, alpha: the loss's shape (defaults: the paper's); alpha must
            exceed the largest target value + 1 for the small-error branch to be flat at 0.
        weight_map: weigh every pixel by 1 + MAP_WEIGHT where the target's 3 x 3 grey dilation
            is at least MAP_THRESHOLD (the paper's weighted loss map).

    Returns:
        (K,) losses; ``.sum()`` or ``.mean()`` gives the scalar to back-propagate.
    """
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(
            f"adaptive_wing: pred and target must both be (B, K, H, W), got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    if not (omega > 0 and theta > 0 and epsilon > 0 and alpha > 1):
        raise ValueError(
            f"adaptive_wing: omega, theta and epsilon must be > 0 and alpha > 1, got omega="
            f"{omega}, theta={theta}, epsilon={epsilon}, alpha={alpha}"
        )
    error = (target - pred).abs()
    power = alpha - target
    ratio = theta / epsilon
    slope = omega * power * ratio ** (power - 1) / (epsilon * (1 + ratio**power))
    offset = theta * slope - omega * torch.log1p(ratio**power)
    near = omega * torch.log1p((error / epsilon) ** power)
    losses = torch.where(error < theta, near, slope * error - offset)
    if weight_map:
        dilated = F.max_pool2d(target, kernel_size=3, stride=1, padding=1)
        losses = losses * (1 + MAP_WEIGHT * (dilated >= MAP_THRESHOLD).to(losses.dtype))
    return losses.mean(dim=(0, 2, 3))
