"""Soft-argmax coordinate regression (DSNT: Nibali, He, Morgan and Prendergast, 2018): the other
way to avoid choosing a target width, by regressing the point itself.

The network's (B, K, H, W) output is turned into one probability map per landmark by a softmax
over the pixels; the prediction is the map's expected coordinate, so decoding needs no argmax.
The loss is the Euclidean distance from the expected to the true coordinate plus a weighted
Jensen-Shannon divergence between the map and a normalised Gaussian of width `sigma_t` at the
true point, which keeps the map compact around it. Distances in the loss are in DSNT's
normalised units (the image spans [-1, 1] on each axis), so the paper's weights carry over
between resolutions; points in and out are heatmap pixels (docs/design.md's convention).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from adaloss.losses import labelled, weighted_image_mean
from adaloss.targets import render_heatmaps

# The paper's regulariser: Gaussian width 1 heatmap pixel, weight 1.
SIGMA_T, JS_WEIGHT = 1.0, 1.0


def spatial_softmax(logits: Tensor) -> Tensor:
    """(B, K, H, W) scores -> (B, K, H, W) maps that are positive and sum to 1 over each map."""
    if logits.ndim != 4:
        raise ValueError(f"spatial_softmax: logits must be (B, K, H, W), got {tuple(logits.shape)}")
    batch, landmarks, height, width = logits.shape
    flat = logits.reshape(batch, landmarks, height * width).float()
    return torch.softmax(flat, dim=-1).reshape(batch, landmarks, height, width)


def expected_points(maps: Tensor) -> Tensor:
    """(B, K, H, W) probability maps -> (B, K, 2) expected (x, y) in heatmap pixels:
    x = sum_ij p_ij * j, y = sum_ij p_ij * i (pixel (i, j) centred at x = j, y = i)."""
    height, width = maps.shape[-2:]
    cols = torch.arange(width, dtype=maps.dtype, device=maps.device)
    rows = torch.arange(height, dtype=maps.dtype, device=maps.device)
    x = (maps.sum(dim=-2) * cols).sum(dim=-1)
    y = (maps.sum(dim=-1) * rows).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


def js_divergence(p: Tensor, q: Tensor) -> Tensor:
    """Jensen-Shannon divergence, natural log, of two (B, K, H, W) distributions -> (B, K):
    (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2; 0 for equal maps, ln 2 for disjoint."""
    m = (p + q) / 2

    def kl_to_m(a: Tensor) -> Tensor:
        # 0 * log(0 / m) = 0: pixels where a is zero contribute nothing
        terms = torch.where(a > 0, a * (torch.log(a) - torch.log(m)), torch.zeros_like(a))
        return terms.sum(dim=(-2, -1))

    return (kl_to_m(p) + kl_to_m(q)) / 2


def soft_argmax_loss(
    logits: Tensor,
    points: Tensor,
    *,
    sigma_t: float = SIGMA_T,
    js_weight: float = JS_WEIGHT,
    weight: Tensor | None = None,
) -> Tensor:
    """DSNT's loss per landmark, averaged over the images that label it.

    Args:
        logits: (B, K, H, W) network output (scores, before the softmax).
        points: (B, K, 2) true (x, y) in heatmap pixels; NaN where the landmark is not labelled.
        sigma_t: the width of the regulariser's Gaussian, heatmap pixels.
        js_weight: the weight of the Jensen-Shannon term (0 drops it).
        weight: optional (B, K) weights, multiplied with "labelled" (points not NaN).

    Returns:
        (K,) losses: mean over labelled images of ||mu - y|| (normalised units: each axis of the
        map spans [-1, 1]) + js_weight * JS(map, Gaussian at y); 0 for a landmark no image labels.
    """
    if points.ndim != 3 or points.shape[:2] != logits.shape[:2] or points.shape[-1] != 2:
        raise ValueError(
            f"soft_argmax_loss: points must be (B, K, 2) for logits {tuple(logits.shape)}, got "
            f"{tuple(points.shape)}"
        )
    height, width = logits.shape[-2:]
    maps = spatial_softmax(logits)
    labelled_weight = labelled(points)  # (B, K)
    safe_points = torch.where(labelled_weight[..., None] > 0, points, torch.zeros_like(points))
    safe_points = safe_points.float()
    half_extent = torch.tensor([width / 2, height / 2], device=logits.device)
    distance = ((expected_points(maps) - safe_points) / half_extent).norm(dim=-1)  # (B, K)
    per_image = distance
    if js_weight:
        gaussian = render_heatmaps(safe_points, sigma_t, (height, width))
        gaussian = gaussian / gaussian.sum(dim=(-2, -1), keepdim=True).clamp_min(math.ulp(1.0))
        per_image = per_image + js_weight * js_divergence(maps, gaussian)
    weights = labelled_weight if weight is None else labelled_weight * weight
    return weighted_image_mean(per_image, weights)
