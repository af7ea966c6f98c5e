"""Batched augmentation on the training device: images and their points move together.

Geometry follows docs/design.md: pixel (row i, col j) is centred at x = j, y = i, so the image
centre is c = ((W - 1) / 2, (H - 1) / 2), which is exactly 0 in `affine_grid`'s normalised
coordinates with `align_corners=False`. A rotation by angle a moves every point p to
c + R(a)(p - c) with R(a) = [[cos a, -sin a], [sin a, cos a]] (clockwise on screen, because y
points down); the image is resampled with the inverse map, so a Gaussian drawn at p before is
centred at the moved p after.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def random_angles(batch_size: int, max_degrees: float, generator: torch.Generator) -> Tensor:
    """(B,) float32 angles in radians, uniform in [-max_degrees, +max_degrees], drawn on the CPU
    from `generator` so that the same generator state gives the same angles on any device."""
    unit = torch.rand(batch_size, generator=generator, dtype=torch.float32)
    return (2.0 * unit - 1.0) * math.radians(max_degrees)


def rotate(images: Tensor, points: Tensor, angles: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate each image and its points about the image centre.

    Args:
        images: (B, C, H, W) float.
        points: (B, K, 2) or (B, K, M, 2) in pixels of the images; NaN stays NaN.
        angles: (B,) radians.

    Returns:
        (images (B, C, H, W), points of the input shape). Points that leave the image (beyond the
        outer pixel edges, -0.5 .. W - 0.5) become NaN: the landmark is no longer visible, so it
        renders no target and counts in no metric, like any missing landmark. Uncovered image
        corners are zero.
    """
    height, width = images.shape[-2:]
    angles = angles.to(device=images.device, dtype=torch.float32)
    cos, sin = torch.cos(angles), torch.sin(angles)
    # Inverse map in normalised coordinates: n_in = S R(a)^T S^-1 n_out with S = diag(2/W, 2/H).
    theta = torch.zeros(images.shape[0], 2, 3, device=images.device, dtype=torch.float32)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = sin * (height / width)
    theta[:, 1, 0] = -sin * (width / height)
    theta[:, 1, 1] = cos
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    rotated = F.grid_sample(
        images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    ).to(images.dtype)
    return rotated, rotate_points(points, angles, (height, width))


def rotate_points(points: Tensor, angles: Tensor, size: tuple[int, int]) -> Tensor:
    """Move (B, K, 2) or (B, K, M, 2) points by R(angle) about the centre of an (H, W) image;
    points that end outside the image become NaN."""
    height, width = size
    centre = torch.tensor([(width - 1) / 2, (height - 1) / 2], device=points.device)
    angles = angles.to(device=points.device, dtype=torch.float32)
    cos, sin = torch.cos(angles), torch.sin(angles)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    rotation = rotation.reshape(-1, *([1] * (points.ndim - 2)), 2, 2)  # (B, 1[, 1], 2, 2)
    offsets = (points.float() - centre).unsqueeze(-1)
    moved = (rotation @ offsets).squeeze(-1) + centre
    inside = (
        (moved[..., 0] >= -0.5)
        & (moved[..., 0] <= width - 0.5)
        & (moved[..., 1] >= -0.5)
        & (moved[..., 1] <= height - 0.5)
    )
    return torch.where(inside.unsqueeze(-1), moved, torch.nan).to(points.dtype)


def random_rotation(
    images: Tensor, points: Tensor, max_degrees: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Rotate each (B, C, H, W) image and its points by its own uniform angle in
    [-max_degrees, +max_degrees]; see `rotate`."""
    return rotate(images, points, random_angles(images.shape[0], max_degrees, generator))
