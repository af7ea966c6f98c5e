"""Synthetic endovis generator: layout, determinism, real geometry, scissors, instances."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace

import numpy as np
import pytest

from adaloss.targets import rescale_points
from bench.data.dataset import LandmarkDataset
from bench.data.loaders import endovis15
from bench.data.synthetic import endovis

SMOKE = endovis.PROFILES["smoke"]


@pytest.fixture(scope="module")
def smoke() -> LandmarkDataset:
    return endovis.generate(SMOKE, seed=0)


def raw_claspers(split: str) -> np.ndarray:
    """(P, 2, 2) left/right clasper pairs of every needle driver in the raw JSON files of
    `split`, in pixel centres (file coordinates - 0.5), read without the package's reader."""
    pairs = []
    for path in sorted((endovis15.PACKAGED_ROOT / f"{split}_labels").glob("*.json.gz")):
        for entry in json.loads(gzip.decompress(path.read_bytes())):
            joints: dict[tuple[str, str], tuple[float, float]] = {}
            for p in entry["annotations"]:
                joints.setdefault((p.get("id"), p["class"]), (p["x"] - 0.5, p["y"] - 0.5))
            for tool in ("tool1", "tool2"):
                left, right = (
                    joints.get((tool, "LeftClasperPoint")),
                    joints.get((tool, "RightClasperPoint")),
                )
                if left and right:
                    pairs.append([left, right])
    return np.array(pairs)


def test_profiles_and_split_shapes(smoke: LandmarkDataset) -> None:
    assert set(endovis.PROFILES) == {"smoke", "quick", "paper"}
    assert endovis.PROFILES["paper"].image_size == (288, 360)
    assert (endovis.PROFILES["paper"].n_train + endovis.PROFILES["paper"].n_val) == 940
    assert endovis.PROFILES["paper"].n_test == 910
    assert smoke.landmark_names == ("left_clasper", "right_clasper")
    assert smoke.reference_size == (576, 720)
    for name, count in (("train", SMOKE.n_train), ("val", SMOKE.n_val), ("test", SMOKE.n_test)):
        split = smoke.split(name)
        assert split.images.shape == (count, 3, 32, 40)
        assert split.points.shape == (count, 2, 3, 2)
        assert float(split.images.min()) >= 0.0 and float(split.images.max()) <= 1.0


def test_same_seed_same_arrays_other_seed_other_images(smoke: LandmarkDataset) -> None:
    again = endovis.generate(SMOKE, seed=0)
    other = endovis.generate(SMOKE, seed=1)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(smoke.split(name).images, again.split(name).images)
        np.testing.assert_array_equal(smoke.split(name).points, again.split(name).points)
        assert not np.array_equal(smoke.split(name).images, other.split(name).images)


def test_a_split_does_not_depend_on_the_other_splits_sizes(smoke: LandmarkDataset) -> None:
    bigger_test = endovis.generate(replace(SMOKE, n_test=SMOKE.n_test + 5), seed=0)
    np.testing.assert_array_equal(smoke.split("train").images, bigger_test.split("train").images)


def test_scissors_only_in_test_frames_in_the_real_proportion(smoke: LandmarkDataset) -> None:
    for name in ("train", "val"):
        assert len(smoke.split(name).subset_indices("with-scissors")) == 0
    test = smoke.split("test")
    with_scissors = test.subset_indices("with-scissors").tolist()
    no_scissors = test.subset_indices("no-scissors").tolist()
    assert sorted(with_scissors + no_scissors) == list(range(SMOKE.n_test))
    assert len(with_scissors) == round(SMOKE.n_test * 602 / 910) == 11


def test_one_to_three_needle_drivers_per_frame_all_in_view(smoke: LandmarkDataset) -> None:
    for name in ("train", "val", "test"):
        points = smoke.split(name).points.numpy()
        present = ~np.isnan(points[..., 0])  # (N, 2, M)
        # both claspers of a needle driver are present together
        np.testing.assert_array_equal(present[:, 0], present[:, 1])
        counts = present[:, 0].sum(axis=1)
        assert counts.min() >= 1 and counts.max() <= 3
        xy = points[present]
        assert (xy >= -0.5).all() and (xy[:, 0] <= 40 - 0.5).all() and (xy[:, 1] <= 32 - 0.5).all()


