"""Synthetic CathDet: the tip of a thin, low-contrast catheter in fluoroscopy-like X-ray frames.

What makes the real task hard, and how each part is modelled (see `CathDetParams`):

* the catheter is a wire 1-2 px wide at 256 x 256 that dims its centre line by 15-40 %, a
  contrast-to-noise ratio of about 2-6 per pixel: it is drawn as a line integral of attenuation
  along a smooth random curve that enters from the border and ends at the tip (the landmark);
* quantum (Poisson) and read (Gaussian) noise at fluoroscopic dose, after the detector blur;
* anatomy in the way: a smooth soft-tissue background and bone (rib-like arcs, vertebra-like
  blobs), wide structures whose edges are as strong as the catheter;
* distractors: in some frames other wires (ECG leads, guide wires) cross the frame from border to
  border; locally they look exactly like the catheter, only the catheter has an end inside;
* annotation jitter of about 1 px between the drawn tip and the labelled point.

Scenes are laid out in the 256 x 256 reference frame and rendered straight at the profile's size
(`quick` 64 x 64): widths and blur scale with the frame, and the dose per pixel with its area
(binning), so the catheter's contrast-to-noise ratio stays that of the reference frame.
Intensities follow Beer-Lambert: `I = exposure * exp(-attenuation)`, with an automatic exposure
control that brings each frame's mean to a target grey level, as fluoroscopes do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from adaloss.targets import rescale_points
from bench.data.dataset import LandmarkDataset, Split
from bench.data.synthetic import imaging
from bench.tasks import fixed_layout

GENERATOR_VERSION = 3
REFERENCE = 256
_CHUNK = 128  # frames rendered together; fixed so the random stream does not depend on memory
_TRACE_STEPS = 1000  # reference pixels traced per curve: far more than any curve needs to exit
_CURVED_STEPS = 600  # after this many steps curves run straight, so every one leaves the frame

FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class CathDetParams:
    """Every parameter of the CathDet generator. Lengths are in pixels of the 256 x 256 frame.

    image_size: (H, W) of the stored images.
    n_train, n_val, n_test: frames per split (the paper: 3000 train, 300 test).
    n_val_appended: more validation frames, drawn after the test split so that a larger
        validation split leaves the training and test frames byte-identical (docs/data.md,
        "Validation noise").
    tissue_correlation: size of soft-tissue density variations as a fraction of the frame side;
        lungs, heart shadow and fat vary over several centimetres (~0.2 of a 256 px field).
    tissue_contrast: std of the soft-tissue log-attenuation; 0.25 gives the 20-30 % brightness
        swings between lung and mediastinum seen in chest fluoroscopy.
    body_thickness: extra log-attenuation at the frame centre against the edges (the body is
        thicker in the middle); (low, high) drawn per frame.
    ribs: (min, max) rib-like arcs per frame; a chest field of view shows 2-6 ribs.
    rib_width: (low, high) width of a rib; ribs are 10-15 mm, about 9-16 px at 256 px per
        ~25 cm field.
    rib_attenuation: (low, high) log-attenuation of a rib; a rib dims the image by 10-22 %
        over its whole width, edges as strong as the thin catheter's.
    rib_spacing: (low, high) distance between neighbouring ribs (intercostal spaces).
    spine_probability: share of frames with a vertebral column (a column of dense blobs).
    catheter_width: (low, high) catheter width; 4-6 French catheters (1.3-2 mm) are 1-2 px.
    catheter_contrast: (low, high) log-attenuation per px of wire width (the wire's line
        integral is contrast * width); after the detector blur a 1-2 px wire dims its centre
        line by 15-40 %: a thin polymer catheter with a braided or radio-opaque core.
    curvature: std of the curve's curvature (rad per px); 0.012 is a bend radius of ~80 px,
        the gentle curves of a catheter following vessels.
    curvature_correlation: arc length (px) over which the curvature changes.
    tip_margin: the tip lies at least this fraction of the frame from the border (the
        annotated frames are centred on the region of interest).
    wire_probability: share of frames with distractor wires (ECG leads, guide wires).
    max_wires: at most this many wires in such a frame.
    psf_sigma: detector and focal-spot blur (Gaussian std, px).
    photons: (low, high) detected quanta per reference pixel at full transmission; low-dose
        pulsed fluoroscopy gives a few hundred.
    read_noise: electronic noise std on the [0, 1] grey scale.
    target_mean: (low, high) mean grey level set by the automatic exposure control.
    annotation_jitter: std per axis of the labelled tip around the drawn tip; 0.8 px gives a
        mean radial offset of 1 px, the precision of a careful annotator at 256 px.
    """

    image_size: tuple[int, int]
    n_train: int
    n_val: int
    n_test: int
    n_val_appended: int = 0
    tissue_correlation: float = 0.18
    tissue_contrast: float = 0.25
    body_thickness: tuple[float, float] = (0.1, 0.5)
    ribs: tuple[int, int] = (2, 6)
    rib_width: tuple[float, float] = (9.0, 16.0)
    rib_attenuation: tuple[float, float] = (0.1, 0.25)
    rib_spacing: tuple[float, float] = (28.0, 42.0)
    spine_probability: float = 0.4
    catheter_width: tuple[float, float] = (1.0, 2.0)
    catheter_contrast: tuple[float, float] = (0.25, 0.45)
    curvature: float = 0.012
    curvature_correlation: float = 40.0
    tip_margin: float = 0.12
    wire_probability: float = 0.5
    max_wires: int = 2
    psf_sigma: float = 0.6
    photons: tuple[float, float] = (200.0, 600.0)
    read_noise: float = 0.01
    target_mean: tuple[float, float] = (0.45, 0.65)
    annotation_jitter: float = 0.8


PROFILES = {
    "smoke": CathDetParams(image_size=(32, 32), n_train=24, n_val=8, n_test=16),
    # The catheter and wires keep their 1-2 px width at the network's input: binned to 64 px a
    # realistic wire is sub-pixel and no cell learns (docs/data.md, "Calibrating quick CathDet").
    # 2000 training frames: with 600 the reference sigma overfits at ~50 px; 2000 meet the regime
    # criteria (docs/data.md, "Regime criteria": tools/regime.py cathdet).
    "quick": CathDetParams(
        image_size=(64, 64), n_train=2000, n_val=100, n_test=300, catheter_width=(4.0, 8.0)
    ),
    "paper": CathDetParams(image_size=(256, 256), n_train=3000, n_val=300, n_test=300),
}


@dataclass(frozen=True)
class Frames:
    """A batch of rendered frames with their ground truth, in pixels of the stored images.

    images: (n, 1, H, W) float32 in [0, 1]. tips: (n, 2) drawn tips. labels: (n, 2) annotated
    tips (tips plus annotation jitter). wires: (n,) number of distractor wires per frame.
    """

    images: FloatArray
    tips: NDArray[np.float64]
    labels: NDArray[np.float64]
    wires: NDArray[np.int64]


def generate(params: CathDetParams, seed: int) -> LandmarkDataset:
    """The CathDet dataset: splits train/val/test; test subsets "with-wires" and "no-wires"."""
    # two streams: the scenes do not depend on the image size, the texture and noise do
    scene_rng, pixel_rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    counts = {"train": params.n_train, "val": params.n_val, "test": params.n_test}
    drawn = {name: _draw(params, scene_rng, pixel_rng, count) for name, count in counts.items()}
    more_images, more_labels, more_wires = _draw(
        params, scene_rng, pixel_rng, params.n_val_appended
    )
    images, labels, wires = drawn["val"]
    drawn["val"] = (
        np.concatenate([images, more_images]),
        np.concatenate([labels, more_labels]),
        np.concatenate([wires, more_wires]),
    )
    splits = {}
    for name, (images, labels, wires) in drawn.items():
        subsets = {}
        if name == "test":
            subsets = {
                "with-wires": torch.from_numpy(np.flatnonzero(wires > 0)),
                "no-wires": torch.from_numpy(np.flatnonzero(wires == 0)),
            }
        splits[name] = Split(torch.from_numpy(images), torch.from_numpy(labels), subsets)
    return LandmarkDataset.with_layout("cathdet", "synthetic", fixed_layout("cathdet"), splits)


def _draw(
    params: CathDetParams,
    scene_rng: np.random.Generator,
    pixel_rng: np.random.Generator,
    count: int,
) -> tuple[FloatArray, FloatArray, NDArray[np.int64]]:
    """`count` frames: images (n, 1, H, W), labels (n, 1, 2) and wire counts (n,), rendered chunk
    by chunk into arrays allocated once, so a paper-size split is held in memory once."""
    images = np.empty((count, 1, *params.image_size), dtype=np.float32)
    labels = np.empty((count, 1, 2), dtype=np.float32)
    wires = np.empty(count, dtype=np.int64)
    for start in range(0, count, _CHUNK):
        frames = render_frames(params, scene_rng, pixel_rng, min(_CHUNK, count - start))
        stop = start + frames.wires.size
        images[start:stop] = frames.images
        labels[start:stop, 0] = frames.labels
        wires[start:stop] = frames.wires
    return images, labels, wires


def render_frames(
    params: CathDetParams,
    scene_rng: np.random.Generator,
    pixel_rng: np.random.Generator,
    n: int,
) -> Frames:
    """Draw and render `n` frames (see the module docstring for the image model).

    scene_rng draws everything whose number of draws does not depend on the image size
    (geometry, contrasts, exposure, dose, jitter); pixel_rng the tissue texture and the noise.
    So the same scene_rng state gives the same scenes and tips at every profile size.
    """
    rng = scene_rng
    size = params.image_size
    scale = size[1] / REFERENCE
    tips_ref = rng.uniform(
        params.tip_margin * REFERENCE, (1 - params.tip_margin) * REFERENCE, (n, 2)
    )
    catheters = _trace(params, rng, tips_ref, rng.uniform(-np.pi, np.pi, n))
    wire_counts = np.where(
        rng.random(n) < params.wire_probability, rng.integers(1, params.max_wires + 1, n), 0
    )
    owners = np.repeat(np.arange(n), wire_counts)
    wire_starts, wire_headings = _border_starts(rng, owners.size)
    wires = _trace(params, rng, wire_starts, wire_headings)
    curve_owner = np.concatenate([np.arange(n), owners])
    attenuation = _bones(params, rng, n)
    attenuation += _thin_curves(params, rng, [*catheters, *wires], curve_owner, n)
    target_mean = rng.uniform(*params.target_mean, n)
    photons = rng.uniform(*params.photons, n) / scale**2  # binning: dose per pixel grows
    jitter = rng.normal(0.0, params.annotation_jitter, (n, 2))

    attenuation += _tissue(params, pixel_rng, n)
    transmitted = np.exp(-attenuation)
    exposure = target_mean / transmitted.mean(axis=(1, 2))  # automatic exposure control
    transmitted *= exposure[:, None, None].astype(np.float32)
    blurred = imaging.gaussian_blur(transmitted, params.psf_sigma * scale)
    images = imaging.poisson_gaussian_noise(pixel_rng, blurred, photons, params.read_noise)
    tips = _to_image(tips_ref, size)
    labels = _to_image(tips_ref + jitter, size)
    return Frames(images[:, None], tips, labels, wire_counts.astype(np.int64))


def _to_image(points_ref: NDArray[np.float64], size: tuple[int, int]) -> NDArray[np.float64]:
    """(n, 2) reference-frame points in pixels of the stored `size` images."""
    mapped = rescale_points(torch.from_numpy(points_ref), (REFERENCE, REFERENCE), size)
    return mapped.numpy()


def _tissue(params: CathDetParams, rng: np.random.Generator, n: int) -> FloatArray:
    """(n, H, W) soft-tissue log-attenuation: smooth texture plus a thicker body centre."""
    h, w = params.image_size
    texture = imaging.fractal_field(
        rng, n, (h, w), params.tissue_correlation * w, octaves=3, persistence=0.45
    )
    ys, xs = np.mgrid[0:h, 0:w]
    centre = rng.uniform(0.3, 0.7, (n, 2))
    radial = (xs / w - centre[:, 0, None, None]) ** 2 + (ys / h - centre[:, 1, None, None]) ** 2
    thickness = rng.uniform(*params.body_thickness, n)[:, None, None] * np.exp(-radial / 0.18)
    tissue: FloatArray = (params.tissue_contrast * texture + thickness).astype(np.float32)
    return tissue


def _bones(params: CathDetParams, rng: np.random.Generator, n: int) -> FloatArray:
    """(n, H, W) bone log-attenuation: parallel rib-like arcs and, in some frames, a spine."""
    size = params.image_size
    scale = size[1] / REFERENCE
    out = np.zeros((n, *size), dtype=np.float32)
    span = np.linspace(-0.3 * REFERENCE, 1.3 * REFERENCE, 17)
    for i in range(n):
        count = rng.integers(params.ribs[0], params.ribs[1] + 1)
        tilt = rng.uniform(-0.6, 0.6)
        bend = rng.uniform(0.0015, 0.004) * rng.choice([-1.0, 1.0])
        spacing = rng.uniform(*params.rib_spacing)
        first = rng.uniform(-0.1, 0.4) * REFERENCE
        rotation = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
        for k in range(count):
            # a parabolic arc in a tilted frame about the frame centre
            own_bend = bend * rng.uniform(0.8, 1.2)
            y = first + k * spacing + own_bend * (span - REFERENCE / 2) ** 2
            local = np.stack([span - REFERENCE / 2, y - REFERENCE / 2], axis=1)
            arc = local @ rotation.T + REFERENCE / 2
            width = rng.uniform(*params.rib_width) * scale
            cover = imaging.polyline_coverage(_to_image(arc, size), width, size)
            out[i] += rng.uniform(*params.rib_attenuation) * cover
        if rng.random() < params.spine_probability:
            x = rng.uniform(0.25, 0.75) * REFERENCE
            lean = rng.uniform(-0.15, 0.15)
            for y in np.arange(rng.uniform(-20, 10), REFERENCE + 20, rng.uniform(30, 38)):
                centre = _to_image(np.array([[x + lean * y, y]]), size)[0]
                axes = np.array([rng.uniform(18, 24), rng.uniform(11, 14)]) * scale
                cover = imaging.ellipse_coverage(centre, axes, rng.uniform(-0.1, 0.1), size)
                out[i] += rng.uniform(0.1, 0.25) * cover
    # bone edges are not sharp at the detector: soften them by about a reference pixel
    return imaging.gaussian_blur(out, 1.0 * scale)


def _border_starts(
    rng: np.random.Generator, n: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(n, 2) points on the frame border and (n,) headings pointing into the frame."""
    side = rng.integers(0, 4, n)
    along = rng.uniform(0.0, REFERENCE - 1, n)
    edge = np.where(side < 2, -0.5, REFERENCE - 0.5)
    starts = np.where(
        (side % 2 == 0)[:, None],
        np.stack([edge, along], axis=1),  # sides 0, 2: left / right border
        np.stack([along, edge], axis=1),  # sides 1, 3: top / bottom border
    )
    inward = np.array([0.0, np.pi / 2, np.pi, -np.pi / 2])[side]
    return starts, inward + rng.uniform(-1.0, 1.0, n)


