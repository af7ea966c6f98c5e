"""Synthetic 300-W: 68 iBUG face landmarks whose achievable precision differs by region.

What makes the real task hard, and how each part is modelled (see `FaceParams`):

* a 3-D template of the 68 iBUG points (millimetres, eye line at y = 0) with identity variation
  (face width and length, eye spacing and size, nose, mouth and lips, brow height, jaw shape),
  expression (open mouth, smile, eye opening) and head pose (yaw, pitch, roll), projected
  orthographically; the jaw points follow the face's silhouette under yaw, as 300-W annotators
  mark the visible contour rather than a fixed 3-D point;
* a shaded face (skin, hair, neck, eyes with iris, brows, nose, lips, open mouth) on a cluttered
  background, with lighting, colour and blur variation;
* annotation noise that depends on the region, as in 300-W's inter-annotator spread: the jaw
  contour has no anatomical anchor along it (large tangential noise), brows are fuzzy, eyes and
  nose corners are sharp; so the precision a model can reach differs by landmark;
* test subsets "common" and "challenging" (large pose, occlusion, low light, blur) in the paper's
  ratio 554 : 135; "full" is both.

Scenes are laid out in the 256 x 256 reference frame (the landmark box fills about 0.7 of it, as
300-W crops do with their 1.25x enlarged box) and rendered straight at the profile's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage

from adaloss.targets import rescale_points
from bench.data.dataset import LandmarkDataset, Split
from bench.data.synthetic import imaging
from bench.tasks import fixed_layout

GENERATOR_VERSION = 3
REFERENCE = 256
_CHUNK = 128  # faces rendered together; fixed so the random stream does not depend on memory

FloatArray = NDArray[np.float32]
Float64 = NDArray[np.float64]

# The iBUG template (mm; x to the image's right, y down, z towards the camera; eye line y = 0).
# The jaw (0-16) is built from head cross-sections in `_jaw_and_outline`, so it is not here.
_BROWS = [
    (-62, -14, -22), (-50, -22, -12), (-37, -25, -5), (-24, -24, -1), (-13, -20, 2),
    (13, -20, 2), (24, -24, -1), (37, -25, -5), (50, -22, -12), (62, -14, -22),
]  # fmt: skip
_NOSE = [
    (0, -6, 4), (0, 8, 10), (0, 22, 17), (0, 36, 24),
    (-15, 44, 6), (-8, 47, 11), (0, 49, 14), (8, 47, 11), (15, 44, 6),
]  # fmt: skip
_EYES = [
    (-45, 0, -15), (-37, -5, -10), (-24, -5, -8), (-16, 0, -9), (-24, 4, -9), (-37, 4, -11),
    (16, 0, -9), (24, -5, -8), (37, -5, -10), (45, 0, -15), (37, 4, -11), (24, 4, -9),
]  # fmt: skip
_MOUTH = [
    (-25, 75, -6), (-15, 70, 3), (-6, 67, 8), (0, 68, 9), (6, 67, 8), (15, 70, 3),
    (25, 75, -6), (16, 82, 3), (7, 85, 7), (0, 86, 8), (-7, 85, 7), (-16, 82, 3),
    (-21, 75, -3), (-8, 73, 6), (0, 73.5, 7), (8, 73, 6), (21, 75, -3), (8, 76, 6),
    (0, 76.5, 7), (-8, 76, 6),
]  # fmt: skip
_INNER = np.concatenate([_BROWS, _NOSE, _EYES, _MOUTH]).astype(np.float64)  # points 17-67
_FOREHEAD = [(-15, 68), (-38, 62), (-58, 48)]  # (height y, half-width) of outline sections
_HEAD_CENTRE = np.array([0.0, 30.0, -60.0])  # pivot of the head's rotation
_UPPER_LIDS = [37, 38, 43, 44]
_LOWER_LIDS = [40, 41, 46, 47]
_LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]
_CORNERS = [48, 54, 60, 64]


@dataclass(frozen=True)
class FaceParams:
    """Every parameter of the face generator. Lengths in pixels of the 256 x 256 frame.

    image_size: (H, W) of the stored images.
    n_train, n_val: training and validation faces (the paper: 3148 train).
    n_val_appended: more validation faces, drawn after the test faces so that a larger
        validation split leaves the training and test faces byte-identical (docs/data.md,
        "Validation noise").
    n_common, n_challenging: test faces per subset (300-W: 554 and 135).
    train_challenging: share of training faces drawn with challenging conditions (HELEN, LFPW
        and AFW training images include some hard poses and occlusions).
    box_fraction: (low, high) landmark-box side over the frame side (1 / 1.25 = 0.8 for
        300-W's enlarged crop; a little smaller leaves room for rotation augmentation).
    centre_jitter: std of the face centre's offset from the frame centre (detector jitter).
    identity: relative std of identity proportions (face width and length, eye size, nose and
        mouth); adult faces vary by 5-10 % in these ratios.
    yaw_common, pitch_common, roll_common: pose std (degrees) of common faces (mostly frontal).
    yaw_challenging, pitch_challenging, roll_challenging: pose spread (degrees) of challenging
        faces; yaw is uniform in +-yaw_challenging (iBUG has profiles up to ~60 degrees).
    mouth_open_probability: share of faces with an open mouth (talking, smiling, surprise).
    occlusion_probability: share of challenging faces with an occluder (hands, hair, objects).
    low_light_probability: share of challenging faces in low light (underexposed, noisy).
    blur_probability: share of challenging faces with motion or focus blur.
    blur_sigma: (low, high) blur std of a blurred face (motion and defocus in iBUG's
        challenging images smear features over several pixels).
    noise_jaw_along, noise_jaw_across: annotation noise std along / across the jaw contour;
        points on a smooth contour have no anchor along it, so annotators disagree most there.
    noise_brows_along, noise_brows_across: same for the eyebrows' fuzzy upper/lower edges.
    noise_mouth: isotropic noise on the lips (lip borders are soft, corners are sharp).
    noise_nose: isotropic noise on the nose (bridge and nostrils are well defined).
    noise_eyes: isotropic noise on the eye corners and lids (the sharpest features).
    challenging_noise_factor: annotation noise multiplier on challenging faces (occluded or
        blurred points are guessed).
    """

    image_size: tuple[int, int]
    n_train: int
    n_val: int
    n_common: int
    n_challenging: int
    n_val_appended: int = 0
    train_challenging: float = 0.15
    box_fraction: tuple[float, float] = (0.6, 0.72)
    centre_jitter: float = 6.0
    identity: float = 0.07
    yaw_common: float = 14.0
    pitch_common: float = 8.0
    roll_common: float = 8.0
    yaw_challenging: float = 55.0
    pitch_challenging: float = 18.0
    roll_challenging: float = 22.0
    mouth_open_probability: float = 0.35
    occlusion_probability: float = 0.5
    low_light_probability: float = 0.5
    blur_probability: float = 0.5
    blur_sigma: tuple[float, float] = (2.5, 6.0)
    noise_jaw_along: float = 3.0
    noise_jaw_across: float = 1.2
    noise_brows_along: float = 2.0
    noise_brows_across: float = 1.0
    noise_mouth: float = 1.0
    noise_nose: float = 0.7
    noise_eyes: float = 0.5
    challenging_noise_factor: float = 1.3


PROFILES = {
    "smoke": FaceParams(image_size=(32, 32), n_train=24, n_val=8, n_common=12, n_challenging=4),
    # quick: 600 and 1200 training faces starve the reference sigma (docs/data.md, "Regime
    # criteria"); 2400 is the smallest size not shown to (against 4800: +12.5 % at seed 0,
    # +12.6 % at seed 1, both data-sufficient)
    "quick": FaceParams(
        image_size=(64, 64), n_train=2400, n_val=100, n_common=241, n_challenging=59
    ),
    "paper": FaceParams(
        image_size=(256, 256), n_train=3148, n_val=300, n_common=554, n_challenging=135
    ),
}


@dataclass(frozen=True)
class FaceScenes:
    """Face geometry in the 256 x 256 reference frame.

    clean: (n, 68, 2) true landmark positions; labels: (n, 68, 2) annotated positions.
    outline: (n, 17 + 7, 2) face outline (jaw, then forehead from the image's right to left).
    px_per_mm: (n,) projection scale. yaw: (n,) radians. mouth_open: (n,) mm.
    challenging: (n,) bool.
    """

    clean: Float64
    labels: Float64
    outline: Float64
    px_per_mm: Float64
    yaw: Float64
    mouth_open: Float64
    challenging: NDArray[np.bool_]


def generate(params: FaceParams, seed: int) -> LandmarkDataset:
    """The face dataset: splits train/val/test; test subsets "common" and "challenging"."""
    # two streams: the geometry does not depend on the image size, the rendering does
    rng, pixel_rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    n_hard_train = round(params.train_challenging * params.n_train)
    n_hard_val = round(params.train_challenging * params.n_val)
    plans = {
        "train": _mixed(params.n_train, n_hard_train, rng),
        "val": _mixed(params.n_val, n_hard_val, rng),
        "test": np.r_[np.zeros(params.n_common, bool), np.ones(params.n_challenging, bool)],
    }
    drawn = {name: _draw(params, rng, pixel_rng, hard) for name, hard in plans.items()}
    n_hard_appended = round(params.train_challenging * params.n_val_appended)
    more_images, more_labels = _draw(
        params, rng, pixel_rng, _mixed(params.n_val_appended, n_hard_appended, rng)
    )
    images, labels = drawn["val"]
    drawn["val"] = (np.concatenate([images, more_images]), np.concatenate([labels, more_labels]))
    splits = {}
    for name, (images, labels) in drawn.items():
        subsets = {}
        if name == "test":
            subsets = {
                "common": torch.arange(params.n_common),
                "challenging": torch.arange(params.n_common, len(images)),
            }
        splits[name] = Split(torch.from_numpy(images), torch.from_numpy(labels), subsets)
    return LandmarkDataset.with_layout("face300w", "synthetic", fixed_layout("face300w"), splits)


def _draw(
    params: FaceParams,
    rng: np.random.Generator,
    pixel_rng: np.random.Generator,
    hard: NDArray[np.bool_],
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Faces drawn challenging where `hard` is True: images (n, 3, H, W) and labels (n, 68, 2),
    filled chunk by chunk (the paper profile's 3148 faces are 2.5 GB, kept once in memory)."""
    images = np.empty((hard.size, 3, *params.image_size), dtype=np.float32)
    labels = np.empty((hard.size, 68, 2), dtype=np.float32)
    for start in range(0, hard.size, _CHUNK):
        scenes = sample_faces(params, rng, hard[start : start + _CHUNK])
        stop = start + scenes.clean.shape[0]
        images[start:stop] = render_faces(params, pixel_rng, scenes)
        labels[start:stop] = _to_image(scenes.labels, params.image_size)
    return images, labels


def _mixed(n: int, n_hard: int, rng: np.random.Generator) -> NDArray[np.bool_]:
    """(n,) bool with n_hard True at random places: which faces are drawn challenging."""
    hard = np.zeros(n, dtype=bool)
    hard[rng.permutation(n)[:n_hard]] = True
    return hard


def _to_image(points_ref: Float64, size: tuple[int, int]) -> Float64:
    """(..., 2) reference-frame points in pixels of the stored `size` images."""
    mapped = rescale_points(torch.from_numpy(points_ref), (REFERENCE, REFERENCE), size)
    return mapped.numpy()


def sample_faces(
    params: FaceParams, rng: np.random.Generator, challenging: NDArray[np.bool_]
) -> FaceScenes:
    """Draw identity, expression and pose for len(challenging) faces and project them."""
    n = challenging.size
    ident = 1.0 + params.identity * rng.standard_normal((n, 8))
    mouth_open = np.where(
        rng.random(n) < params.mouth_open_probability, rng.uniform(3.0, 20.0, n), 0.0
    )
    yaw, pitch, roll = _poses(params, rng, challenging)

    inner = np.broadcast_to(_INNER, (n, *_INNER.shape)).copy()  # points 17-67
    _deform_inner(inner, ident, mouth_open, rng)
    inner += rng.normal(0.0, 0.8, inner.shape)  # individual asymmetry
    jaw, outline_top = _jaw_and_outline(ident, mouth_open, yaw, rng)
    rotation = _rotations(pitch, roll)  # yaw is already applied by `_jaw_and_outline`
    yawed_inner = _yaw(inner, yaw)
    points3 = np.concatenate([jaw, yawed_inner, outline_top], axis=1) - _HEAD_CENTRE
    projected = np.einsum("nij,npj->npi", rotation, points3)[..., :2]

    lo, hi = projected[:, :68].min(axis=1), projected[:, :68].max(axis=1)
    side = (hi - lo).max(axis=1)
    px_per_mm = rng.uniform(*params.box_fraction, n) * REFERENCE / side
    centre = (REFERENCE - 1) / 2 + rng.normal(0.0, params.centre_jitter, (n, 2))
    frame = (projected - ((lo + hi) / 2)[:, None]) * px_per_mm[:, None, None] + centre[:, None]

    clean = frame[:, :68]
    labels = clean + _annotation_noise(params, rng, clean, challenging)
    outline = np.concatenate([frame[:, :17], frame[:, 68:]], axis=1)
    return FaceScenes(clean, labels, outline, px_per_mm, yaw, mouth_open, challenging)


def _poses(
    params: FaceParams, rng: np.random.Generator, challenging: NDArray[np.bool_]
) -> tuple[Float64, Float64, Float64]:
    """(n,) yaw, pitch, roll in radians: near-frontal for common faces, wide for challenging."""
    n = challenging.size
    yaw = np.where(
        challenging,
        rng.uniform(-1.0, 1.0, n) * params.yaw_challenging,
        np.clip(rng.normal(0.0, params.yaw_common, n), -2.5 * params.yaw_common, None),
    )
    pitch = rng.normal(0.0, 1.0, n) * np.where(
        challenging, params.pitch_challenging, params.pitch_common
    )
    roll = rng.normal(0.0, 1.0, n) * np.where(
        challenging, params.roll_challenging, params.roll_common
    )
    return np.radians(yaw), np.radians(pitch), np.radians(roll)


def _deform_inner(
    inner: Float64, ident: Float64, mouth_open: Float64, rng: np.random.Generator
) -> None:
    """Identity and expression on points 17-67 (in place; row r is landmark r + 17)."""
    n = inner.shape[0]
    idx = np.arange(17, 68)
    x, y = inner[..., 0], inner[..., 1]
    x *= ident[:, 0:1]  # face width
    y[:, idx > 30] *= ident[:, 1:2]  # lower-face length (below the nose bridge)
    # eyes: size about each eye's centre, spacing, and how open the lids are
    for eye in (slice(36 - 17, 42 - 17), slice(42 - 17, 48 - 17)):
        centre = inner[:, eye, :2].mean(axis=1, keepdims=True)
        inner[:, eye, :2] = centre + (inner[:, eye, :2] - centre) * ident[:, 2:3, None]
    spacing = rng.normal(0.0, 2.0, (n, 1))  # mm added to each eye's distance from the midline
    inner[:, 36 - 17 : 42 - 17, 0] -= spacing
    inner[:, 42 - 17 : 48 - 17, 0] += spacing
    lids = np.where(rng.random(n) < 0.05, 0.15, rng.uniform(0.6, 1.2, n))
    y[:, np.subtract(_UPPER_LIDS, 17)] *= lids[:, None]
    y[:, np.subtract(_LOWER_LIDS, 17)] *= (0.5 + 0.5 * lids)[:, None]
    # brows: height above the eyes
    y[:, 0:10] += rng.normal(0.0, 2.5, (n, 1))
    # nose: width of the base
    x[:, 31 - 17 : 36 - 17] *= ident[:, 4:5]
    # mouth: width, lip thickness, smile, opening
    mouth = slice(48 - 17, 68 - 17)
    x[:, mouth] *= ident[:, 5:6]
    lip_mid = y[:, 62 - 17 : 63 - 17]
    y[:, mouth] = lip_mid + (y[:, mouth] - lip_mid) * ident[:, 6:7]
    smile = rng.uniform(-1.0, 3.0, (n, 1))
    corners = np.subtract(_CORNERS, 17)
    y[:, corners] -= smile
    x[:, corners] += np.sign(x[:, corners]) * 0.7 * smile
    y[:, np.subtract(_LOWER_LIP, 17)] += mouth_open[:, None]


def _jaw_and_outline(
    ident: Float64, mouth_open: Float64, yaw: Float64, rng: np.random.Generator
) -> tuple[Float64, Float64]:
    """(n, 17, 3) jaw and (n, 7, 3) forehead outline points, already turned by `yaw`.

    The head at height y is a horizontal ellipse with half-width a and depth b = 0.9 a whose
    front is at z = 5. Under yaw the visible contour is the ellipse point whose normal is
    perpendicular to the view: (a^2 n_x, b^2 n_z) / sqrt(a^2 n_x^2 + b^2 n_z^2) for the outward
    normal n = +-(cos yaw, sin yaw). Side 0 (the chin, the top of the forehead) is the
    section's front-centre point.
    """
    n = yaw.size
    alpha = np.linspace(-np.pi / 2, np.pi / 2, 17)
    squareness = rng.uniform(0.6, 1.0, (n, 1))
    sin_a = np.abs(np.sin(alpha))[None]
    half = 70.0 * ident[:, 0:1] * sin_a**squareness
    height = 8.0 + 112.0 * ident[:, 1:2] * np.cos(alpha)[None]
    height = height + 0.7 * mouth_open[:, None] * np.cos(alpha)[None] ** 2
    side = np.where(alpha < 0, -1.0, 1.0)[None].repeat(n, 0)
    side[:, 8] = 0.0
    jaw = _silhouette(half, height, side, yaw)

    levels = np.array([h for h, _ in _FOREHEAD] + [-72.0] + [h for h, _ in _FOREHEAD[::-1]])
    widths = np.array([w for _, w in _FOREHEAD] + [0.0] + [w for _, w in _FOREHEAD[::-1]])
    top_side = np.array([1.0, 1.0, 1.0, 0.0, -1.0, -1.0, -1.0])
    top = _silhouette(
        widths[None] * ident[:, 0:1], np.broadcast_to(levels, (n, 7)), top_side[None], yaw
    )
    return jaw, top


def _silhouette(half: Float64, height: Float64, side: NDArray[np.float64], yaw: Float64) -> Float64:
    """(n, P, 3) contour points of head sections (half-width `half`, (n, P)) after yaw."""
    depth = 0.9 * half
    z_centre = 5.0 - depth
    nx, nz = side * np.cos(yaw)[:, None], side * np.sin(yaw)[:, None]
    norm = np.sqrt((half * nx) ** 2 + (depth * nz) ** 2) + 1e-9
    x = half**2 * nx / norm
    z = z_centre + depth**2 * nz / norm
    z = np.where(side == 0, 5.0, z)  # the front-centre point of a section
    return _yaw(np.stack([x, height, z], axis=-1), yaw)


def _yaw(points: Float64, yaw: Float64) -> Float64:
    """Turn (n, P, 3) points about the vertical axis through the head centre by (n,) yaw."""
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x, y, z = points[..., 0], points[..., 1], points[..., 2] - _HEAD_CENTRE[2]
    return np.stack([x * c + z * s, y, -x * s + z * c + _HEAD_CENTRE[2]], axis=-1)


def _rotations(pitch: Float64, roll: Float64) -> Float64:
    """(n, 3, 3) roll (in the image plane) after pitch (nodding about the x axis)."""
    n = pitch.size
    cp, sp, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rx = np.zeros((n, 3, 3))
    rx[:, 0, 0] = 1.0
    rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = cp, -sp, sp, cp
    rz = np.zeros((n, 3, 3))
    rz[:, 2, 2] = 1.0
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1] = cr, -sr, sr, cr
    return rz @ rx


def _annotation_noise(
    params: FaceParams, rng: np.random.Generator, clean: Float64, challenging: NDArray[np.bool_]
) -> Float64:
    """(n, 68, 2) annotation offsets: along/across the contour on jaw and brows, else isotropic.

    The contour direction at a point is that of the chord between its neighbours.
    """
    n = clean.shape[0]
    along = np.zeros(68)
    across = np.zeros(68)
    along[0:17], across[0:17] = params.noise_jaw_along, params.noise_jaw_across
    along[17:27], across[17:27] = params.noise_brows_along, params.noise_brows_across
    along[27:36] = across[27:36] = params.noise_nose
    along[36:48] = across[36:48] = params.noise_eyes
    along[48:68] = across[48:68] = params.noise_mouth
    tangent = np.zeros_like(clean)
    for lo, hi in ((0, 17), (17, 22), (22, 27)):
        part = clean[:, lo:hi]
        chord = np.concatenate([part[:, 1:2], part[:, 2:], part[:, -1:]], 1) - np.concatenate(
            [part[:, :1], part[:, :-2], part[:, -2:-1]], 1
        )
        tangent[:, lo:hi] = chord
    tangent[:, 27:] = (1.0, 0.0)  # isotropic regions: any orthonormal frame will do
    tangent /= np.linalg.norm(tangent, axis=-1, keepdims=True) + 1e-12
    normal = np.stack([-tangent[..., 1], tangent[..., 0]], axis=-1)
    factor = np.where(challenging, params.challenging_noise_factor, 1.0)[:, None, None]
    draws = rng.standard_normal((n, 68, 2))
    offsets = draws[..., :1] * along[None, :, None] * tangent
    offsets += draws[..., 1:] * across[None, :, None] * normal
    return offsets * factor


def render_faces(params: FaceParams, rng: np.random.Generator, scenes: FaceScenes) -> FloatArray:
    """(n, 3, H, W) images in [0, 1] of the faces in `scenes` on cluttered backgrounds."""
    size = params.image_size
    n = scenes.clean.shape[0]
    scale = size[1] / REFERENCE
    images = _backgrounds(rng, n, size)
    points = _to_image(scenes.clean, size)
    outline = _to_image(scenes.outline, size)
    for i in range(n):
        mm = scenes.px_per_mm[i] * scale  # output pixels per millimetre
        _draw_face(images[i], rng, points[i], outline[i], mm, scenes.mouth_open[i])
        if scenes.challenging[i] and rng.random() < params.occlusion_probability:
            _draw_occluder(images[i], rng, points[i], mm)
    return _camera(params, rng, images, scenes.challenging, scale)


def _backgrounds(rng: np.random.Generator, n: int, size: tuple[int, int]) -> FloatArray:
    """(n, 3, H, W) clutter: a coloured texture with random rectangles, discs and strokes."""
    h, w = size
    base = rng.uniform(0.15, 0.85, (n, 3, 1, 1))
    # scenes vary mostly in brightness; colour varies less (a shared field plus a weaker tint)
    shared = imaging.fractal_field(rng, n, size, 0.15 * w, octaves=3)[:, None]
    tint = imaging.fractal_field(rng, 3 * n, size, 0.3 * w, octaves=2).reshape(n, 3, h, w)
    images: FloatArray = np.clip(base + 0.15 * shared + 0.04 * tint, 0.0, 1.0).astype(np.float32)
    for i in range(n):
        for _ in range(rng.integers(4, 10)):
            colour = rng.uniform(0.0, 1.0) * rng.uniform(0.6, 1.0, 3)
            kind = rng.integers(0, 3)
            centre = rng.uniform(-0.1, 1.1, 2) * (w, h)
            extent = rng.uniform(0.08, 0.4, 2) * w
            if kind == 0:
                angle = rng.uniform(0, np.pi)
                corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * extent / 2
                rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
                cover = imaging.polygon_coverage(corners @ rot.T + centre, size)
            elif kind == 1:
                cover = imaging.ellipse_coverage(centre, extent / 2, rng.uniform(0, np.pi), size)
            else:
                end = centre + rng.normal(0.0, 0.4 * w, 2)
                cover = imaging.polyline_coverage([centre, end], rng.uniform(0.01, 0.05) * w, size)
            imaging.paint(images[i], cover, colour, rng.uniform(0.5, 1.0))
    return images


def _skin(rng: np.random.Generator) -> Float64:
    """An RGB skin tone between light and dark complexions, slightly varied in hue."""
    tone = rng.uniform(0.0, 1.0)
    light, dark = np.array([0.93, 0.77, 0.66]), np.array([0.42, 0.28, 0.2])
    skin: Float64 = np.clip(light + tone * (dark - light) + rng.normal(0.0, 0.025, 3), 0.0, 1.0)
    return skin


def _draw_face(
    canvas: FloatArray,
    rng: np.random.Generator,
    pts: Float64,
    outline: Float64,
    mm: float,
    mouth_open: float,
) -> None:
    """Paint one face into `canvas` (3, H, W); pts (68, 2) and outline (24, 2) in its pixels."""
    size = canvas.shape[1:]
    skin = _skin(rng)
    hair = rng.uniform(0.05, 0.5) * np.array([1.0, 0.8, 0.6]) * rng.uniform(0.7, 1.3, 3)
    face_centre = outline.mean(axis=0)

    # hair behind the head, then the neck, then the face
    if rng.random() < 0.85:
        top = outline[17 + 3]
        axes = np.array([0.75, 0.62]) * np.ptp(outline, axis=0).max() * rng.uniform(0.9, 1.1)
        roll = np.arctan2(pts[16, 1] - pts[0, 1], pts[16, 0] - pts[0, 0])
        hair_centre = 0.6 * top + 0.4 * face_centre
        imaging.paint(canvas, imaging.ellipse_coverage(hair_centre, axes, -roll, size), hair)
    chin_dir = pts[8] - face_centre
    neck = np.array([pts[4], pts[12], pts[12] + 1.6 * chin_dir, pts[4] + 1.6 * chin_dir])
    imaging.paint(canvas, imaging.polygon_coverage(neck, size), skin * 0.7)

    face = imaging.polygon_coverage(outline, size)
    light = rng.normal(0.0, 1.0, 2)
    light /= np.linalg.norm(light) + 1e-9
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]]
    extent = np.ptp(outline, axis=0).max() / 2 + 1e-6
    ramp = ((xs - face_centre[0]) * light[0] + (ys - face_centre[1]) * light[1]) / extent
    # soft shading: a directional ramp, darker towards the silhouette (the surface turns away)
    rim = ndimage.gaussian_filter(face, 0.12 * extent)
    shade = (0.72 + 0.28 * rim) * (1.0 + 0.18 * rng.uniform(0.3, 1.0) * ramp)
    textured = skin[:, None, None] * shade[None]
    canvas += face[None] * (textured.astype(np.float32) - canvas)

    nose = np.array([pts[27], pts[31], pts[32], pts[33], pts[34], pts[35]])
    imaging.paint(canvas, imaging.polygon_coverage(nose, size), skin * 1.06, 0.6)
    imaging.paint(canvas, imaging.polyline_coverage(pts[27:31], 2.5 * mm, size), skin * 1.15, 0.4)
    # the side of the nose away from the light is in shadow
    shadow_side = pts[31] if light[0] > 0 else pts[35]
    flank = np.array([pts[28], 0.5 * (pts[29] + shadow_side), shadow_side])
    imaging.paint(canvas, imaging.polyline_coverage(flank, 3.0 * mm, size), skin * 0.7, 0.45)
    imaging.paint(canvas, imaging.polyline_coverage(pts[31:36], 1.2 * mm, size), skin * 0.6, 0.6)
    for a, b in ((31, 32), (35, 34)):
        nostril = 0.55 * pts[b] + 0.45 * pts[a] + np.array([0.0, -1.0 * mm])
        imaging.paint(
            canvas, imaging.ellipse_coverage(nostril, (2.6 * mm, 1.4 * mm), 0.0, size), skin * 0.3
        )

    iris = rng.choice([np.array([0.3, 0.18, 0.08]), np.array([0.25, 0.4, 0.55]), hair * 0.8])
    for eye in (pts[36:42], pts[42:48]):
        sclera = imaging.polygon_coverage(eye, size)
        imaging.paint(canvas, sclera, np.array([0.92, 0.9, 0.88]) * skin.max())
        centre = eye.mean(axis=0) + rng.normal(0.0, 1.0, 2) * mm
        radius = 5.0 * mm
        imaging.paint(
            canvas, imaging.ellipse_coverage(centre, (radius, radius), 0.0, size) * sclera, iris
        )
        pupil = imaging.ellipse_coverage(centre, (0.45 * radius, 0.45 * radius), 0.0, size)
        imaging.paint(canvas, pupil * sclera, 0.05)
        imaging.paint(canvas, imaging.polyline_coverage(eye[:4], 1.3 * mm, size), hair * 0.5, 0.9)
        imaging.paint(
            canvas, imaging.polyline_coverage(eye[[3, 4, 5, 0]], 0.6 * mm, size), skin * 0.6, 0.6
        )

    brow_width = np.array([3.0, 4.5, 4.5, 4.0, 3.5]) * mm
    imaging.paint(canvas, imaging.polyline_coverage(pts[17:22], brow_width, size), hair, 0.85)
    imaging.paint(canvas, imaging.polyline_coverage(pts[22:27], brow_width[::-1], size), hair, 0.85)

    lips = skin * np.array([0.85, 0.55, 0.55])
    imaging.paint(canvas, imaging.polygon_coverage(pts[48:60], size), lips, 0.9)
    if mouth_open > 2.0:
        cavity = imaging.polygon_coverage(pts[60:68], size)
        imaging.paint(canvas, cavity, np.array([0.15, 0.04, 0.05]))
        teeth = 0.7 * pts[60:65].mean(axis=0) + 0.3 * pts[[67, 66, 65]].mean(axis=0)
        axes = np.array(
            [0.8 * np.linalg.norm(pts[64] - pts[60]) / 2, min(2.5 * mm, mouth_open * mm / 3)]
        )
        imaging.paint(canvas, imaging.ellipse_coverage(teeth, axes, 0.0, size) * cavity, 0.9)
    else:
        line = pts[[60, 61, 62, 63, 64]]
        imaging.paint(canvas, imaging.polyline_coverage(line, 1.0 * mm, size), lips * 0.4, 0.8)
    imaging.paint(canvas, imaging.polyline_coverage(pts[0:17], 1.5 * mm, size), skin * 0.5, 0.35)


