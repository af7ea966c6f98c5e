"""Synthetic `endovis`: robotic needle drivers (and, in test frames, curved scissors) on tissue.

What makes the real task (EndoVis'15, Du et al.'s joints) hard, and how it is kept here:
- several instances of each landmark per frame (one to three needle drivers), so a detector
  must find every clasper tip, not the one best peak;
- the instrument geometry itself: every scene is a real annotated configuration (EndPoint,
  ShaftPoint, HeadPoint and both claspers of each tool), read through
  `bench.data.loaders.endovis15.read_annotations` from the packaged annotations, training
  geometry for "train" / "val" (split as the real loader splits), test geometry for "test";
- the jaws of a closed needle driver are a few pixels apart (median 11 px in 720 x 576), so the
  left and right clasper heatmaps overlap and need a narrow target to separate;
- an unseen distractor: curved scissors (the real tool4 geometry of test5 and test6) appear only
  in test frames; they have metallic jaws ending in two "clasper" points too, and must not fire;
- tissue-like texture, wet specular highlights, uneven endoscope illumination, defocus blur
  and sensor noise around thin metallic parts.

Scenes are laid out in the 720 x 576 reference frame and drawn straight into the profile's
resolution (docs/design.md's pixel-centre mapping); landmark points are in pixels of the stored
images. Landmarks: K = 2 ("left_clasper", "right_clasper") of the needle drivers only, points
(N, 2, M, 2) with M = 3 and NaN for absent instances. Test subsets "no-scissors" and
"with-scissors" (the paper's test1-4 and test5-6), "full" = all.

Every frame is a pure function of (params, seed, split, index): it draws from its own
`numpy.random.default_rng((seed, split, index))`, so the same seed gives the same bytes and a
change of one split's size leaves the other splits' frames as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from adaloss.targets import rescale_points
from bench.data.dataset import LandmarkDataset, Split
from bench.data.loaders import endovis15 as real
from bench.data.synthetic import imaging

GENERATOR_VERSION = 1
MAX_INSTANCES = 3
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_END, _SHAFT, _HEAD, _LEFT, _RIGHT = range(len(real.JOINTS))
_PLACEMENT_TRIES = 12

Points = NDArray[np.float64]


@dataclass(frozen=True)
class EndoVisParams:
    """Every parameter of the generator. Lengths are pixels of the 720 x 576 reference frame.

    image_size: (H, W) of the stored frames; the reference aspect 4:5 keeps pixels square.
    n_train, n_val, n_test: frames per split. The paper profile matches the real set: 940
        annotated training frames (846 train + 94 val, as the real loader holds out the last
        tenth of each video) and 910 test frames.
    scissors_fraction: share of test frames drawn from scissors scenes; 602 / 910 in the real
        test set (test5 and test6 against test1-4), so the subsets keep the paper's proportions.
    extra_tool_probability: chance of adding one more needle driver, taken from another real
        frame of the same split, to a scene with fewer than three instruments. The real frames
        hold one or two needle drivers; the extra one makes three-instance frames, so that the
        detector cannot assume a fixed count.
    flip_probability: chance of mirroring a scene left-right. Tools enter from both sides in the
        real videos (tool1 from the right, tool2 from the left); a mirrored tool's jaws swap
        handedness, so LeftClasperPoint and RightClasperPoint are swapped with it (the real
        annotations keep one handedness: (head - shaft) x (left - right) < 0 for every tool).
    max_shift: largest shift of a scene, as a fraction of the frame side (the camera moves a few
        centimetres between takes); scale_range: zoom (camera distance); max_rotation_deg:
        roll of the endoscope about its axis. Placements whose clasper tips or heads would
        leave the frame are redrawn, because the real joints were all annotated in view.
    min_tool_separation: smallest distance between the jaw centres of the extra needle driver
        and any other tool; tools in the real frames work apart, never on top of each other.
    shaft_width: shaft diameter in units of the tool's own head-to-shaft length (clipped to
        40-100 px). The wrist of a da Vinci 8 mm instrument is about as long as the shaft is
        thick, and the annotated head-to-shaft length (median 69 px) scales with the tool's
        distance to the camera, so the drawn widths follow each tool's perspective.
    scissors_curvature: sideways bow of a scissors blade, as a fraction of its length; the
        curved scissors' blades bend by roughly a fifth of their length.
    tissue_correlation: size of the tissue's colour patches (fat, muscle, blood), in px.
    vessel_probability: share of frames with visible surface vessels.
    highlights: (min, max) number of specular spots on the wet tissue per frame;
        highlight_size: (min, max) semi-axis of a spot in px. The endoscope's light is next to
        the lens, so wet surfaces facing it saturate in small elongated spots.
    vignetting: brightness lost at the frame corner relative to the illuminated centre.
    gain_range: overall exposure (auto-exposure of the video camera).
    blur_range: (min, max) defocus blur sigma in px (the depth of field is shallow; tools
        close to the lens are often out of focus).
    photons, read_noise: Poisson-Gaussian sensor noise at full scale; consumer-grade analogue
        video of 2015 is visibly noisy in the dark parts of a frame.
    """

    image_size: tuple[int, int]
    n_train: int
    n_val: int
    n_test: int
    scissors_fraction: float = 602 / 910
    extra_tool_probability: float = 0.3
    flip_probability: float = 0.5
    max_shift: float = 0.08
    scale_range: tuple[float, float] = (0.85, 1.15)
    max_rotation_deg: float = 15.0
    min_tool_separation: float = 140.0
    shaft_width: float = 0.8
    scissors_curvature: float = 0.18
    tissue_correlation: float = 70.0
    vessel_probability: float = 0.6
    highlights: tuple[int, int] = (4, 14)
    highlight_size: tuple[float, float] = (3.0, 14.0)
    vignetting: float = 0.55
    gain_range: tuple[float, float] = (0.8, 1.1)
    blur_range: tuple[float, float] = (0.4, 2.0)
    photons: float = 400.0
    read_noise: float = 0.01


PROFILES: dict[str, EndoVisParams] = {
    "smoke": EndoVisParams(image_size=(32, 40), n_train=16, n_val=8, n_test=16),
    # 1280 training frames: with 320 the reference sigma is data-starved (docs/data.md, "Regime
    # criteria": tools/regime.py endovis)
    "quick": EndoVisParams(image_size=(64, 80), n_train=1280, n_val=40, n_test=200),
    "paper": EndoVisParams(image_size=(288, 360), n_train=846, n_val=94, n_test=910),
}


@dataclass(frozen=True)
class Tool:
    """One instrument of a scene: (5, 2) joints in real.JOINTS order, reference-frame pixels."""

    joints: Points
    scissors: bool


@dataclass(frozen=True)
class _Pools:
    """Real scenes (the complete tools of one annotated frame) per split."""

    train: list[list[Tool]]
    val: list[list[Tool]]
    test_plain: list[list[Tool]]
    test_scissors: list[list[Tool]]


def generate(params: EndoVisParams, seed: int) -> LandmarkDataset:
    """The synthetic endovis dataset: splits "train", "val", "test"; see the module docstring."""
    pools = _real_scenes()
    n_with = round(params.n_test * params.scissors_fraction)
    sources = {
        "train": [pools.train] * params.n_train,
        "val": [pools.val] * params.n_val,
        "test": [pools.test_scissors] * n_with + [pools.test_plain] * (params.n_test - n_with),
    }
    splits = {
        name: _render_split(params, seed, name, pool_per_frame)
        for name, pool_per_frame in sources.items()
    }
    return LandmarkDataset.with_layout("endovis", "synthetic", real.LAYOUT, splits)


def _real_scenes() -> _Pools:
    """Scenes from the packaged annotations; frames with an incomplete tool are skipped
    (19 of the 1850: a tool needs all five joints to be drawn)."""
    train, val = real.hold_out_validation(real.read_videos(real.PACKAGED_ROOT, "train"))
    test = [f for video in real.read_videos(real.PACKAGED_ROOT, "test") for f in video]
    scenes = {
        "train": _complete_scenes(train),
        "val": _complete_scenes(val),
        "test": _complete_scenes(test),
    }
    return _Pools(
        train=scenes["train"],
        val=scenes["val"],
        test_plain=[s for s in scenes["test"] if not any(t.scissors for t in s)],
        test_scissors=[s for s in scenes["test"] if any(t.scissors for t in s)],
    )


def _complete_scenes(frames: list[real.Frame]) -> list[list[Tool]]:
    scenes = []
    for frame in frames:
        tools = [
            Tool(joints=joints, scissors=tool in real.SCISSORS)
            for tool, joints in frame.tools.items()
        ]
        if tools and all(not np.isnan(t.joints).any() for t in tools):
            scenes.append(tools)
    return scenes


def _render_split(
    params: EndoVisParams, seed: int, name: str, pool_per_frame: list[list[list[Tool]]]
) -> Split:
    """Frame i drawn from scene pool_per_frame[i] with its own random stream, straight into
    the split's preallocated (N, 3, H, W) array."""
    count = len(pool_per_frame)
    images = np.empty((count, 3, *params.image_size), dtype=np.float32)
    points = np.empty((count, len(real.LANDMARK_NAMES), MAX_INSTANCES, 2), dtype=np.float32)
    scissors = torch.zeros(count, dtype=torch.bool)
    for index, pool in enumerate(pool_per_frame):
        rng = np.random.default_rng((seed, SPLIT_IDS[name], index))
        tools = _scene(params, rng, pool)
        images[index] = _render(params, rng, tools)
        points[index] = _claspers(tools, params.image_size)
        scissors[index] = any(tool.scissors for tool in tools)
    return Split(
        images=torch.from_numpy(images),
        points=torch.from_numpy(points),
        subsets={
            "no-scissors": torch.nonzero(~scissors).flatten(),
            "with-scissors": torch.nonzero(scissors).flatten(),
        },
    )


