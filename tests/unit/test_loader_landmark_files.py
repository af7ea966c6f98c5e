"""The `keypoints` task's loader on small sets written by `keypoint_sets`: COCO keypoints exports
and folders of images with `.pts` files.

Expected points are worked out from what is on disk (the JSON's COCO values, the `.pts` text),
not from the loader: COCO x_coco - 0.5 and `.pts` v - 1 are pixel centres of the original image,
which the loader maps to the stored size with `u = (x + 0.5) * W / W_in - 0.5`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from keypoint_sets import write_coco_set, write_pts_set
from numpy.typing import NDArray

from bench.data.loaders.landmark_files import load


def coco_points(json_path: Path, image_size: tuple[int, int]) -> list[NDArray[np.float64]]:
    """Per image of `json_path`, in file order, its (M, K, 2) points at `image_size` by the hand
    formula `u = (x_coco - 0.5 + 0.5) * W / W_in - 0.5`, NaN where v = 0."""
    data = json.loads(json_path.read_text())
    height, width = image_size
    result = []
    for entry in data["images"]:
        instances = []
        for annotation in data["annotations"]:
            if annotation["image_id"] != entry["id"]:
                continue
            triples = np.array(annotation["keypoints"], dtype=np.float64).reshape(-1, 3)
            x = (triples[:, 0] - 0.5 + 0.5) * width / entry["width"] - 0.5
            y = (triples[:, 1] - 0.5 + 0.5) * height / entry["height"] - 0.5
            points = np.stack([x, y], axis=-1)
            points[triples[:, 2] == 0] = np.nan
            instances.append(points)
        result.append(np.stack(instances))
    return result


def pts_points(path: Path, in_size: tuple[int, int], image_size: tuple[int, int]) -> np.ndarray:
    """(K, 2) points of a `.pts` file at `image_size`: 1-based on disk, so x = v - 1."""
    lines = path.read_text().splitlines()
    body = lines[lines.index("{") + 1 : lines.index("}")]
    on_disk = np.array([[float(v) for v in line.split()] for line in body])
    scale = np.array([image_size[1] / in_size[1], image_size[0] / in_size[0]])
    return (on_disk - 1 + 0.5) * scale - 0.5


def one_line(error: pytest.ExceptionInfo[ValueError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# --- COCO keypoints --------------------------------------------------------------------------


def test_coco_colour_single_instance_with_unlabelled_points(tmp_path: Path) -> None:
    # 11 training images: without val.json the 10th (index 9) is held out for validation
    write_coco_set(
        tmp_path,
        k=5,
        colour=True,
        counts={"train": 11, "test": 2},
        sizes=((24, 32),),
        hidden_every=3,
    )
    data = load(tmp_path, (12, 16))
    category = json.loads((tmp_path / "train.json").read_text())["categories"][0]
    assert data.landmark_names == tuple(category["keypoints"])
    assert data.landmark_names == ("joint0", "joint1", "joint2", "joint3", "joint4")
    assert data.landmark_groups == {f"joint{k}": (k,) for k in range(5)}
    assert data.channels == 3 and not data.multi_instance
    assert data.reference_size == (24, 32)
    train, val, test = (data.split(name) for name in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (10, 1, 2)
    assert train.images.shape == (10, 3, 12, 16)
    assert train.points.shape == (10, 5, 2) and test.points.shape == (2, 5, 2)
    assert train.frames is None and test.frames is None

    # landmark 0 of images 0, 3, 6, 9 (every 3rd) has v = 0; train holds images 0-8 and 10
    hidden = np.isnan(train.points[:, 0].numpy()).all(axis=-1)
    assert hidden.tolist() == [True, False, False, True, False, False, True, False, False, False]
    assert np.isnan(val.points[0, 0].numpy()).all()  # image 9
    assert not np.isnan(train.points[:, 1:].numpy()).any()

    expected = coco_points(tmp_path / "train.json", (12, 16))
    kept = [*range(9), 10]
    np.testing.assert_allclose(
        train.points.numpy(), np.stack([expected[i][0] for i in kept]), atol=1e-5
    )
    np.testing.assert_allclose(val.points[0].numpy(), expected[9][0], atol=1e-5)
    expected_test = coco_points(tmp_path / "test.json", (12, 16))
    np.testing.assert_allclose(
        test.points.numpy(), np.stack([p[0] for p in expected_test]), atol=1e-5
    )


def test_coco_point_is_the_written_value_moved_to_pixel_centres(tmp_path: Path) -> None:
    # the builder's points are x_coco - 0.5; halving 24 x 32 to 12 x 16 gives u = x_coco / 2 - 0.5
    written = write_coco_set(
        tmp_path, k=2, colour=False, counts={"train": 1, "test": 1}, sizes=((24, 32),)
    )
    x, y = written.points["test"][0][0, 1]
    data = load(tmp_path, (12, 16))
    np.testing.assert_allclose(
        data.split("test").points[0, 1].numpy(),
        [(x + 0.5) / 2 - 0.5, (y + 0.5) / 2 - 0.5],
        atol=1e-5,
    )


def test_coco_grey_with_several_instances(tmp_path: Path) -> None:
    # image i has 1 + i % 3 instances: 1, 2, 3; too few training images to hold any out for val
    write_coco_set(
        tmp_path,
        k=2,
        colour=False,
        max_instances=3,
        counts={"train": 3, "test": 2},
        sizes=((20, 24),),
    )
    data = load(tmp_path, (10, 12))
    assert data.channels == 1 and data.multi_instance
    train, val, test = (data.split(name) for name in ("train", "val", "test"))
    assert train.images.shape == (3, 1, 10, 12)
    assert train.points.shape == (3, 2, 3, 2)
    assert (len(val), len(test)) == (0, 2)
    assert test.points.shape == (2, 2, 3, 2)  # M is the most instances in any split
    present = ~np.isnan(train.points.numpy()).any(axis=-1)  # (N, K, M)
    assert present[:, 0].tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert (present[:, 0] == present[:, 1]).all()
    expected = coco_points(tmp_path / "train.json", (10, 12))
    for i, instances in enumerate(expected):  # (M_i, K, 2) -> column m of (K, M, 2)
        np.testing.assert_allclose(
            train.points[i, :, : len(instances)].numpy(), instances.transpose(1, 0, 2), atol=1e-5
        )


def test_images_of_several_sizes_report_in_their_own_frames(tmp_path: Path) -> None:
    # image i is sizes[i % 3]: train 16x16, 24x32, 24x32; test 16x16, 24x32. 24 x 32 is the
    # most common (3 of 5), though 16 x 16 comes first.
    write_coco_set(
        tmp_path,
        k=2,
        colour=False,
        counts={"train": 3, "test": 2},
        sizes=((16, 16), (24, 32), (24, 32)),
    )
    data = load(tmp_path, (8, 8))
    assert data.reference_size == (24, 32)
    train, test = data.split("train"), data.split("test")
    assert train.frames is not None and test.frames is not None
    assert train.frames.tolist() == [[16, 16], [24, 32], [24, 32]]
    assert test.frames.tolist() == [[16, 16], [24, 32]]
    # every image is mapped from its own size: x * 8 / 16 for image 0, x * 8 / 32 for image 1
    expected = coco_points(tmp_path / "train.json", (8, 8))
    np.testing.assert_allclose(train.points.numpy(), np.stack([p[0] for p in expected]), atol=1e-5)


def test_images_of_one_size_have_no_frames(tmp_path: Path) -> None:
    write_coco_set(tmp_path, k=1, colour=False, counts={"train": 2, "test": 1}, sizes=((24, 32),))
    data = load(tmp_path, (16, 16))
    assert data.reference_size == (24, 32)
    assert all(data.split(name).frames is None for name in ("train", "val", "test"))


# --- .pts folders ----------------------------------------------------------------------------


def test_flat_pts_folder_splits_by_sorted_name(tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    write_pts_set(folder, k=3, count=12, size=(20, 20))
    data = load(folder, (10, 10))
    assert data.landmark_names == ("p1", "p2", "p3")
    assert data.channels == 1 and not data.multi_instance
    assert data.reference_size == (20, 20)
    # test: every 5th of face_000..011 -> 004, 009; val: the 10th of the other ten -> 011
    split_of = {
        "test": [4, 9],
        "val": [11],
        "train": [0, 1, 2, 3, 5, 6, 7, 8, 10],
    }
    for name, numbers in split_of.items():
        split = data.split(name)
        assert split.frames is None
        expected = [pts_points(folder / f"face_{i:03d}.pts", (20, 20), (10, 10)) for i in numbers]
        np.testing.assert_allclose(split.points.numpy(), np.stack(expected), atol=1e-5)


def test_pts_folder_is_one_based_on_disk(tmp_path: Path) -> None:
    # a point written 0-based at (3, 7) is "4 8" on disk and (3, 7) when stored at the same size
    write_pts_set(tmp_path, k=1, count=1, size=(20, 20))
    (tmp_path / "face_000.pts").write_text("version: 1\nn_points: 1\n{\n4 8\n}\n")
    data = load(tmp_path, (20, 20))
    # the one pair is train (not every 5th, not every 10th of the rest)
    np.testing.assert_allclose(data.split("train").points[0].numpy(), [[3.0, 7.0]])


def test_pts_train_and_test_folders_decide_the_split(tmp_path: Path) -> None:
    write_pts_set(tmp_path / "train", k=2, count=11, size=(20, 20), seed=1)
    write_pts_set(tmp_path / "test", k=2, count=2, size=(20, 20), seed=2)
    data = load(tmp_path, (10, 10))
    assert data.landmark_names == ("p1", "p2")
    # without val/ the 10th training pair (face_009) is held out
    expected = {
        "train": [tmp_path / "train" / f"face_{i:03d}.pts" for i in [*range(9), 10]],
        "val": [tmp_path / "train" / "face_009.pts"],
        "test": [tmp_path / "test" / f"face_{i:03d}.pts" for i in range(2)],
    }
    for name, files in expected.items():
        points = np.stack([pts_points(f, (20, 20), (10, 10)) for f in files])
        np.testing.assert_allclose(data.split(name).points.numpy(), points, atol=1e-5)


# --- errors ----------------------------------------------------------------------------------


def test_image_without_pts_names_it_and_the_fix(tmp_path: Path) -> None:
    write_pts_set(tmp_path, k=2, count=3, size=(20, 20))
    (tmp_path / "face_001.pts").unlink()
    with pytest.raises(ValueError, match=r"face_001\.png: no face_001\.pts beside it") as error:
        load(tmp_path, (10, 10))
    assert "annotate the image or move it out of" in one_line(error)


def test_pts_with_another_point_count_names_both_files(tmp_path: Path) -> None:
    write_pts_set(tmp_path, k=3, count=6, size=(20, 20))
    (tmp_path / "face_002.pts").write_text("version: 1\nn_points: 2\n{\n5 5\n6 6\n}\n")
    with pytest.raises(
        ValueError, match=r"face_002\.pts: 2 points, but \S*face_000\.pts has 3"
    ) as error:
        load(tmp_path, (10, 10))
    assert "every .pts file must list the same landmarks" in one_line(error)


def test_folder_of_neither_format_says_what_to_export(tmp_path: Path) -> None:
    write_pts_set(tmp_path, k=1, count=1, size=(20, 20))
    (tmp_path / "face_000.pts").unlink()  # an image alone
    with pytest.raises(
        ValueError, match=r"neither a COCO keypoints export \(train\.json and test\.json\)"
    ) as error:
        load(tmp_path, (10, 10))
    assert str(tmp_path) in one_line(error) and "export COCO Keypoints" in str(error.value)


# imageio tries its plugins on the garbage, and its legacy DICOM one warns of its own removal
@pytest.mark.filterwarnings("ignore:The legacy `DICOM` plugin:DeprecationWarning")
def test_unreadable_image_names_the_file_and_its_json_image_id(tmp_path: Path) -> None:
    write_coco_set(tmp_path, k=2, colour=False, counts={"train": 3, "test": 1}, sizes=((16, 16),))
    (tmp_path / "images" / "train_1.png").write_bytes(b"not a png at all")
    with pytest.raises(
        ValueError,
        match=r"train_1\.png: cannot be read as an image .*\(train\.json image id 1\)$",
    ) as error:
        load(tmp_path, (8, 8))
    assert "replace it with a PNG or JPEG file" in one_line(error)


def test_missing_image_names_its_image_id(tmp_path: Path) -> None:
    # test.json is the second file written: its image ids start at 1000
    write_coco_set(tmp_path, k=2, colour=False, counts={"train": 2, "test": 2}, sizes=((16, 16),))
    (tmp_path / "images" / "test_0.png").unlink()
    with pytest.raises(
        ValueError, match=r"test\.json: image id 1000 \('test_0\.png'\) not found"
    ) as error:
        load(tmp_path, (8, 8))
    assert "put the images beside the JSON or in images/" in one_line(error)
