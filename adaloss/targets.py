"""Gaussian heatmap targets and the mapping of points between resolutions.

Conventions (docs/design.md): points are ``(x, y)`` or ``(x, y, z)``, 0-based, and the centre of
pixel ``(row i, col j)`` is ``x = j, y = i`` (``z`` indexes the depth axis of a volume).
Sizes are ``(H, W)`` or ``(D, H, W)``, so coordinate ``c`` of a point runs along size axis
``len(size) - 1 - c``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

NORMALIZE_CHOICES = (None, "mean")

# The smallest page Linux maps: touching one byte in every such stride faults every page in.
_PAGE_BYTES = 4096

_RENDER_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# The NumPy storage behind CPU outputs; NumPy has no bfloat16, so its 16 bits are reinterpreted.
_NUMPY_STORAGE: dict[torch.dtype, npt.DTypeLike] = {
    torch.float16: np.float16,
    torch.bfloat16: np.uint16,
    torch.float32: np.float32,
    torch.float64: np.float64,
}


def render_heatmaps(
    points: Tensor,
    sigma: float | Tensor,
    size: Sequence[int],
    *,
    normalize: str | None = None,
) -> Tensor:
    """Render one unnormalised Gaussian per point, ``exp(-|p - c|^2 / (2 sigma^2))``.

    Args:
        points: (B, K, D) or (B, K, N, D) in heatmap pixels, ``D = len(size)``; N instances of
            each landmark combine by max. A point with any NaN coordinate renders nothing.
        sigma: a float, or a (K,) tensor with one width per landmark, in heatmap pixels.
        size: (H, W) or (D, H, W).
        normalize: None, or "mean" to divide each (b, k) heatmap by its mean (the paper's face
            targets); an all-zero heatmap stays zero.

    Returns:
        (B, K, *size) heatmaps with the dtype and device of ``points``; the peak is 1 at a point
        that lies on a pixel centre.
    """
    if normalize not in NORMALIZE_CHOICES:
        raise ValueError(
            f"normalize={normalize!r} is not supported; use one of {NORMALIZE_CHOICES}"
        )
    size = _check_size(size, "size")
    instances = _as_instances(points, len(size))
    num_landmarks = instances.shape[1]
    # Half-precision coordinates cannot resolve (j - x)^2 at 256 px: build the 1-D factors in
    # float32 (float64 stays float64) and cast only the factors, which lie in [0, 1].
    compute_dtype = torch.float64 if points.dtype == torch.float64 else torch.float32
    coords = instances.to(compute_dtype)
    widths = _landmark_sigmas(sigma, num_landmarks, coords.device, compute_dtype)

    present = ~torch.isnan(coords).any(dim=-1)  # (B, K, N)
    coords = torch.nan_to_num(coords, nan=0.0)
    if len(set(size)) == 1:
        # Every axis has the same extent: one chain of ops builds all the factors, half (or a
        # third) of the small ops that dominate rendering at 64 px on one thread.
        stacked = _gaussian_factor(coords, widths, size[0]).to(points.dtype)  # (B, K, N, D, S)
        factors = [stacked[..., len(size) - 1 - axis, :] for axis in range(len(size))]
    else:
        factors = [
            _gaussian_factor(coords[..., len(size) - 1 - axis], widths, extent).to(points.dtype)
            for axis, extent in enumerate(size)
        ]
    mask = present.unsqueeze(-1).to(points.dtype)
    factors[0] = factors[0] * mask if factors[0].requires_grad else factors[0].mul_(mask)
    if instances.shape[2] == 1:
        heatmaps = _outer_product([factor.squeeze(2) for factor in factors])
    else:
        products = _outer_product(factors)  # (B, K, N, *size)
        heatmaps = products.amax(dim=2) if products.requires_grad else _amax_instances(products)
    if normalize == "mean":
        heatmaps = _divide_by_mean(heatmaps, len(size))
    return heatmaps


def rescale_points(points: Tensor, src_size: Sequence[int], dst_size: Sequence[int]) -> Tensor:
    """Map points between resolutions: ``u = (x + 0.5) * W_dst / W_src - 0.5`` on each axis.

    x scales with the widths, y with the heights and z with the depths. Rescaling back with the
    sizes swapped is the exact inverse (up to rounding). NaN coordinates stay NaN.

    Args:
        points: (..., D) with ``D = len(src_size) = len(dst_size)``.
        src_size: the (H, W) or (D, H, W) the points are given in.
        dst_size: the (H, W) or (D, H, W) to express them in.

    Returns:
        (..., D) points with the dtype and device of ``points``.
    """
    src = _check_size(src_size, "src_size")
    dst = _check_size(dst_size, "dst_size")
    if len(src) != len(dst):
        raise ValueError(f"src_size {src} and dst_size {dst} must have the same number of axes")
    if not points.is_floating_point() or points.ndim < 1 or points.shape[-1] != len(src):
        raise ValueError(
            f"points must be a floating tensor (..., {len(src)}) for sizes of {len(src)} axes, "
            f"got {points.dtype} {tuple(points.shape)}"
        )
    compute_dtype = torch.float64 if points.dtype == torch.float64 else torch.float32
    # Coordinate c runs along size axis D-1-c: x with widths, y with heights, z with depths.
    scale = torch.tensor(
        [d / s for s, d in zip(reversed(src), reversed(dst), strict=True)],
        dtype=compute_dtype,
        device=points.device,
    )
    return ((points.to(compute_dtype) + 0.5) * scale - 0.5).to(points.dtype)


def _check_size(size: Sequence[int], name: str) -> tuple[int, ...]:
    """Validate a spatial size of 2 or 3 positive integers."""
    dims = tuple(size)
    if len(dims) not in (2, 3) or not all(isinstance(n, int) and n > 0 for n in dims):
        raise ValueError(f"{name} must be (H, W) or (D, H, W) of positive ints, got {size!r}")
    return dims


def _as_instances(points: Tensor, num_axes: int) -> Tensor:
    """Return points as (B, K, N, D), adding N = 1 to single-instance (B, K, D) input."""
    if not isinstance(points, Tensor) or points.dtype not in _RENDER_DTYPES:
        raise ValueError(
            "points must be a float16, bfloat16, float32 or float64 tensor, got "
            f"{getattr(points, 'dtype', type(points).__name__)}"
        )
    if points.ndim not in (3, 4) or points.shape[-1] != num_axes:
        raise ValueError(
            f"points must be (B, K, {num_axes}) or (B, K, N, {num_axes}) to match a size of "
            f"{num_axes} axes, got {tuple(points.shape)}"
        )
    return points.unsqueeze(2) if points.ndim == 3 else points


def _broadcast_per_landmark(values: Tensor, num_landmarks: int, shape_error: str) -> Tensor:
    """A 0-d (one value for every landmark) or (K,) tensor as (K,); a 0-d one is expanded.

    Any other shape raises ValueError(f"{shape_error}, got shape ..."): the caller words what it
    accepts, because the schedules and `render_heatmaps` name their arguments differently.
    """
    if values.ndim == 0:
        values = values.expand(num_landmarks)
    if values.shape != (num_landmarks,):
        raise ValueError(f"{shape_error}, got shape {tuple(values.shape)}")
    return values


def _landmark_sigmas(
    sigma: float | Tensor, num_landmarks: int, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """Return sigma as a (K,) tensor of positive finite widths."""
    widths = _broadcast_per_landmark(
        torch.as_tensor(sigma, dtype=dtype, device=device),
        num_landmarks,
        f"sigma must be a float or a ({num_landmarks},) tensor (one per landmark)",
    )
    if not bool(torch.isfinite(widths).all()) or not bool((widths > 0).all()):
        raise ValueError(f"sigma must be positive and finite, got {widths.tolist()}")
    return widths


def _gaussian_factor(centres: Tensor, widths: Tensor, extent: int) -> Tensor:
    """1-D Gaussian factors along one axis.

    Args:
        centres: (B, K, *M) coordinates along the axis, M any trailing shape (the instances,
            and the axes when several of the same extent are built at once).
        widths: (K,) sigmas.
        extent: the number of pixels along the axis.

    Returns:
        (B, K, *M, extent) values ``exp(-(i - centre)^2 / (2 sigma^2))``.
    """
    grid = torch.arange(extent, dtype=centres.dtype, device=centres.device)
    offsets = grid - centres.unsqueeze(-1)
    # -2 sigma^2, a divisor rather than a reciprocal factor so the targets keep their bits
    divisor = -2.0 * widths.square().reshape(1, -1, *[1] * (offsets.ndim - 2))
    # Most pixels of a narrow Gaussian lie where exp underflows, and on the CPU exp is 15 to 50
    # times slower where its result is subnormal or zero than in the normal range (measured:
    # 2.0-7.2 ms against 0.14 ms for 139k float32 values). So the exponent is clamped a little
    # inside the normal range and what lands on the clamp is flushed to zero: a value changes by
    # less than twice exp(clamp), 6.4e-38 in float32.
    clamp = math.log(torch.finfo(offsets.dtype).tiny) + 1.0
    if offsets.requires_grad or divisor.requires_grad:
        exponent = (offsets.square() / divisor).clamp(min=clamp)
        return F.threshold(torch.exp(exponent), 2 * math.exp(clamp), 0.0)
    # The same steps in place: on the CPU each fresh intermediate of a batch is a new mapping
    # whose page faults cost more than its arithmetic (measured at B=32, K=68, 64 px: 1.18 ms a
    # factor with five intermediates, 0.18 ms with one).
    exponent = offsets.square_().div_(divisor).clamp_(min=clamp)
    return F.threshold(exponent.exp_(), 2 * math.exp(clamp), 0.0, inplace=True)


def _outer_product(factors: list[Tensor]) -> Tensor:
    """Outer product of per-axis factors over their last axis: (*L, S_a) each -> (*L, *S)."""
    leading = factors[0].shape[:-1]
    num_axes = len(factors)

    def along(axis: int, factor: Tensor) -> Tensor:
        ones_before, ones_after = [1] * axis, [1] * (num_axes - 1 - axis)
        return factor.reshape(*leading, *ones_before, factor.shape[-1], *ones_after)

    head = along(0, factors[0])
    for axis in range(1, num_axes - 1):
        head = head * along(axis, factors[axis])
    last = along(num_axes - 1, factors[-1])
    if head.requires_grad or last.requires_grad:
        return head * last  # out= does not support autograd
    shape = (*leading, *(factor.shape[-1] for factor in factors))
    return torch.mul(head, last, out=_empty_like_device(shape, factors[0]))


def _amax_instances(products: Tensor) -> Tensor:
    """Max over the instance axis of (B, K, N, *size), written into a fresh (B, K, *size)."""
    shape = (*products.shape[:2], *products.shape[3:])
    return torch.amax(products, dim=2, out=_empty_like_device(shape, products))


def _empty_like_device(shape: Sequence[int], like: Tensor) -> Tensor:
    """An uninitialised tensor with the dtype and device of ``like``.

    On the CPU the memory comes from NumPy, whose allocator asks Linux for transparent huge
    pages on large arrays; torch's does not, and first-touch page faults then dominated
    rendering (measured: 25 of 35 ms for a 32 x 68 x 64 x 64 batch, 450 of 480 ms at 256 x 256).
    When torch runs several threads its pages are then touched once from this thread: when
    torch's two threads first touched them in parallel, a 64 px batch took 15-56 ms instead of
    9-12 ms (median of 9 calls in each of five fresh processes). The touch costs its time at
    256 px (55 ms became 90-117 ms, within 1.5x of the cost of filling the same output), which is
    the price of never stalling. On one thread nothing touches in parallel and the write faults
    the pages in as a fill does, so the touch would only be a second pass (`bench perf targets
    --threads 1`, three runs each: 1.04-1.12x of the floor at 256 px without it, 1.29-1.31x with;
    1.33-1.46x and 1.41-1.57x at 64 px).
    """
    if like.device.type != "cpu":
        return torch.empty(tuple(shape), dtype=like.dtype, device=like.device)
    storage = np.empty(tuple(shape), dtype=_NUMPY_STORAGE[like.dtype])
    if torch.get_num_threads() > 1:
        storage.reshape(-1).view(np.uint8)[::_PAGE_BYTES] = 0
    return torch.from_numpy(storage).view(like.dtype)


def _divide_by_mean(heatmaps: Tensor, num_axes: int) -> Tensor:
    """Divide each (b, k) heatmap by its spatial mean; all-zero heatmaps stay zero."""
    spatial = tuple(range(-num_axes, 0))
    accumulate = torch.float64 if heatmaps.dtype == torch.float64 else torch.float32
    means = heatmaps.mean(dim=spatial, keepdim=True, dtype=accumulate)
    safe_means = torch.where(means > 0, means, torch.ones_like(means))
    if heatmaps.requires_grad:
        return (heatmaps / safe_means).to(heatmaps.dtype)
    # In place: the heatmaps were allocated here, and a second batch-sized buffer costs as much
    # as rendering did.
    return heatmaps.div_(safe_means)
