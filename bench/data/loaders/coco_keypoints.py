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
train.json, in any order. Points are (N, K, 2) when no image has more than one instance, else
(N, K, M, 2) with M the most instances in one image and NaN for absent ones; an image without
annotations has all-NaN points.

Coordinates: COCO puts the continuous top-left corner of the image at (0, 0), so the centre of
pixel (row i, col j) is (j + 0.5, i + 0.5); docs/design.md puts it at (j, i):
`x_ours = x_coco - 0.5`.
Images are then resized to `image_size` and points mapped with `u = (x + 0.5) * W / W_in - 0.5`.
Images are stored with one channel when every image is grey (a colour file whose three channels
are equal counts as grey, as exported X-ray frames often are), else with three.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from adaloss.targets import rescale_points
from bench.data.dataset import LandmarkDataset, Split
from bench.data.loaders.imagefiles import FloatImage, read_image, resize_image, to_channels

SPLIT_FILES = {"train": "train.json", "val": "val.json", "test": "test.json"}
VAL_EVERY = 10
COCO_TO_PIXEL_CENTRE = -0.5


@dataclass(frozen=True)
class Annotated:
    """One image of a COCO file: its path, its (height, width) on disk, and its instances as
    (K, 2) points (pixel centres of the original image, NaN where v = 0)."""

    image: Path
    size: tuple[int, int]
    instances: list[NDArray[np.float64]]


@dataclass(frozen=True)
class CocoFile:
    """A parsed COCO keypoints file: its landmark names and images, in file order."""

    path: Path
    landmark_names: tuple[str, ...]
    images: list[Annotated]


def load(path: Path, image_size: tuple[int, int]) -> LandmarkDataset:
    """Splits "train", "val" and "test" from the COCO files under `path` (module docstring).

    reference_size is the images' common original (H, W) when they all share one, else
    `image_size`: errors are then reported in pixels of the stored images.
    """
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
    everything = [a for split in images.values() for a in split]
    layout = (len(names), max((len(a.instances) for a in everything), default=0))
    pixels = {n: [_read_resized(a, image_size) for a in split] for n, split in images.items()}
    grey = all(_is_grey(image) for split in pixels.values() for image, _ in split)
    channels = 1 if grey else 3
    sizes = {on_disk for split in pixels.values() for _, on_disk in split}
    return LandmarkDataset(
        task="coco_keypoints",
        variant=path.name,
        landmark_names=names,
        landmark_groups={name: (k,) for k, name in enumerate(names)},
        splits={
            name: _split(images[name], pixels[name], image_size, channels, layout)
            for name in ("train", "val", "test")
        },
        reference_size=sizes.pop() if len(sizes) == 1 else image_size,
    )


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
        images[entry["id"]] = Annotated(
            image=_image_file(json_path, str(entry["file_name"])),
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
            f"{json_path}: annotation {annotation.get('id')} has {count} keypoint values, "
            f"expected {3 * k} (x, y, v for each of the {k} landmarks); re-export the file"
        )
    triples = np.asarray(values, dtype=np.float64).reshape(k, 3)
    points = triples[:, :2] + COCO_TO_PIXEL_CENTRE
    points[triples[:, 2] == 0] = np.nan
    return points


def _image_file(json_path: Path, file_name: str) -> Path:
    candidates = [
        json_path.parent / file_name,
        json_path.parent / "images" / PurePath(file_name).name,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ValueError(
        f"{json_path}: image {file_name!r} not found (looked for {candidates[0]} and "
        f"{candidates[1]}); put the images beside the JSON or in images/"
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
            Annotated(a.image, a.size, [points[order] for points in a.instances])
            for a in file.images
        ],
    )


def _read_resized(
    annotated: Annotated, image_size: tuple[int, int]
) -> tuple[FloatImage, tuple[int, int]]:
    """(image resized to image_size with its own channels, (H, W) on disk)."""
    image = read_image(annotated.image)
    on_disk = (int(image.shape[0]), int(image.shape[1]))
    if annotated.size != (0, 0) and annotated.size != on_disk:
        raise ValueError(
            f"{annotated.image}: image is {on_disk[1]}x{on_disk[0]} but its JSON says "
            f"{annotated.size[1]}x{annotated.size[0]}; the keypoints would not line up, "
            "use the exported image"
        )
    return resize_image(image, image_size), on_disk


def _is_grey(image: FloatImage) -> bool:
    return image.shape[-1] == 1 or bool(np.all(image.max(axis=-1) == image.min(axis=-1)))


def _split(
    annotated: list[Annotated],
    pixels: list[tuple[FloatImage, tuple[int, int]]],
    image_size: tuple[int, int],
    channels: int,
    layout: tuple[int, int],
) -> Split:
    """layout: (K, M), M = 0 or 1 for (N, K, 2) points, else (N, K, M, 2)."""
    k, max_instances = layout
    images = np.empty((len(annotated), channels, *image_size), dtype=np.float32)
    shape = (k, 2) if max_instances <= 1 else (k, max_instances, 2)
    points = np.full((len(annotated), *shape), np.nan)
    for index, (entry, (image, on_disk)) in enumerate(zip(annotated, pixels, strict=True)):
        images[index] = to_channels(image, channels).transpose(2, 0, 1)
        if max_instances <= 1 and entry.instances:
            points[index] = entry.instances[0]
        for m, instance in enumerate(entry.instances if max_instances > 1 else []):
            points[index, :, m] = instance
        points[index] = rescale_points(torch.from_numpy(points[index]), on_disk, image_size)
    return Split(images=torch.from_numpy(images), points=torch.from_numpy(points).float())
