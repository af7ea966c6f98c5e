"""Learned sigma (Payer et al. 2019; Thaler et al. 2021): each landmark's target width is a
trainable parameter, optimised with the network instead of scheduled.

The target is a Gaussian of constant mass gamma, gamma / (2 pi sigma_x sigma_y) *
exp(-(dx^2 / 2 sigma_x^2 + dy^2 / 2 sigma_y^2)), so a wider target is also a lower one; the loss
adds alpha * sigma_x * sigma_y per landmark, without which the network would widen sigma to make
its task easy. Widths are kept above a floor whatever the gradient (sigma = sigma_min +
softplus(raw)), where the reference implementations leave sigma unconstrained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adaloss.losses import labelled, landmark_mse

# Thaler et al.'s defaults (Payer's cephalometric setting used alpha 20 with sigma^2).
GAMMA, ALPHA = 100.0, 5.0


def constant_mass_heatmaps(
    points: Tensor, sigma: Tensor, size: Sequence[int], *, gamma: float = GAMMA
) -> Tensor:
    """Gaussians of mass `gamma`, differentiable with respect to `sigma`.

    Args:
        points: (B, K, 2) (x, y) in heatmap pixels; a NaN point renders an all-zero map.
        sigma: (K,) one width per landmark, or (K, 2) one per axis (sigma_x, sigma_y), heatmap
            pixels, > 0.
        size: (H, W).
        gamma: the mass of each map (its sum over an unbounded grid).

    Returns:
        (B, K, H, W) maps in the dtype of `sigma`.
    """
    height, width = (int(n) for n in size)
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"points must be (B, K, 2), got {tuple(points.shape)}")
    widths = sigma[:, None].expand(-1, 2) if sigma.ndim == 1 else sigma
    if widths.shape != (points.shape[1], 2):
        k = points.shape[1]
        raise ValueError(f"sigma must be ({k},) or ({k}, 2), got {tuple(sigma.shape)}")
    labelled = ~torch.isnan(points).any(dim=-1)  # (B, K)
    centre = torch.where(labelled[..., None], points, torch.zeros_like(points)).to(sigma.dtype)
    cols = torch.arange(width, dtype=sigma.dtype, device=sigma.device)
    rows = torch.arange(height, dtype=sigma.dtype, device=sigma.device)
    sigma_x, sigma_y = widths[None, :, 0, None], widths[None, :, 1, None]  # (1, K, 1)
    along_x = torch.exp(-((cols - centre[..., 0:1]) ** 2) / (2 * sigma_x**2))  # (B, K, W)
    along_y = torch.exp(-((rows - centre[..., 1:2]) ** 2) / (2 * sigma_y**2))  # (B, K, H)
    peak = gamma / (2 * math.pi * sigma_x * sigma_y)  # (1, K, 1)
    maps = (peak * along_y)[..., :, None] * along_x[..., None, :]
    return maps * labelled[..., None, None].to(maps.dtype)


class LearnedSigma(nn.Module):
    """K trainable target widths (or K x 2 with `anisotropic`), in heatmap pixels.

    sigma = sigma_min + softplus(raw): above sigma_min for any value of raw, so no gradient step
    can make a width zero or negative. Starts at `sigma0` (> sigma_min).
    """

    def __init__(
        self,
        num_landmarks: int,
        sigma0: float,
        *,
        sigma_min: float = 0.5,
        anisotropic: bool = False,
    ) -> None:
        super().__init__()
        if not (sigma_min > 0 and sigma0 > sigma_min):
            raise ValueError(
                f"LearnedSigma: need 0 < sigma_min < sigma0, got sigma_min={sigma_min}, "
                f"sigma0={sigma0}"
            )
        self.sigma_min = float(sigma_min)
        shape = (num_landmarks, 2) if anisotropic else (num_landmarks,)
        start = math.log(math.expm1(sigma0 - sigma_min))  # softplus^-1(sigma0 - sigma_min)
        self.raw = nn.Parameter(torch.full(shape, start, dtype=torch.float64))

    def forward(self) -> Tensor:
        """The widths: (K,) or (K, 2)."""
        return self.sigma_min + F.softplus(self.raw)


def learned_sigma_loss(
    pred: Tensor,
    points: Tensor,
    sigma: Tensor,
    *,
    gamma: float = GAMMA,
    alpha: float = ALPHA,
) -> Tensor:
    """Per landmark: the mean square error to the constant-mass target over the images that
    label it, plus alpha * sigma_x * sigma_y (0 for a landmark no image labels, penalty aside).

    Args:
        pred: (B, K, H, W) predicted heatmaps.
        points: (B, K, 2) in heatmap pixels, NaN where not labelled.
        sigma: (K,) or (K, 2) widths, e.g. `LearnedSigma()()`.

    Returns:
        (K,) losses, differentiable with respect to `pred` and `sigma`.
    """
    target = constant_mass_heatmaps(points, sigma, pred.shape[-2:], gamma=gamma)
    fit = landmark_mse(pred.to(target.dtype), target, labelled(points))
    area = sigma.square() if sigma.ndim == 1 else sigma.prod(dim=-1)
    return fit + alpha * area
