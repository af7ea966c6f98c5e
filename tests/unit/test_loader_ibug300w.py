"""300-W loader on small fixture folders written in the iBUG layout."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from skimage import io as skio

from adaloss.io import write_pts
from bench.data.dataset import LandmarkDataset
from bench.data.loaders import ibug300w

# faces per folder in the fixture: 20 training faces, so exactly one (the 20th) is validation
FIXTURE_COUNTS = {
    "afw": 8,
    "helen/trainset": 6,
    "lfpw/trainset": 6,
    "helen/testset": 2,
    "lfpw/testset": 1,
    "ibug": 2,
}
SIZE = (20, 20)


def face_points(rng: np.random.Generator) -> np.ndarray:
    """(68, 2) 0-based points spanning x in [10.5, 26.5], y in [5.5, 17.5]: box centre
    (18.5, 11.5), span 1.25 x 16 = 20 for a 20 x 20 output, crop edge (8.5, 1.5), so a point
    maps to (x - 9, y - 2). Landmark 0 sits on pixel centre (11, 6)."""
    points = rng.uniform([10.5, 5.5], [26.5, 17.5], size=(68, 2))
    points[0], points[1], points[2] = (11.0, 6.0), (10.5, 5.5), (26.5, 17.5)
    return points


def write_face(folder: Path, name: str, points: np.ndarray, suffix: str = ".png") -> None:
    """A 40 x 50 grey photograph, dark except one bright pixel under landmark 0."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = np.full((40, 50), 30, dtype=np.uint8)
    x, y = points[0]
    photo[int(y), int(x)] = 255
    skio.imsave(folder / f"{name}{suffix}", photo, check_contrast=False)
    write_pts(folder / f"{name}.pts", points)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for folder, count in FIXTURE_COUNTS.items():
        for i in range(count):
            write_face(tmp_path / folder, f"face_{i:02d}", face_points(rng))
    return tmp_path


def load_quietly(root: Path) -> LandmarkDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return ibug300w.load(root, SIZE)


