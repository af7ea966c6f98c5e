"""Users' own landmark data as COCO keypoints JSON, the export of CVAT, Label Studio and most
annotation tools (e.g. a private CathDet set).

Layout under the path:

    train.json   required
    val.json     optional; without it every `VAL_EVERY`-th training image (10 %) is held out
    test.json    required
    images       each image's `file_name` relative to its JSON's folder, else its base name
                 in an `images/` folder beside the JSON (the CVAT and Label Studio layout)

Each file has one category with `keypoints` (the landmark names, any K; other categories are
ignored), `images` and `annotations`. An annotation is one instance: `keypoints` is
[x1, y1, v1, ..., xK, yK, vK]; v = 0 (not labelled) gives NaN, v = 1 (labelled, hidden) and
v = 2 (visible) give the point. val.json and test.json must name the same landmarks as
train.json, in any order.

Coordinates: COCO puts the continuous top-left corner of the image at (0, 0), so the centre of
pixel (row i, col j) is (j + 0.5, i + 0.5); docs/design.md puts it at (j, i):
`x_ours = x_coco - 0.5`. Resizing, channels, instances and the reporting frame:
`bench.data.loaders.annotated_images`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.data.dataset import LandmarkDataset
from bench.data.loaders.annotated_images import Annotated, assemble

# 2: images of several sizes report in their own frames (was: in pixels of the stored images)
LOADER_VERSION = 2
SPLIT_FILES = {"train": "train.json", "val": "val.json", "test": "test.json"}
VAL_EVERY = 10
COCO_TO_PIXEL_CENTRE = -0.5


@dataclass(frozen=True)
class CocoFile:
    """A parsed COCO keypoints file: its landmark names and images, in file order."""

    path: Path
    landmark_names: tuple[str, ...]
    images: list[Annotated]


def is_coco_folder(path: Path) -> bool:
    return (path / SPLIT_FILES["train"]).is_file()


def load(path: Path, image_size: tuple[int, int]) -> LandmarkDataset:
    """Splits "train", "val" and "test" from the COCO files under `path` (module docstring)."""
    train = read_coco(_required(path, "train"))
    names = train.landmark_names
    files = {"train": train}
    if (path / SPLIT_FILES["val"]).is_file():
        files["val"] = _reordered(read_coco(path / SPLIT_FILES["val"]), names, train.path)
    files["test"] = _reordered(read_coco(_required(path, "test")), names, train.path)
    images = {name: file.images for name, file in files.items()}
    if "val" not in files:
        kept = train.images
        images["train"] = [a for i, a in enumerate(kept) if i % VAL_EVERY != VAL_EVERY - 1]
        images["val"] = [a for i, a in enumerate(kept) if i % VAL_EVERY == VAL_EVERY - 1]
    return assemble("coco_keypoints", path.name, names, images, image_size)


def _required(root: Path, split: str) -> Path:
    path = root / SPLIT_FILES[split]
    if not path.is_file():
        raise ValueError(
            f"{path} is missing; a COCO keypoints folder holds train.json and test.json "
            "(val.json optional), each exported from the annotation tool"
        )
    return path


def read_coco(json_path: Path) -> CocoFile:
    """Parse one COCO keypoints file; ValueError naming the file and the fix on bad input."""
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{json_path}:{error.lineno}:{error.colno}: broken JSON ({error.msg}); fix the file "
            "or export it again from the annotation tool"
        ) from error
    if not isinstance(data, dict) or not all(k in data for k in ("images", "categories")):
        raise ValueError(
            f"{json_path}: not a COCO file (needs 'images', 'annotations' and 'categories'); "
            "export in COCO Keypoints format"
        )
    category = _keypoint_category(json_path, data["categories"])
    names = tuple(str(name) for name in category["keypoints"])
    images: dict[object, Annotated] = {}
    for index, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            raise ValueError(
                f"{json_path}: images[{index}] lacks 'id' or 'file_name'; export the file again"
            )
        if entry["id"] in images:
            raise ValueError(
                f"{json_path}: images[{index}] repeats image id {entry['id']!r}; "
                "give every image its own id"
            )
        origin = f"{json_path.name} image id {entry['id']}"
        images[entry["id"]] = Annotated(
            image=_image_file(json_path, entry["id"], str(entry["file_name"])),
            origin=origin,
            size=(int(entry.get("height", 0)), int(entry.get("width", 0))),
            instances=[],
        )
    for annotation in data.get("annotations", []):
        if annotation.get("category_id") != category["id"]:
            continue
        owner = images.get(annotation.get("image_id"))
        if owner is None:
            raise ValueError(
                f"{json_path}: annotation {annotation.get('id')} refers to image_id "
                f"{annotation.get('image_id')!r}, which 'images' does not list; re-export"
            )
        owner.instances.append(_instance(json_path, annotation, len(names)))
    return CocoFile(path=json_path, landmark_names=names, images=list(images.values()))


def _keypoint_category(json_path: Path, categories: list[dict[str, Any]]) -> dict[str, Any]:
    with_keypoints = [c for c in categories if isinstance(c, dict) and c.get("keypoints")]
    if len(with_keypoints) != 1:
        found = ", ".join(str(c.get("name")) for c in with_keypoints) or "none"
        raise ValueError(
            f"{json_path}: {len(with_keypoints)} categories with keypoints ({found}); export "
            "exactly one keypoint category (its keypoint names are the landmarks)"
        )
    category = with_keypoints[0]
    names = category["keypoints"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"{json_path}: category {category.get('name')!r} has keypoints {names!r}; "
            "they must be a list of landmark names"
        )
    return category


def _instance(json_path: Path, annotation: dict[str, object], k: int) -> NDArray[np.float64]:
    values = annotation.get("keypoints")
    if not isinstance(values, list) or len(values) != 3 * k:
        count = len(values) if isinstance(values, list) else 0
        raise ValueError(
            f"{json_path}: annotation {annotation.get('id')} (image id "
            f"{annotation.get('image_id')}) has {count} keypoint values, expected {3 * k} (x, y, v "
            f"for each of the {k} landmarks); re-export the file"
        )
    try:
        triples = np.asarray(values, dtype=np.float64).reshape(k, 3)
    except (TypeError, ValueError):
        raise ValueError(
            f"{json_path}: annotation {annotation.get('id')} (image id "
            f"{annotation.get('image_id')}) has keypoint values that are not numbers; re-export"
        ) from None
    points = triples[:, :2] + COCO_TO_PIXEL_CENTRE
    labelled = triples[:, 2] != 0
    bad = labelled & ~np.isfinite(points).all(axis=1)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{json_path}: annotation {annotation.get('id')} (image id "
            f"{annotation.get('image_id')}) labels keypoint {index} at "
            f"({triples[index, 0]:g}, {triples[index, 1]:g}), not a finite point; fix it or set "
            "its v to 0 (not labelled)"
        )
    points[~labelled] = np.nan
    return points


def _image_file(json_path: Path, image_id: object, file_name: str) -> Path:
    candidates = [
        json_path.parent / file_name,
        json_path.parent / "images" / PurePath(file_name).name,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ValueError(
        f"{json_path}: image id {image_id} ({file_name!r}) not found (looked for "
        f"{candidates[0]} and {candidates[1]}); put the images beside the JSON or in images/"
    )


def _reordered(file: CocoFile, names: tuple[str, ...], train_path: Path) -> CocoFile:
    """`file` with its landmarks in train.json's order; unknown or missing names are errors."""
    unknown = [name for name in file.landmark_names if name not in names]
    if unknown:
        raise ValueError(
            f"{file.path}: unknown landmark name {unknown[0]!r}; {train_path.name} defines "
            f"{', '.join(names)}; rename it in the keypoint category"
        )
    missing = [name for name in names if name not in file.landmark_names]
    if missing:
        raise ValueError(
            f"{file.path}: landmark {missing[0]!r} of {train_path.name} is missing from the "
            "keypoint category; export the same keypoints for every split"
        )
    order = [file.landmark_names.index(name) for name in names]
    return CocoFile(
        path=file.path,
        landmark_names=names,
        images=[
            Annotated(a.image, a.origin, a.size, [points[order] for points in a.instances])
            for a in file.images
        ],
    )
