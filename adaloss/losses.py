"""Per-landmark heatmap loss: the statistic Adaloss adapts each landmark's sigma from."""

from __future__ import annotations

import torch
from torch import Tensor


def landmark_mse(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean squared error over the batch and all pixels, one value per landmark.

    Args:
        pred: (B, K, *spatial) predicted heatmaps, e.g. (B, K, H, W).
        target: the target heatmaps, the same shape as ``pred``.
        weight: optional (B, K) weights >= 0 per image and landmark, e.g. `labelled(points)`:
            each landmark's loss is then ``sum_b w_bk e_bk / sum_b w_bk`` with ``e_bk`` the mean
            square error of image b's map, and 0 (no gradient) for a landmark whose weights in
            the batch are all 0. An unlabelled landmark so trains towards nothing, rather than
            towards the all-zero map its target would be.

    Returns:
        (K,) losses; ``.sum()`` or ``.mean()`` gives the scalar to back-propagate.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape"
        )
    if pred.ndim < 3:
        raise ValueError(f"pred and target must be (B, K, *spatial), got {tuple(pred.shape)}")
    if weight is None:
        return (pred - target).square().mean(dim=[0, *range(2, pred.ndim)])
    if weight.shape != pred.shape[:2]:
        raise ValueError(
            f"weight must be (B, K) = {tuple(pred.shape[:2])}, got {tuple(weight.shape)}"
        )
    per_image = (pred - target).square().mean(dim=list(range(2, pred.ndim)))  # (B, K)
    return weighted_image_mean(per_image, weight)


def weighted_image_mean(per_image: Tensor, weight: Tensor) -> Tensor:
    """(B, K) per-image values and (B, K) weights -> (K,) ``sum_b w_bk v_bk / sum_b w_bk``, and 0
    (with no gradient) for a landmark whose weights are all 0: the reduction every loss here
    uses to leave unlabelled landmarks out."""
    weight = weight.to(per_image.dtype)
    total = weight.sum(dim=0)
    return (per_image * weight).sum(dim=0) / torch.where(total > 0, total, torch.ones_like(total))


def labelled(points: Tensor) -> Tensor:
    """(B, K, D) points -> (B, K) float weights: 1 where the landmark is labelled (no NaN
    coordinate), 0 where it is not; the `weight` of `landmark_mse` that leaves missing labels
    out of the loss."""
    if points.ndim != 3:
        raise ValueError(f"points must be (B, K, D), got {tuple(points.shape)}")
    return (~torch.isnan(points).any(dim=-1)).to(points.dtype)