def _render(
    params: EndoVisParams, rng: np.random.Generator, tools: list[Tool]
) -> NDArray[np.float32]:
    """(3, H, W) frame: tissue, the tools in order, light, defocus, sensor noise."""
    size = params.image_size
    image = _tissue(params, rng, size)
    for tool in tools:
        _draw_tool(params, image, tool, size)
    image = _illuminate(params, rng, image)
    blur = rng.uniform(*params.blur_range) * size[1] / real.REFERENCE_SIZE[1]
    image = imaging.gaussian_blur(image[None], blur)
    return imaging.poisson_gaussian_noise(rng, image, params.photons, params.read_noise)[0]


def _claspers(tools: list[Tool], size: tuple[int, int]) -> Points:
    """(2, MAX_INSTANCES, 2) clasper points of the needle drivers in pixels of a `size` image;
    NaN for absent instances. Scissors are distractors, never targets."""
    claspers = np.full((2, MAX_INSTANCES, 2), np.nan)
    drivers = [tool.joints for tool in tools if not tool.scissors]
    for instance, joints in enumerate(drivers):
        claspers[:, instance] = joints[[_LEFT, _RIGHT]]
    return _to_image(claspers, size)


def _to_image(points: Points, size: tuple[int, int]) -> Points:
    """Reference-frame points -> pixels of a `size` image (docs/design.md's mapping)."""
    mapped = rescale_points(torch.from_numpy(points), real.REFERENCE_SIZE, size)
    return mapped.numpy()


