"""Per-landmark heatmap loss: the statistic Adaloss adapts each landmark's sigma from."""

from __future__ import annotations

from torch import Tensor


def landmark_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over the batch and all pixels, one value per landmark.

    Args:
        pred: (B, K, *spatial) predicted heatmaps, e.g. (B, K, H, W).
        target: the target heatmaps, the same shape as ``pred``.

    Returns:
        (K,) losses; ``.sum()`` or ``.mean()`` gives the scalar to back-propagate.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape"
        )
    if pred.ndim < 3:
        raise ValueError(f"pred and target must be (B, K, *spatial), got {tuple(pred.shape)}")
    reduced = [0, *range(2, pred.ndim)]
    return (pred - target).square().mean(dim=reduced)
