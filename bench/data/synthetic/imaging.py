"""Image-formation primitives shared by the synthetic generators.

Everything works on float32 numpy arrays and takes its randomness from a `numpy.random.Generator`,
so a generator that draws its scenes in a fixed order produces the same bytes for the same seed.

Geometry follows docs/design.md: points are `(x, y)` in pixels of the array being drawn into, the
centre of pixel (row i, col j) is at x=j, y=i. Shapes are drawn as anti-aliased *coverage* maps (H,
W) in [0, 1] (the fraction of each pixel covered, from a one-pixel linear ramp on the signed
distance to the shape's boundary), then composited with `paint`. Each coverage function evaluates
only the shape's bounding box, so drawing a small shape into a large canvas costs little.

Array shapes:
    fields / images (N, H, W) or (N, C, H, W); a single canvas (H, W) or (C, H, W);
    polylines (P, 2); polygons (V, 2).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

FloatArray = NDArray[np.float32]


def smooth_field(
    rng: np.random.Generator, n: int, size: tuple[int, int], correlation_px: float
) -> FloatArray:
    """(n, H, W) zero-mean, unit-variance Gaussian random fields.

    White noise low-pass filtered in the Fourier domain with a Gaussian kernel of standard
    deviation `correlation_px` pixels, so structures are about that wide. The fields are periodic
    (the FFT wraps around), which is invisible in a texture.
    """
    h, w = size
    noise = rng.standard_normal((n, h, w)).astype(np.float32)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    transfer = np.exp(-2.0 * np.pi**2 * correlation_px**2 * (fx**2 + fy**2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=(h, w)).astype(np.float32)
    field -= field.mean(axis=(1, 2), keepdims=True)
    standardised: FloatArray = field / np.maximum(field.std(axis=(1, 2), keepdims=True), 1e-12)
    return standardised


def fractal_field(
    rng: np.random.Generator,
    n: int,
    size: tuple[int, int],
    correlation_px: float,
    octaves: int = 4,
    persistence: float = 0.5,
) -> FloatArray:
    """(n, H, W) unit-variance sum of `octaves` smooth fields.

    Octave o has correlation `correlation_px / 2**o` and weight `persistence**o`: large smooth
    shapes with finer detail on top, the usual model of tissue, skin or cloth texture.
    """
    total = np.zeros((n, *size), dtype=np.float32)
    for octave in range(octaves):
        scale = max(correlation_px / 2**octave, 0.5)
        total += np.float32(persistence**octave) * smooth_field(rng, n, size, scale)
    total -= total.mean(axis=(1, 2), keepdims=True)
    standardised: FloatArray = total / np.maximum(total.std(axis=(1, 2), keepdims=True), 1e-12)
    return standardised


def gaussian_blur(images: FloatArray, sigma_px: float | ArrayLike) -> FloatArray:
    """Blur the last two axes of `images` (N, H, W) or (N, C, H, W) with a Gaussian.

    sigma_px: a scalar, or (N,) one standard deviation per image (pixels); 0 leaves an image as
    it is. Borders are reflected, so a blurred frame does not darken at its edges.
    """
    sigmas = np.broadcast_to(np.asarray(sigma_px, dtype=np.float64), (images.shape[0],))
    lead = (0.0,) * (images.ndim - 3)
    out = np.empty_like(images)
    for i, sigma in enumerate(sigmas):
        if sigma > 0:
            out[i] = ndimage.gaussian_filter(images[i], (*lead, sigma, sigma), mode="reflect")
        else:
            out[i] = images[i]
    return out


def poisson_gaussian_noise(
    rng: np.random.Generator,
    images: FloatArray,
    photons: float | ArrayLike,
    read_noise: float | ArrayLike,
) -> FloatArray:
    """Signal-dependent detector noise on intensities in [0, 1], clipped back to [0, 1].

    Shot noise of variance `I / photons` (X-ray quanta, low-light photons) plus the electronics'
    constant read noise: `I + sqrt(I / photons + read_noise^2) * Normal(0, 1)`, the
    heteroscedastic Gaussian form of the Poisson-Gaussian model (Foi et al. 2008), accurate once
    a pixel collects more than a few quanta and several times faster than Poisson sampling.
    photons, read_noise: scalars or (N,) per image.
    """
    per_image = (images.shape[0],) + (1,) * (images.ndim - 1)
    photons_arr = np.broadcast_to(np.asarray(photons, dtype=np.float32), images.shape[:1])
    read_arr = np.broadcast_to(np.asarray(read_noise, dtype=np.float32), images.shape[:1])
    signal = np.clip(images, 0.0, None)
    variance = signal / photons_arr.reshape(per_image) + read_arr.reshape(per_image) ** 2
    noise = rng.standard_normal(images.shape, dtype=np.float32) * np.sqrt(variance)
    noisy: FloatArray = np.clip(signal + noise, 0.0, 1.0).astype(np.float32)
    return noisy


def paint(
    canvas: FloatArray, coverage: FloatArray, value: float | ArrayLike, opacity: float = 1.0
) -> None:
    """Composite `value` over `canvas` in place where `coverage` (H, W) is non-zero.

    canvas: (H, W) with a scalar value, or (C, H, W) with a scalar or a (C,) colour.
    `canvas = canvas * (1 - a) + value * a` with `a = opacity * coverage`.
    """
    alpha = np.float32(opacity) * coverage
    if canvas.ndim == 2:
        canvas += alpha * (np.asarray(value, dtype=np.float32) - canvas)
        return
    colour = np.broadcast_to(np.asarray(value, dtype=np.float32), (canvas.shape[0],))
    canvas += alpha[None] * (colour[:, None, None] - canvas)


def _box(
    lo: ArrayLike, hi: ArrayLike, size: tuple[int, int]
) -> tuple[slice, slice, FloatArray, FloatArray] | None:
    """Pixel centres covering [lo, hi] (x, y), clipped to the image: xs (1, w) and ys (h, 1).

    None if the box misses the image. The grids broadcast against each other, so callers
    never build full (h, w) coordinate arrays.
    """
    h, w = size
    (lx, ly), (hx, hy) = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    x0, y0 = max(int(np.floor(lx)), 0), max(int(np.floor(ly)), 0)
    x1, y1 = min(int(np.ceil(hx)) + 1, w), min(int(np.ceil(hy)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    return slice(y0, y1), slice(x0, x1), xs, ys


def _ramp(signed_distance: FloatArray) -> FloatArray:
    """Coverage from the signed distance to a boundary (positive inside): a one-pixel ramp."""
    coverage: FloatArray = np.clip(signed_distance + 0.5, 0.0, 1.0).astype(np.float32)
    return coverage


def _segment_distances(
    xs: FloatArray, ys: FloatArray, a: NDArray[np.float64], b: NDArray[np.float64]
) -> tuple[FloatArray, FloatArray]:
    """(S, h, w) distances of pixel centres to segments a[s]-b[s] (S, 2), and the clamped
    projection parameters t of the nearest points."""
    ax, ay = a[:, 0, None, None], a[:, 1, None, None]
    ex, ey = (b[:, 0] - a[:, 0])[:, None, None], (b[:, 1] - a[:, 1])[:, None, None]
    dx, dy = xs[None] - ax, ys[None] - ay
    t = np.clip((dx * ex + dy * ey) / np.maximum(ex * ex + ey * ey, 1e-12), 0.0, 1.0)
    return np.hypot(dx - t * ex, dy - t * ey).astype(np.float32), t.astype(np.float32)


_SEGMENTS_PER_PASS = 4  # segments evaluated together, in the bounding box of just those


def polyline_coverage(
    points: ArrayLike, width: float | ArrayLike, size: tuple[int, int]
) -> FloatArray:
    """(H, W) coverage of a thick polyline with round joins and caps.

    points: (P, 2) vertices (x, y), P >= 2. width: full stroke width in pixels, a scalar or (P,)
    per vertex (interpolated linearly along each segment, for tapered tools and vessels).
    Strokes thinner than a pixel keep their total intensity: coverage is scaled down by the width
    rather than vanishing, as a sub-pixel wire does on a detector. A few segments at a time are
    evaluated in their own bounding box, so a long stroke across the frame stays cheap.
    """
    pts = np.asarray(points, dtype=np.float64)
    widths = np.broadcast_to(np.asarray(width, dtype=np.float64), (pts.shape[0],))
    best = np.full(size, -1.0, dtype=np.float32)
    for start in range(0, pts.shape[0] - 1, _SEGMENTS_PER_PASS):
        stop = min(start + _SEGMENTS_PER_PASS, pts.shape[0] - 1)
        group = pts[start : stop + 1]
        reach = widths[start : stop + 1].max() / 2.0 + 1.0
        box = _box(group.min(axis=0) - reach, group.max(axis=0) + reach, size)
        if box is None:
            continue
        rows, cols, xs, ys = box
        dist, t = _segment_distances(xs, ys, group[:-1], group[1:])
        w0 = widths[start:stop, None, None].astype(np.float32)
        w1 = widths[start + 1 : stop + 1, None, None].astype(np.float32)
        half = np.maximum((w0 + t * (w1 - w0)) / 2.0, 0.5)
        np.maximum(best[rows, cols], (half - dist).max(axis=0), out=best[rows, cols])
    return _ramp(best) * np.float32(min(float(widths.mean()), 1.0))


def polygon_coverage(vertices: ArrayLike, size: tuple[int, int]) -> FloatArray:
    """(H, W) coverage of a filled simple polygon; vertices (V, 2) (x, y), V >= 3, either order.

    Inside/outside by the crossing-number rule, anti-aliased by the distance to the nearest edge.
    """
    verts = np.asarray(vertices, dtype=np.float64)
    out = np.zeros(size, dtype=np.float32)
    box = _box(verts.min(axis=0) - 1.0, verts.max(axis=0) + 1.0, size)
    if box is None:
        return out
    rows, cols, xs, ys = box
    a, b = verts, np.roll(verts, -1, axis=0)
    ay, by = a[:, 1, None, None], b[:, 1, None, None]
    straddles = (ay > ys[None]) != (by > ys[None])  # (V, h, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = a[:, 0, None, None] + (ys[None] - ay) * (b - a)[:, 0, None, None] / (by - ay)
    inside = (straddles & (xs[None] < x_cross)).sum(axis=0) % 2 == 1
    dist, _ = _segment_distances(xs, ys, a, b)
    nearest = dist.min(axis=0)
    out[rows, cols] = _ramp(np.where(inside, nearest, -nearest))
    return out


def ellipse_coverage(
    centre: ArrayLike, axes: ArrayLike, angle: float, size: tuple[int, int]
) -> FloatArray:
    """(H, W) coverage of a filled ellipse.

    centre (x, y); axes (a, b) semi-axes in pixels along the ellipse's own x and y; angle in
    radians, counter-clockwise on screen (y down, so positive angles turn x towards -y).
    The signed distance uses the first-order estimate (1 - r) / |grad r| of the normalised
    radius r, exact on a circle and within a fraction of a pixel for the ellipses drawn here.
    """
    cx, cy = (float(v) for v in np.asarray(centre, dtype=np.float64))
    ax_a, ax_b = (max(float(v), 1e-3) for v in np.asarray(axes, dtype=np.float64))
    out = np.zeros(size, dtype=np.float32)
    reach = max(ax_a, ax_b) + 1.0
    box = _box(np.array([cx - reach, cy - reach]), np.array([cx + reach, cy + reach]), size)
    if box is None:
        return out
    rows, cols, xs, ys = box
    cos, sin = np.cos(angle), np.sin(angle)
    u = (xs - cx) * cos - (ys - cy) * sin
    v = (xs - cx) * sin + (ys - cy) * cos
    r = np.sqrt((u / ax_a) ** 2 + (v / ax_b) ** 2)
    grad = np.sqrt((u / ax_a**2) ** 2 + (v / ax_b**2) ** 2) / np.maximum(r, 1e-9)
    signed = (1.0 - r) / np.maximum(grad, 1e-9)
    # at the centre r -> 0 and the estimate degenerates; the centre is deep inside anyway
    signed = np.where(r < 1e-6, min(ax_a, ax_b), signed)
    out[rows, cols] = _ramp(signed.astype(np.float32))
    return out


def resample_polyline(points: ArrayLike, spacing: float) -> NDArray[np.float64]:
    """(S, 2) points at equal arc-length `spacing` along the polyline (P, 2), ends included."""
    pts = np.asarray(points, dtype=np.float64)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    stations = np.linspace(0.0, arc[-1], max(int(np.ceil(arc[-1] / spacing)), 1) + 1)
    return np.stack([np.interp(stations, arc, pts[:, 0]), np.interp(stations, arc, pts[:, 1])], 1)


def splat_points(
    n: int,
    size: tuple[int, int],
    image_index: ArrayLike,
    points: ArrayLike,
    weights: ArrayLike,
) -> FloatArray:
    """(n, H, W) sum of `weights` deposited at sub-pixel `points` by bilinear interpolation.

    image_index (S,) int, points (S, 2) (x, y), weights (S,). Dense samples along curves
    (`resample_polyline`) splatted with weight `spacing * strength` give a line density whose
    integral across the line is `strength`: the projection of a thin wire, ready to be blurred
    by the imaging system's point-spread function. Samples outside the image are dropped.
    """
    h, w = size
    idx = np.asarray(image_index, dtype=np.int64)
    pts = np.asarray(points, dtype=np.float64)
    wts = np.asarray(weights, dtype=np.float64)
    x0, y0 = np.floor(pts[:, 0]), np.floor(pts[:, 1])
    fx, fy = pts[:, 0] - x0, pts[:, 1] - y0
    flat = np.zeros(n * h * w, dtype=np.float64)
    for dx, dy, share in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        xi, yi = x0.astype(np.int64) + dx, y0.astype(np.int64) + dy
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        flat += np.bincount(
            (idx[ok] * h + yi[ok]) * w + xi[ok], weights=(wts * share)[ok], minlength=n * h * w
        )
    return flat.reshape(n, h, w).astype(np.float32)