def test_extra_needle_drivers_make_three_instance_frames() -> None:
    params = replace(SMOKE, n_train=24, n_val=0, n_test=0, extra_tool_probability=1.0)
    points = endovis.generate(params, 3).split("train").points.numpy()
    counts = (~np.isnan(points[:, 0, :, 0])).sum(axis=1)
    assert int(counts.max()) == 3  # real frames hold at most two
    assert int(counts.min()) >= 1


@pytest.mark.parametrize(("split", "real_split"), [("train", "train"), ("test", "test")])
def test_unperturbed_claspers_are_real_annotated_configurations(
    split: str, real_split: str
) -> None:
    still = replace(
        SMOKE,
        image_size=(72, 90),
        n_train=6,
        n_val=0,
        n_test=6,
        extra_tool_probability=0.0,
        flip_probability=0.0,
        max_shift=0.0,
        scale_range=(1.0, 1.0),
        max_rotation_deg=0.0,
        highlights=(0, 0),
    )
    stored = endovis.generate(still, seed=5).split(split).points.double()
    points = rescale_points(stored, (72, 90), endovis15.REFERENCE_SIZE).numpy()
    real = raw_claspers(real_split)
    for frame in points:
        for instance in range(frame.shape[1]):
            pair = frame[:, instance]  # (2 landmarks, 2)
            if np.isnan(pair).all():
                continue
            distance = np.abs(real - pair[None]).max(axis=(1, 2))
            assert distance.min() < 1e-3, pair  # float32 storage, scaled by 8


def test_flipped_scene_mirrors_x_and_swaps_the_claspers() -> None:
    joints = np.array([[700.0, 50.0], [600.0, 60.0], [520.0, 70.0], [440.0, 95.0], [445, 80]])
    flipped = endovis._transform(joints, True, 1.0, 0.0, np.zeros(2))
    np.testing.assert_allclose(flipped[:3], [[19.0, 50.0], [119.0, 60.0], [199.0, 70.0]])
    np.testing.assert_allclose(flipped[3:], [[274.0, 80.0], [279.0, 95.0]])  # left <-> right
    # handedness of the real annotations: (head - shaft) x (left - right) < 0, kept by the flip
    for pts in (joints, flipped):
        a, b = pts[2] - pts[1], pts[3] - pts[4]
        assert a[0] * b[1] - a[1] * b[0] < 0


def test_rotation_and_zoom_are_about_the_frame_centre() -> None:
    centre = np.array([[359.5, 287.5]] * 5)
    away = centre + np.array([100.0, 0.0])
    turned = endovis._transform(away, False, 2.0, np.pi / 2, np.array([3.0, 4.0]))
    # (100, 0) from the centre, turned 90 degrees (x towards y on screen), doubled, shifted
    np.testing.assert_allclose(turned, centre + np.array([3.0, 204.0]), atol=1e-9)


def test_jaws_end_at_the_clasper_points() -> None:
    size = (576, 720)
    joints = np.array(
        [[700.0, 300.0], [560.0, 300.0], [480.0, 300.0], [390.0, 290.0], [390.0, 310.0]]
    )
    canvas = np.zeros((3, *size), dtype=np.float32)
    endovis._draw_tool(SMOKE, canvas, endovis.Tool(joints, scissors=False), size)
    drawn = canvas.max(axis=0)
    for x, y in joints[3:]:
        assert drawn[int(y), int(x) + 1] > 0.5  # inside the jaw just before its tip
        assert drawn[int(y), int(x) - 2] == 0.0  # nothing beyond the tip
    assert drawn[300, 710] > 0.0 and drawn[300, 719] > 0.0  # the shaft runs out of the frame
    assert drawn[100, 100] == 0.0