def _draw_occluder(canvas: FloatArray, rng: np.random.Generator, pts: Float64, mm: float) -> None:
    """An object over part of the face: a hand-like blob, a dark band (glasses) or hair."""
    size = canvas.shape[1:]
    kind = rng.integers(0, 3)
    target = pts[rng.integers(0, 68)]
    if kind == 0:
        axes = rng.uniform(18.0, 40.0, 2) * mm
        cover = imaging.ellipse_coverage(target, axes, rng.uniform(0, np.pi), size)
        imaging.paint(canvas, cover, _skin(rng) * rng.uniform(0.7, 1.0))
    elif kind == 1:
        eyes = pts[[36, 45]]
        band = imaging.polyline_coverage(eyes + rng.normal(0, 2 * mm, (2, 2)), 14.0 * mm, size)
        imaging.paint(canvas, band, rng.uniform(0.0, 0.25, 3), 0.95)
    else:
        strands = target + rng.normal(0.0, 25.0 * mm, (4, 2))
        colour = rng.uniform(0.05, 0.4) * np.array([1.0, 0.8, 0.6])
        imaging.paint(canvas, imaging.polyline_coverage(strands, 9.0 * mm, size), colour, 0.9)


def _camera(
    params: FaceParams,
    rng: np.random.Generator,
    images: FloatArray,
    challenging: NDArray[np.bool_],
    scale: float,
) -> FloatArray:
    """Exposure, colour cast, blur and sensor noise; low light and strong blur when challenging.

    A challenging face gets each of low light and blur with its probability, and at least one
    of the two, so every challenging face is degraded (occluders are drawn earlier).
    """
    n = images.shape[0]
    dark = challenging & (rng.random(n) < params.low_light_probability)
    blurred = challenging & (rng.random(n) < params.blur_probability)
    blurred |= challenging & ~dark & ~blurred & (rng.random(n) < 0.5)
    dark |= challenging & ~dark & ~blurred
    gain = np.where(dark, rng.uniform(0.25, 0.45, n), rng.uniform(0.75, 1.15, n))
    cast = 1.0 + rng.normal(0.0, 0.06, (n, 3))
    images = images * (gain[:, None] * cast)[:, :, None, None].astype(np.float32)
    sigma = np.where(blurred, rng.uniform(*params.blur_sigma, n), rng.uniform(0.0, 0.8, n))
    images = imaging.gaussian_blur(np.clip(images, 0.0, 1.0), sigma * scale)
    photons = np.where(dark, 60.0, 400.0) / scale**2
    return imaging.poisson_gaussian_noise(rng, images, photons, 0.01)