def _trace(
    params: CathDetParams,
    rng: np.random.Generator,
    starts: NDArray[np.float64],
    headings: NDArray[np.float64],
) -> list[NDArray[np.float64]]:
    """Smooth random curves from `starts` (n, 2) until they leave the frame; (P_i, 2) each.

    The heading integrates a smooth random curvature over 1 px steps; after `_CURVED_STEPS`
    the curve runs straight, so every curve leaves the frame. The first point outside is kept,
    so a curve reaches the border.
    """
    n = starts.shape[0]
    if n == 0:
        return []
    curvature = (
        params.curvature
        * imaging.smooth_field(rng, n, (1, _TRACE_STEPS), params.curvature_correlation)[:, 0]
    )
    curvature[:, _CURVED_STEPS:] = 0.0
    theta = headings[:, None] + np.cumsum(curvature, axis=1)
    steps = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    path = np.concatenate([starts[:, None], starts[:, None] + np.cumsum(steps, axis=1)], axis=1)
    outside = np.any((path < -0.5) | (path > REFERENCE - 0.5), axis=-1)
    outside[:, 0] = False  # border starts sit on the edge
    exits = outside.argmax(axis=1)
    return [path[i, : exits[i] + 1] for i in range(n)]


def _thin_curves(
    params: CathDetParams,
    rng: np.random.Generator,
    curves: list[NDArray[np.float64]],
    owner: NDArray[np.int64],
    n: int,
) -> FloatArray:
    """(n, H, W) log-attenuation of thin wires: line integrals blurred to the wire's profile.

    Each curve is sampled every 0.25 output px and splatted with weight `spacing * contrast *
    width`, so the integral across the wire is `contrast * width`; a Gaussian then gives the
    wire its cross-section (a box of the wire's width, std width / sqrt(12)), less the spread
    bilinear splatting already adds (variance 1/6 px^2).
    """
    size = params.image_size
    scale = size[1] / REFERENCE
    spacing = 0.25
    widths = rng.uniform(*params.catheter_width, len(curves))
    contrasts = rng.uniform(*params.catheter_contrast, len(curves))
    samples, index, weights = [], [], []
    for k, curve in enumerate(curves):
        dense = imaging.resample_polyline(_to_image(curve, size), spacing)
        samples.append(dense)
        index.append(np.full(dense.shape[0], owner[k]))
        weights.append(np.full(dense.shape[0], spacing * contrasts[k] * widths[k] * scale))
    if not curves:
        return np.zeros((n, *size), dtype=np.float32)
    density = imaging.splat_points(
        n, size, np.concatenate(index), np.concatenate(samples), np.concatenate(weights)
    )
    profile_var = (widths.mean() ** 2 / 12.0) * scale**2 - 1.0 / 6.0
    if profile_var > 0:
        density = imaging.gaussian_blur(density, np.sqrt(profile_var))
    return density