def test_splits_subsets_and_layout(root: Path) -> None:
    data = load_quietly(root)
    train, val, test = (data.split(name) for name in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (19, 1, 5)
    assert test.subset_indices("common").tolist() == [0, 1, 2]
    assert test.subset_indices("challenging").tolist() == [3, 4]
    assert len(test.subset_indices("full")) == 5
    assert data.landmark_names == ibug300w.fixed_layout("face300w").landmark_names
    assert data.landmark_groups["eyes"] == tuple(range(36, 48))
    assert train.images.shape == (19, 3, 20, 20) and train.points.shape == (19, 68, 2)


def test_points_and_pixels_follow_the_crop(root: Path) -> None:
    rng = np.random.default_rng(0)
    first = face_points(rng)  # the first afw face, as the fixture wrote it
    data = load_quietly(root)
    np.testing.assert_allclose(data.split("train").points[0].numpy(), first - [9.0, 2.0], atol=1e-4)
    # the bright pixel under landmark 0 (row 6, col 11) lands on crop pixel (row 4, col 2)
    image = data.split("train").images[0, 0].numpy()
    assert np.unravel_index(image.argmax(), image.shape) == (4, 2)
    assert image[4, 2] == pytest.approx(1.0)
    assert image[10, 10] == pytest.approx(30 / 255, abs=1e-6)
    # grey photographs are repeated on three channels
    np.testing.assert_array_equal(
        data.split("train").images[0, 0], data.split("train").images[0, 2]
    )


def test_crop_image_samples_input_pixels_and_pads_black() -> None:
    rows, cols = np.mgrid[0:40, 0:50]
    photo = np.stack([cols / 100.0, rows / 100.0, np.ones_like(rows) * 0.5], -1).astype(np.float32)
    inside = ibug300w.crop_image(photo, np.array([10.5, 5.5, 26.5, 17.5]), SIZE)
    v, u = np.mgrid[0:20, 0:20]
    np.testing.assert_allclose(inside[..., 0], (u + 9) / 100.0, atol=1e-6)
    np.testing.assert_allclose(inside[..., 1], (v + 2) / 100.0, atol=1e-6)
    # a box at the left border: edge x = 2.5 - 10 = -7.5, so crop column u shows x = u - 7
    border = ibug300w.crop_image(photo, np.array([-5.5, 5.5, 10.5, 17.5]), SIZE)
    assert np.all(border[:, :7] == 0.0)
    np.testing.assert_allclose(border[:, 7:, 0], (u[:, 7:] - 7) / 100.0, atol=1e-6)


def test_shrinking_crop_keeps_flat_regions_and_halves_coordinates() -> None:
    photo = np.full((200, 200, 3), 0.6, dtype=np.float32)
    box = np.array([60.0, 60.0, 92.0, 92.0])  # span 1.25 * 32 = 40 px onto 20: zoom 2
    crop = ibug300w.crop_image(photo, box, SIZE)
    np.testing.assert_allclose(crop, 0.6, atol=1e-5)
    # edge = 76 - 20 = 56: u = (x - 56) / 2 - 0.5
    mapped = ibug300w.crop_points(np.array([[56.5, 95.5]]), box, SIZE)
    np.testing.assert_allclose(mapped, [[-0.25, 19.25]])


def test_detector_boxes_from_the_ibug_mat_files_are_used(root: Path) -> None:
    names = sorted(p.name for p in (root / "afw").glob("*.png"))
    cell = np.empty((1, len(names)), dtype=object)
    for i, name in enumerate(names):
        # 1-based [x_min y_min x_max y_max]; 0-based [12, 8, 28, 20]: edge (10, 4), span 20
        box = np.array([13.0, 9.0, 29.0, 21.0])
        cell[0, i] = {"imgName": name, "bb_detector": box, "bb_ground_truth": box}
    (root / "Bounding Boxes").mkdir()
    scipy.io.savemat(root / "Bounding Boxes" / "bounding_boxes_afw.mat", {"bounding_boxes": cell})
    data = load_quietly(root)
    first = face_points(np.random.default_rng(0))
    np.testing.assert_allclose(
        data.split("train").points[0].numpy(), first - [10.5, 4.5], atol=1e-4
    )
    # helen/trainset has no .mat file: still cropped from its landmarks
    rng = np.random.default_rng(0)
    helen_first = [face_points(rng) for _ in range(9)][-1]
    np.testing.assert_allclose(
        data.split("train").points[8].numpy(), helen_first - [9.0, 2.0], atol=1e-4
    )


def test_counts_that_differ_from_the_standard_split_warn_naming_the_folder(root: Path) -> None:
    with pytest.warns(UserWarning) as caught:
        ibug300w.load(root, SIZE)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 6
    assert any(
        re.search(r"helen/testset: 2 faces, the standard split has 330", m) for m in messages
    )
    assert any(re.search(r"ibug: 2 faces, the standard split has 135", m) for m in messages)


def test_missing_image_names_the_pts_file(root: Path) -> None:
    (root / "ibug" / "face_01.png").unlink()
    with pytest.raises(ValueError, match=r"ibug/face_01\.pts: no image beside it"):
        load_quietly(root)


def test_jpeg_images_are_found_too(root: Path) -> None:
    (root / "ibug" / "face_01.png").unlink()
    write_face(root / "ibug", "face_01", face_points(np.random.default_rng(1)), suffix=".jpg")
    assert len(load_quietly(root).split("test")) == 5


def test_wrong_point_count_names_the_file_and_the_fix(root: Path) -> None:
    write_pts(root / "lfpw" / "testset" / "face_00.pts", np.ones((67, 2)))
    with pytest.raises(ValueError, match=r"lfpw/testset/face_00\.pts: 67 points, expected 68"):
        load_quietly(root)


def test_missing_folder_names_it(root: Path) -> None:
    for file in (root / "ibug").iterdir():
        file.unlink()
    (root / "ibug").rmdir()
    with pytest.raises(ValueError, match=r"300-W folder .*ibug is missing"):
        load_quietly(root)
