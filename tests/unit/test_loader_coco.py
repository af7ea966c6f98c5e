"""COCO keypoints loader on small fixture folders (CVAT / Label Studio style exports)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage import io as skio

from bench.data.loaders import coco_keypoints

NAMES = ["tip", "base"]
SIZE = (20, 30)  # stored (H, W); the fixture images are 40 x 60, so a factor 1/2 on both axes


def write_image(path: Path, value: int, colour: tuple[int, int, int] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if colour is None:
        pixels = np.full((40, 60), value, dtype=np.uint8)
    else:
        pixels = np.tile(np.array(colour, dtype=np.uint8), (40, 60, 1))
    skio.imsave(path, pixels, check_contrast=False)


def coco(
    images: list[dict[str, object]],
    annotations: list[dict[str, object]],
    names: list[str] = NAMES,
) -> dict[str, object]:
    return {
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": 1, "name": "catheter", "keypoints": names, "skeleton": []},
            {"id": 2, "name": "other"},
        ],
    }


def image(image_id: int, file_name: str) -> dict[str, object]:
    return {"id": image_id, "file_name": file_name, "width": 60, "height": 40}


def keypoints(ann_id: int, image_id: int, values: list[float]) -> dict[str, object]:
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "keypoints": values}


def write_json(path: Path, content: object) -> None:
    path.write_text(json.dumps(content, indent=2))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """10 training images (one held out for val), 2 test images; one instance each."""
    train_images, train_annotations = [], []
    for i in range(10):
        write_image(tmp_path / "images" / f"train_{i}.png", 10 * i)
        train_images.append(image(i, f"images/train_{i}.png"))
        train_annotations.append(keypoints(100 + i, i, [30.5, 10.5, 2, 2.0 * i + 1, 1.0, 1]))
    write_json(tmp_path / "train.json", coco(train_images, train_annotations))
    write_image(tmp_path / "images" / "t0.png", 200)
    write_image(tmp_path / "images" / "t1.png", 220)
    # test.json lists the landmarks in the other order and uses Label Studio's upload paths
    test = coco(
        [image(7, "/data/upload/3/t0.png"), image(8, "/data/upload/3/t1.png")],
        [keypoints(1, 7, [4.0, 6.0, 2, 60.0, 40.0, 2]), keypoints(2, 8, [0, 0, 0, 1.5, 2.5, 2])],
        names=["base", "tip"],
    )
    write_json(tmp_path / "test.json", test)
    return tmp_path


def test_splits_points_and_visibility(root: Path) -> None:
    data = coco_keypoints.load(root, SIZE)
    train, val, test = (data.split(name) for name in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (9, 1, 2)
    assert data.landmark_names == ("tip", "base")
    assert data.landmark_groups == {"tip": (0,), "base": (1,)}
    assert data.channels == 1 and not data.multi_instance
    assert data.reference_size == (40, 60)
    assert train.points.shape == (9, 2, 2)
    # COCO (30.5, 10.5) -> pixel centres (30, 10) -> (30.5 / 2 - 0.5, 10.5 / 2 - 0.5)
    np.testing.assert_allclose(train.points[0, 0].numpy(), [14.75, 4.75])
    # base of training image i: COCO (2i + 1, 1) -> (2i + 1) / 2 - 0.5 = i, 1 / 2 - 0.5 = 0
    np.testing.assert_allclose(train.points[:, 1].numpy(), [[i, 0.0] for i in range(9)])
    np.testing.assert_allclose(val.points[0, 1].numpy(), [9.0, 0.0])  # the 10th image
    # test.json is (base, tip): reordered to (tip, base); (60, 40) is the far corner
    np.testing.assert_allclose(test.points[0].numpy(), [[29.5, 19.5], [1.5, 2.5]])
    # v = 0: not labelled
    assert np.isnan(test.points[1, 1].numpy()).all()
    np.testing.assert_allclose(test.points[1, 0].numpy(), [0.25, 0.75])
    np.testing.assert_allclose(train.images[3].numpy(), 30 / 255, atol=1e-6)
    np.testing.assert_allclose(test.images[1].numpy(), 220 / 255, atol=1e-6)


def test_val_json_replaces_the_hold_out(root: Path) -> None:
    write_image(root / "v.png", 5)
    write_json(root / "val.json", coco([image(0, "v.png")], [keypoints(9, 0, [1, 1, 2, 3, 3, 2])]))
    data = coco_keypoints.load(root, SIZE)
    assert (len(data.split("train")), len(data.split("val"))) == (10, 1)
    np.testing.assert_allclose(data.split("val").points[0].numpy(), [[0.0, 0.0], [1.0, 1.0]])


def test_several_instances_and_colour_images(root: Path) -> None:
    test = json.loads((root / "test.json").read_text())
    test["annotations"].append(keypoints(3, 7, [20.0, 20.0, 2, 0, 0, 0]))
    test["images"].append(image(9, "c.png"))
    write_json(root / "test.json", test)
    write_image(root / "c.png", 0, colour=(255, 0, 0))
    data = coco_keypoints.load(root, SIZE)
    assert data.multi_instance and data.channels == 3
    points = data.split("test").points.numpy()
    assert points.shape == (3, 2, 2, 2)
    np.testing.assert_allclose(points[0, :, 0], [[29.5, 19.5], [1.5, 2.5]])  # first annotation
    np.testing.assert_allclose(points[0, 1, 1], [9.5, 9.5])  # second one's base
    assert np.isnan(points[0, 0, 1]).all() and np.isnan(points[1, :, 1]).all()
    assert np.isnan(points[2]).all()  # an image without annotations
    np.testing.assert_allclose(data.split("test").images[2].mean(dim=(1, 2)).numpy(), [1, 0, 0])
    # grey images are repeated on three channels
    np.testing.assert_allclose(data.split("train").images[1].numpy(), 10 / 255, atol=1e-6)


def test_broken_json_names_file_line_and_column(root: Path) -> None:
    (root / "test.json").write_text('{"images": [],\n "annotations": [}')
    with pytest.raises(ValueError, match=r"test\.json:2:18: broken JSON"):
        coco_keypoints.load(root, SIZE)


def test_unknown_landmark_name_names_file_and_fix(root: Path) -> None:
    test = json.loads((root / "test.json").read_text())
    test["categories"][0]["keypoints"] = ["base", "tipp"]
    write_json(root / "test.json", test)
    with pytest.raises(ValueError, match=r"test\.json: unknown landmark name 'tipp'; train\.json"):
        coco_keypoints.load(root, SIZE)


def test_missing_image_names_file_and_places_looked(root: Path) -> None:
    (root / "images" / "t1.png").unlink()
    with pytest.raises(
        ValueError, match=r"test\.json: image id 8 \('/data/upload/3/t1\.png'\) not found"
    ):
        coco_keypoints.load(root, SIZE)


def test_wrong_keypoint_count_names_file_and_annotation(root: Path) -> None:
    test = json.loads((root / "test.json").read_text())
    test["annotations"][1]["keypoints"] = [1, 2, 2]
    write_json(root / "test.json", test)
    with pytest.raises(
        ValueError,
        match=r"test\.json: annotation 2 \(image id 8\) has 3 keypoint values, expected 6",
    ):
        coco_keypoints.load(root, SIZE)


def test_missing_split_file_and_several_keypoint_categories(root: Path) -> None:
    (root / "test.json").unlink()
    with pytest.raises(ValueError, match=r"test\.json is missing"):
        coco_keypoints.load(root, SIZE)
    train = json.loads((root / "train.json").read_text())
    train["categories"][1]["keypoints"] = ["a"]
    write_json(root / "train.json", train)
    with pytest.raises(ValueError, match=r"train\.json: 2 categories with keypoints"):
        coco_keypoints.load(root, SIZE)
