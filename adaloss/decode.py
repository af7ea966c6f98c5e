"""Points from heatmaps: one peak per heatmap (argmax) or several (non-maximum suppression).

Points are ``(x, y)``, 0-based, with the centre of pixel ``(row i, col j)`` at ``x = j, y = i``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage.feature import peak_local_max
from torch import Tensor

Refinement = bool | Literal["quarter", "dark"]

REFINE_CHOICES = (True, False, "quarter", "dark")

# A DARK step longer than this leaves the 3 x 3 neighbourhood its derivatives were taken from,
# so the quadratic model is not trusted there.
_MAX_DARK_STEP = 1.0


def decode_argmax(
    heatmaps: Tensor, refine: Refinement = True, *, blur_sigma: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Locate the maximum of each heatmap, optionally refined to sub-pixel precision.

    Args:
        heatmaps: (B, K, H, W).
        refine: False for the integer argmax; True or "quarter" to move +-0.25 px towards the
            higher neighbour on each axis (no move at the border or on a tie); "dark" for the
            second-order Taylor expansion of log(heatmap) around the argmax (DARK, Zhang et al.
            2020), which falls back to the quarter rule where the log-Hessian is not negative
            definite, a 3 x 3 value is not positive, the argmax is on the border, or the step
            would leave the 3 x 3 neighbourhood.
        blur_sigma: for "dark" only, the sigma in pixels of a Gaussian blur applied before the
            expansion (DARK's modulation of noisy predictions); 0 disables it.

    Returns:
        points (B, K, 2) as (x, y), in float32 (float64 for float64 heatmaps), and
        scores (B, K), each heatmap's maximum value in the heatmaps' dtype.
    """
    if refine not in REFINE_CHOICES or not isinstance(refine, bool | str):
        raise ValueError(f"refine={refine!r} is not supported; use one of {REFINE_CHOICES}")
    if not isinstance(heatmaps, Tensor) or heatmaps.ndim != 4 or not heatmaps.is_floating_point():
        raise ValueError(
            "heatmaps must be a floating tensor (B, K, H, W), got "
            f"{getattr(heatmaps, 'dtype', type(heatmaps).__name__)} "
            f"{tuple(getattr(heatmaps, 'shape', ()))}"
        )
    if not math.isfinite(blur_sigma) or blur_sigma < 0:
        raise ValueError(f"blur_sigma must be finite and >= 0, got {blur_sigma}")
    width = heatmaps.shape[-1]
    flat = heatmaps.flatten(2)
    index = flat.argmax(dim=-1)
    scores = flat.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    points_dtype = torch.promote_types(heatmaps.dtype, torch.float32)
    rows, cols = index // width, index % width
    points = torch.stack([cols, rows], dim=-1).to(points_dtype)
    if refine is False:
        return points, scores
    offsets = _quarter_offsets(heatmaps, rows, cols).to(points_dtype)
    if refine == "dark":
        source = heatmaps.to(points_dtype)
        if blur_sigma > 0:
            source = _gaussian_blur(source, blur_sigma)
        dark, valid = _dark_offsets(source, rows, cols)
        offsets = torch.where(valid.unsqueeze(-1), dark, offsets)
    return points + offsets, scores


def decode_peaks(
    heatmap: Tensor | npt.NDArray[np.floating],
    *,
    median_size: int = 7,
    min_distance: int = 10,
    threshold: float = 0.5,
) -> npt.NDArray[np.float64]:
    """Find several instances of one landmark in a heatmap.

    The heatmap is median filtered (``median_size`` x ``median_size``, which removes isolated
    spikes and flattens noisy tops), local maxima at least ``min_distance`` px apart whose
    filtered value is strictly above ``threshold`` are kept (``threshold`` is absolute and
    applies to the filtered map, whose peaks are lower than the raw ones: a unit Gaussian of
    sigma 2 filters to exp(-1) = 0.37 under a 7 x 7 median), and each survivor is reported as the
    centroid of its cluster: the connected pixels that share its value and have no higher
    neighbour, so a flat-topped plateau gives one point at its centre.

    Args:
        heatmap: (H, W), a tensor or an array; finite values.

    Returns:
        (N, 2) float64 points (x, y), by descending filtered score; (0, 2) when none is found.
    """
    values = _as_finite_image(heatmap)
    if median_size < 1 or min_distance < 1:
        raise ValueError(
            f"median_size and min_distance must be >= 1, got {median_size} and {min_distance}"
        )
    filtered = ndimage.median_filter(values, size=median_size, mode="nearest")
    # skimage ships no annotation for peak_local_max; it returns (M, 2) (row, col) indices.
    peaks = np.asarray(
        peak_local_max(  # type: ignore[no-untyped-call]
            filtered, min_distance=min_distance, threshold_abs=threshold, exclude_border=False
        ),
        dtype=np.intp,
    ).reshape(-1, 2)
    if len(peaks) == 0:
        return np.empty((0, 2), dtype=np.float64)
    plateaus = filtered == ndimage.maximum_filter(filtered, size=3, mode="nearest")
    labels, _ = ndimage.label(plateaus, structure=np.ones((3, 3), dtype=bool))
    peak_labels = labels[peaks[:, 0], peaks[:, 1]]
    # Several survivors of one plateau wider than min_distance are one cluster.
    _, first = np.unique(peak_labels, return_index=True)
    peaks, peak_labels = peaks[first], peak_labels[first]
    scores = filtered[peaks[:, 0], peaks[:, 1]]
    order = np.lexsort((peaks[:, 1], peaks[:, 0], -scores))
    centres = np.asarray(
        ndimage.center_of_mass(plateaus, labels, peak_labels[order].tolist()), dtype=np.float64
    ).reshape(-1, 2)
    return centres[:, ::-1].copy()