# --- scene layout -------------------------------------------------------------------------


def _scene(params: EndoVisParams, rng: np.random.Generator, pool: list[list[Tool]]) -> list[Tool]:
    """A real scene under one random placement, possibly with an extra needle driver,
    in drawing order (later tools occlude earlier ones)."""
    base = pool[rng.integers(len(pool))]
    tools = _place(params, rng, base, others=[])
    if len(tools) < MAX_INSTANCES and rng.random() < params.extra_tool_probability:
        donors = [t for t in pool[rng.integers(len(pool))] if not t.scissors]
        if donors:
            donor = donors[rng.integers(len(donors))]
            tools += _place(params, rng, [donor], others=tools)
    return [tools[i] for i in rng.permutation(len(tools))]


def _place(
    params: EndoVisParams, rng: np.random.Generator, tools: list[Tool], others: list[Tool]
) -> list[Tool]:
    """`tools` moved together by a random flip/zoom/roll/shift that keeps their heads and jaw
    tips in view and away from `others`. When no draw fits, a scene keeps its real placement
    (annotated in view) and an extra tool is left out."""
    for _ in range(_PLACEMENT_TRIES):
        pose = _draw_pose(params, rng)
        placed = [Tool(_transform(t.joints, *pose), t.scissors) for t in tools]
        if all(_in_view(t.joints) for t in placed) and _apart(placed, others, params):
            return placed
    return [] if others else list(tools)


def _draw_pose(
    params: EndoVisParams, rng: np.random.Generator
) -> tuple[bool, float, float, NDArray[np.float64]]:
    flip = bool(rng.random() < params.flip_probability)
    scale = float(rng.uniform(*params.scale_range))
    angle = float(np.deg2rad(rng.uniform(-params.max_rotation_deg, params.max_rotation_deg)))
    height, width = real.REFERENCE_SIZE
    shift = rng.uniform(-params.max_shift, params.max_shift, size=2) * np.array([width, height])
    return flip, scale, angle, shift


