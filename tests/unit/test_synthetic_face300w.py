"""Synthetic 300-W: iBUG layout, region-dependent annotation noise, common/challenging subsets."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.data.dataset import LandmarkDataset
from bench.data.synthetic import face300w
from bench.tasks import fixed_layout

SMOKE = face300w.PROFILES["smoke"]
REGIONS = {
    "jaw": range(0, 17),
    "brows": range(17, 27),
    "nose": range(27, 36),
    "eyes": range(36, 48),
    "mouth": range(48, 68),
}


@pytest.fixture(scope="module")
def smoke() -> LandmarkDataset:
    return face300w.generate(SMOKE, seed=0)


@pytest.fixture(scope="module")
def many_common() -> face300w.FaceScenes:
    """Geometry only (no rendering) of 3000 common faces."""
    return face300w.sample_faces(SMOKE, np.random.default_rng(1), np.zeros(3000, bool))


def test_layout_shapes_and_groups(smoke: LandmarkDataset) -> None:
    spec = fixed_layout("face300w")
    assert smoke.landmark_names == spec.landmark_names and len(spec.landmark_names) == 68
    assert {k: tuple(v) for k, v in REGIONS.items()} == dict(smoke.landmark_groups)
    counts = {"train": 24, "val": 8, "test": 16}
    for name, count in counts.items():
        split = smoke.split(name)
        assert split.images.shape == (count, 3, 32, 32)
        assert split.points.shape == (count, 68, 2) and split.points.dtype == torch.float32
        assert not torch.isnan(split.points).any()  # 300-W annotates all 68 points
        assert split.images.min() >= 0.0 and split.images.max() <= 1.0
        # faces fill about 0.6-0.72 of the frame: every point stays inside it
        assert (split.points > -0.5).all() and (split.points < 31.5).all()


def test_test_subsets_common_and_challenging(smoke: LandmarkDataset) -> None:
    test = smoke.split("test")
    common, hard = test.subset_indices("common"), test.subset_indices("challenging")
    assert (len(common), len(hard)) == (12, 4)
    assert torch.equal(torch.cat([common, hard]).sort().values, torch.arange(16))
    # the paper's proportions in the quick and paper profiles: 554 : 135 of 689
    for profile in ("quick", "paper"):
        params = face300w.PROFILES[profile]
        share = params.n_challenging / (params.n_common + params.n_challenging)
        assert share == pytest.approx(135 / 689, abs=0.01)
    paper = face300w.PROFILES["paper"]
    assert (paper.n_train, paper.n_common, paper.n_challenging) == (3148, 554, 135)


def region_rms(scenes: face300w.FaceScenes) -> dict[str, float]:
    """Root-mean-square label-minus-clean offset per region (reference pixels)."""
    offsets = scenes.labels - scenes.clean
    return {
        name: float(np.sqrt((offsets[:, list(members)] ** 2).sum(-1).mean()))
        for name, members in REGIONS.items()
    }


def test_annotation_noise_is_ordered_by_region(many_common: face300w.FaceScenes) -> None:
    rms = region_rms(many_common)
    assert rms["jaw"] > rms["brows"] > rms["mouth"] > max(rms["nose"], rms["eyes"])
    # closed form: a point with per-axis stds (a, b) has rms radial offset sqrt(a^2 + b^2)
    p = SMOKE
    expected = {
        "jaw": np.hypot(p.noise_jaw_along, p.noise_jaw_across),
        "brows": np.hypot(p.noise_brows_along, p.noise_brows_across),
        "mouth": np.sqrt(2) * p.noise_mouth,
        "nose": np.sqrt(2) * p.noise_nose,
        "eyes": np.sqrt(2) * p.noise_eyes,
    }
    for name, value in expected.items():
        assert rms[name] == pytest.approx(value, rel=0.05), name


def test_jaw_noise_runs_along_the_contour(many_common: face300w.FaceScenes) -> None:
    # independent tangent: the chord from jaw point 7 to 9 is the contour's direction at 8
    clean, labels = many_common.clean, many_common.labels
    chord = clean[:, 9] - clean[:, 7]
    tangent = chord / np.linalg.norm(chord, axis=1, keepdims=True)
    offset = labels[:, 8] - clean[:, 8]
    along = (offset * tangent).sum(1)
    across = offset[:, 0] * -tangent[:, 1] + offset[:, 1] * tangent[:, 0]
    assert along.std() == pytest.approx(SMOKE.noise_jaw_along, rel=0.07)
    assert across.std() == pytest.approx(SMOKE.noise_jaw_across, rel=0.07)


def test_challenging_faces_are_noisier_and_more_turned() -> None:
    rng = np.random.default_rng(2)
    common = face300w.sample_faces(SMOKE, rng, np.zeros(2000, bool))
    hard = face300w.sample_faces(SMOKE, rng, np.ones(2000, bool))
    ratio = region_rms(hard)["eyes"] / region_rms(common)["eyes"]
    assert ratio == pytest.approx(SMOKE.challenging_noise_factor, rel=0.06)
    # yaw uniform in +-55 degrees has std 55 / sqrt(3); common faces are near-frontal
    assert np.degrees(hard.yaw).std() == pytest.approx(55 / np.sqrt(3), rel=0.06)
    assert np.degrees(common.yaw).std() < 16


def test_points_follow_the_ibug_order(many_common: face300w.FaceScenes) -> None:
    """Anatomical facts of the iBUG layout on near-frontal faces (image y grows downwards)."""
    p = many_common.clean
    y = p[..., 1].mean(axis=0)
    assert y[19] < y[37] < y[30] < y[33] < y[51] < y[57] < y[8]  # brow, eye, nose, lips, chin
    x = p[..., 0]
    frac = lambda cond: float(np.mean(cond))  # noqa: E731
    assert frac(x[:, 0] < x[:, 16]) > 0.99  # jaw runs from the image's left to its right
    assert frac((x[:, 36] < x[:, 39]) & (x[:, 39] < x[:, 42]) & (x[:, 42] < x[:, 45])) > 0.99
    assert frac((x[:, 17] < x[:, 21]) & (x[:, 22] < x[:, 26])) > 0.99
    assert frac((x[:, 48] < x[:, 51]) & (x[:, 51] < x[:, 54])) > 0.99
    assert frac(x[:, 31] < x[:, 35]) > 0.99
    # lids: upper above lower on an open eye, on both eyes
    assert frac(p[:, 37, 1] < p[:, 41, 1]) > 0.9 and frac(p[:, 44, 1] < p[:, 46, 1]) > 0.9


def test_open_mouths_part_the_inner_lips(many_common: face300w.FaceScenes) -> None:
    gap = (many_common.clean[:, 66, 1] - many_common.clean[:, 62, 1]) / many_common.px_per_mm
    opened = many_common.mouth_open > 0
    assert 0.25 < opened.mean() < 0.45  # mouth_open_probability 0.35
    # an open mouth adds its opening (mm) to the inner-lip gap; a closed one stays about 3 mm
    assert np.median(gap[opened] - many_common.mouth_open[opened]) == pytest.approx(
        np.median(gap[~opened]), abs=1.0
    )
    assert np.median(gap[~opened]) < 5


def test_jaw_follows_the_silhouette_under_yaw() -> None:
    """Turned faces: both jaw ends stay outside the eyes, as the visible contour does."""
    params = replace(SMOKE, yaw_challenging=50.0)
    scenes = face300w.sample_faces(params, np.random.default_rng(4), np.ones(500, bool))
    p = scenes.clean
    # unroll the in-plane roll with the eye line, then compare x along it
    eye_axis = p[:, 45] - p[:, 36]
    eye_axis /= np.linalg.norm(eye_axis, axis=1, keepdims=True)
    along = lambda k: (p[:, k] * eye_axis).sum(1)  # noqa: E731
    assert np.mean(along(0) < along(36)) > 0.97
    assert np.mean(along(16) > along(45)) > 0.97


def test_every_challenging_face_is_darker_or_blurrier() -> None:
    """The camera stage on identical fine-grained inputs: common against challenging faces."""
    params = replace(SMOKE, image_size=(64, 64))
    rng = np.random.default_rng(6)
    inputs = rng.uniform(0.3, 0.7, (120, 3, 64, 64)).astype(np.float32)
    hard = np.r_[np.zeros(60, bool), np.ones(60, bool)]
    out = face300w._camera(params, rng, inputs, hard, scale=64 / 256)
    brightness = out.mean(axis=(1, 2, 3)) / inputs.mean(axis=(1, 2, 3))
    detail = np.abs(np.diff(out, axis=-1)).mean(axis=(1, 2, 3)) / np.abs(
        np.diff(inputs, axis=-1)
    ).mean(axis=(1, 2, 3))
    darker = brightness[60:] < brightness[:60].min()
    blurrier = detail[60:] < detail[:60].min()
    assert (darker | blurrier).all()
    assert darker.any() and blurrier.any()


def test_same_faces_at_every_profile_size(smoke: LandmarkDataset) -> None:
    larger = face300w.generate(replace(SMOKE, image_size=(64, 64)), seed=0)
    for name in ("train", "test"):
        small = smoke.split(name).points.double()
        large = larger.split(name).points.double()
        # docs/design.md's mapping between resolutions: u = (x + 0.5) * 32 / 64 - 0.5
        torch.testing.assert_close(small, (large + 0.5) * 32 / 64 - 0.5)