def _quarter_offsets(heatmaps: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """(B, K, 2) offsets of +-0.25 px towards the higher neighbour; 0 at the border or a tie."""
    height, width = heatmaps.shape[-2:]
    steps = []
    for position, extent, axis_step in ((cols, width, (0, 1)), (rows, height, (1, 0))):
        before = _values_at(heatmaps, rows - axis_step[0], cols - axis_step[1])
        after = _values_at(heatmaps, rows + axis_step[0], cols + axis_step[1])
        interior = (position > 0) & (position < extent - 1)
        steps.append(torch.where(interior, 0.25 * torch.sign(after - before), 0.0))
    return torch.stack(steps, dim=-1)


def _dark_offsets(heatmaps: Tensor, rows: Tensor, cols: Tensor) -> tuple[Tensor, Tensor]:
    """DARK offsets: the maximum of the quadratic fit to log(heatmap) around (rows, cols).

    Args:
        heatmaps: (B, K, H, W).
        rows, cols: (B, K) integer positions.

    Returns:
        offsets (B, K, 2) as (dx, dy), and valid (B, K): where the fit is trusted.
    """
    height, width = heatmaps.shape[-2:]
    shifts = torch.arange(-1, 2, device=heatmaps.device)
    window_rows = rows[..., None, None] + shifts[:, None]  # (B, K, 3, 1)
    window_cols = cols[..., None, None] + shifts[None, :]  # (B, K, 1, 3)
    window = _values_at(heatmaps, window_rows, window_cols)  # (B, K, 3, 3)
    interior = (rows > 0) & (rows < height - 1) & (cols > 0) & (cols < width - 1)
    positive = (window > 0).flatten(2).all(dim=-1)
    logs = torch.log(window.clamp_min(torch.finfo(window.dtype).tiny))
    grad_x = 0.5 * (logs[..., 1, 2] - logs[..., 1, 0])
    grad_y = 0.5 * (logs[..., 2, 1] - logs[..., 0, 1])
    hess_xx = logs[..., 1, 2] - 2 * logs[..., 1, 1] + logs[..., 1, 0]
    hess_yy = logs[..., 2, 1] - 2 * logs[..., 1, 1] + logs[..., 0, 1]
    hess_xy = 0.25 * (logs[..., 2, 2] - logs[..., 2, 0] - logs[..., 0, 2] + logs[..., 0, 0])
    determinant = hess_xx * hess_yy - hess_xy**2
    negative_definite = (hess_xx < 0) & (determinant > 0)
    safe_determinant = torch.where(negative_definite, determinant, torch.ones_like(determinant))
    # offset = -H^-1 grad, with the 2 x 2 inverse written out.
    offset_x = -(hess_yy * grad_x - hess_xy * grad_y) / safe_determinant
    offset_y = -(hess_xx * grad_y - hess_xy * grad_x) / safe_determinant
    offsets = torch.stack([offset_x, offset_y], dim=-1)
    within = (offsets.abs() <= _MAX_DARK_STEP).all(dim=-1)
    valid = interior & positive & negative_definite & within
    return offsets, valid


def _values_at(heatmaps: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Heatmap values at integer (rows, cols) broadcast over (B, K, ...), clamped to the image."""
    height, width = heatmaps.shape[-2:]
    flat_index = rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1)
    gathered = heatmaps.flatten(2).gather(-1, flat_index.reshape(*flat_index.shape[:2], -1))
    return gathered.reshape(flat_index.shape)


def _gaussian_blur(heatmaps: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of each (H, W) map, replicating the border. (B, K, H, W) in/out."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=heatmaps.dtype, device=heatmaps.device)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    batch, landmarks, height, width = heatmaps.shape
    maps = heatmaps.reshape(batch * landmarks, 1, height, width)
    maps = F.conv2d(F.pad(maps, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    maps = F.conv2d(F.pad(maps, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return maps.reshape(batch, landmarks, height, width)


def _as_finite_image(heatmap: Tensor | npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """A (H, W) tensor or array as a finite float64 array."""
    if isinstance(heatmap, Tensor):
        heatmap = heatmap.detach().cpu().double().numpy()
    values = np.asarray(heatmap, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"heatmap must be (H, W), got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("heatmap contains NaN or inf; decode_peaks needs finite values")
    return values