def _transform(
    joints: Points,
    flip: bool,
    scale: float,
    angle: float,
    shift: NDArray[np.float64],
) -> Points:
    """(5, 2) joints mirrored (handedness swapped), zoomed and rolled about the frame centre,
    then shifted."""
    height, width = real.REFERENCE_SIZE
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    out = joints.copy()
    if flip:
        out[:, 0] = (width - 1) - out[:, 0]
        out[[_LEFT, _RIGHT]] = out[[_RIGHT, _LEFT]]
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    return (out - centre) @ rotation.T * scale + centre + shift


def _in_view(joints: Points) -> bool:
    height, width = real.REFERENCE_SIZE
    margin = 0.03 * width
    key = joints[[_HEAD, _LEFT, _RIGHT]]
    return bool(
        np.all(key[:, 0] >= margin)
        and np.all(key[:, 0] <= width - 1 - margin)
        and np.all(key[:, 1] >= margin)
        and np.all(key[:, 1] <= height - 1 - margin)
    )


def _apart(placed: list[Tool], others: list[Tool], params: EndoVisParams) -> bool:
    def jaw_centre(tool: Tool) -> Points:
        return tool.joints[[_HEAD, _LEFT, _RIGHT]].mean(axis=0)

    return all(
        np.hypot(*(jaw_centre(a) - jaw_centre(b))) >= params.min_tool_separation
        for a in placed
        for b in others
    )


# --- image formation ----------------------------------------------------------------------

# Colours (RGB in [0, 1]) of the two tissue extremes (blood-rich muscle, pale fat and fascia),
# of surface vessels, of the black composite shaft of da Vinci instruments and of their steel
# wrist and jaws.
_TISSUE_DEEP = np.array([0.55, 0.12, 0.10], dtype=np.float32)
_TISSUE_PALE = np.array([0.92, 0.60, 0.52], dtype=np.float32)
_FAT = np.array([0.93, 0.78, 0.52], dtype=np.float32)
_VESSEL = np.array([0.40, 0.04, 0.05], dtype=np.float32)
_SHAFT_BLACK = np.array([0.10, 0.08, 0.08], dtype=np.float32)
_STEEL_DARK = np.array([0.40, 0.40, 0.42], dtype=np.float32)
_STEEL = np.array([0.74, 0.74, 0.76], dtype=np.float32)
_SHINE = np.array([0.97, 0.97, 0.97], dtype=np.float32)


def _tissue(
    params: EndoVisParams, rng: np.random.Generator, size: tuple[int, int]
) -> NDArray[np.float32]:
    """(3, H, W) wet tissue: colour patches, fine texture, vessels, specular spots."""
    px = size[1] / real.REFERENCE_SIZE[1]  # output pixels per reference pixel
    patches = imaging.smooth_field(rng, 1, size, params.tissue_correlation * px)[0]
    mix = (1.0 / (1.0 + np.exp(-1.6 * patches)))[None]
    image = _TISSUE_DEEP[:, None, None] + (_TISSUE_PALE - _TISSUE_DEEP)[:, None, None] * mix
    fat = imaging.smooth_field(rng, 1, size, params.tissue_correlation * px)[0]
    imaging.paint(image, (1.0 / (1.0 + np.exp(-3.0 * (fat - 1.2)))).astype(np.float32), _FAT)
    texture = imaging.fractal_field(rng, 1, size, 14.0 * px, octaves=3)[0]
    image = (image * (1.0 + 0.10 * texture)[None]).astype(np.float32)
    if rng.random() < params.vessel_probability:
        # the zero set of a smooth field is a network of winding lines, like surface vessels
        field = imaging.smooth_field(rng, 1, size, 80.0 * px)[0]
        imaging.paint(image, np.exp(-((field / 0.06) ** 2)).astype(np.float32), _VESSEL, 0.4)
    for _ in range(rng.integers(params.highlights[0], params.highlights[1] + 1)):
        centre = rng.uniform([0.0, 0.0], [size[1] - 1, size[0] - 1])
        major = rng.uniform(*params.highlight_size) * px
        axes = (major, major * rng.uniform(0.3, 0.8))
        spot = imaging.ellipse_coverage(centre, axes, rng.uniform(0.0, np.pi), size)
        imaging.paint(image, spot, _SHINE, float(rng.uniform(0.6, 1.0)))
    return image


def _draw_tool(
    params: EndoVisParams, image: NDArray[np.float32], tool: Tool, size: tuple[int, int]
) -> None:
    """Draw one instrument into `image` (3, H, W) in place: the black shaft from beyond the
    frame border through EndPoint to ShaftPoint, the steel wrist to HeadPoint, the clevis, and
    two jaws from the head to the clasper points (straight for needle drivers, bowed to one side
    for curved scissors). Each part carries a specular stripe along its length."""
    px = size[1] / real.REFERENCE_SIZE[1]
    ref = tool.joints
    unit = float(np.clip(np.hypot(*(ref[_HEAD] - ref[_SHAFT])), 40.0, 100.0))
    width = params.shaft_width * unit * px
    end, shaft, head, left, right = _to_image(ref, size)
    along = _unit(end - shaft)
    normal = np.array([-along[1], along[0]])
    far = end + along * 2.0 * max(size)  # the shaft continues out of the frame
    _stroke(image, [far, end, shaft], [1.1 * width, width, 0.95 * width], _SHAFT_BLACK)
    shaft_shine = [far + 0.25 * width * normal, shaft + 0.25 * width * normal]
    _stroke(image, shaft_shine, 0.1 * width, _SHINE, 0.35)
    _stroke(image, [shaft, head], 0.7 * width, _STEEL_DARK)
    wrist_shine = [shaft - 0.15 * width * normal, head - 0.15 * width * normal]
    _stroke(image, wrist_shine, 0.12 * width, _SHINE, 0.5)
    wrist_angle = float(np.arctan2(-along[1], along[0]))  # counter-clockwise on screen
    clevis = imaging.ellipse_coverage(head, (0.42 * width, 0.32 * width), wrist_angle, size)
    imaging.paint(image, clevis, _STEEL_DARK)
    bow = params.scissors_curvature if tool.scissors else 0.0
    side = np.sign(np.dot(_unit(left - head)[::-1] * [-1.0, 1.0], right - left)) or 1.0
    jaw_width = (0.24 if tool.scissors else 0.36) * width
    tip_width = 0.4 * jaw_width
    for tip in (left, right):
        jaw = _bowed(head, tip, side * bow)
        # pull the last vertex in by the round cap's radius, so the jaw's outline (not the
        # centre of its cap) ends at the clasper point, where the annotators clicked
        jaw[-1] -= _unit(jaw[-1] - jaw[-2]) * tip_width / 2.0
        _stroke(image, jaw, np.linspace(jaw_width, tip_width, len(jaw)), _STEEL)
        _stroke(image, jaw, np.linspace(0.3 * jaw_width, 0.1 * jaw_width, len(jaw)), _SHINE, 0.5)


def _stroke(
    image: NDArray[np.float32],
    points: ArrayLike,
    width: ArrayLike,
    colour: NDArray[np.float32],
    opacity: float = 1.0,
) -> None:
    coverage = imaging.polyline_coverage(np.asarray(points), width, image.shape[1:])
    imaging.paint(image, coverage, colour, opacity)


def _bowed(start: Points, end: Points, bow: float, samples: int = 8) -> Points:
    """(samples, 2) quadratic Bezier from start to end whose middle is pushed sideways by
    `bow` times the chord length (0: the straight segment)."""
    chord = end - start
    control = (start + end) / 2.0 + bow * 2.0 * np.array([-chord[1], chord[0]])
    t = np.linspace(0.0, 1.0, samples)[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end


def _unit(vector: Points) -> Points:
    return vector / max(float(np.hypot(*vector)), 1e-9)


def _illuminate(
    params: EndoVisParams, rng: np.random.Generator, image: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Endoscope light: a bright spot near the centre falling off towards the corners, times the
    camera's exposure."""
    height, width = image.shape[1:]
    centre = np.array([width - 1, height - 1]) / 2.0 * (1.0 + rng.uniform(-0.3, 0.3, size=2))
    ys, xs = np.mgrid[0:height, 0:width]
    reach2 = (width / 2.0) ** 2 + (height / 2.0) ** 2
    radius2 = ((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / reach2
    light = rng.uniform(*params.gain_range) * (1.0 - params.vignetting * np.clip(radius2, 0, 1))
    return np.clip(image * light[None], 0.0, 1.0).astype(np.float32)
