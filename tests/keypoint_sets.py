"""Small landmark sets in the users' formats, written by the tests that need them: COCO
keypoints exports (as CVAT and Label Studio write them) and folders of images with `.pts` files.

Every landmark k is a disc of its own colour (or grey level) on a noisy background, so a
detector can learn it; points are drawn at random inside the image, in the pixel-centre
convention of each format (COCO: the image's top-left corner at (0, 0); `.pts`: 1-based).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from skimage import io as skio

from adaloss.io import write_pts


@dataclass
class Written:
    """What a set holds: landmark names and, per split file, each image's instances as
    (M, K, 2) points in docs/design.md's convention (NaN where not labelled)."""

    names: list[str]
    points: dict[str, list[NDArray[np.float64]]] = field(default_factory=dict)


def draw(
    size: tuple[int, int], instances: NDArray[np.float64], colour: bool, rng: np.random.Generator
) -> NDArray[np.uint8]:
    """An (H, W[, 3]) uint8 image with a disc of radius 2 per labelled point."""
    height, width = size
    base = rng.uniform(20, 60, (height, width))
    pixels = np.repeat(base[:, :, None], 3, axis=2) if colour else base[:, :, None]
    rows, cols = np.mgrid[0:height, 0:width]
    for instance in instances:
        for k, (x, y) in enumerate(instance):
            if np.isnan(x):
                continue
            disc = (cols - x) ** 2 + (rows - y) ** 2 <= 4.0
            shade = np.array([255, 80 + 40 * k, 255 - 40 * k])[: pixels.shape[2]] % 256
            pixels[disc] = shade if colour else 120 + 25 * k
    image = np.clip(pixels, 0, 255).astype(np.uint8)
    return image if colour else image[:, :, 0]


def write_coco_set(
    folder: Path,
    *,
    k: int,
    colour: bool,
    max_instances: int = 1,
    counts: dict[str, int] | None = None,
    sizes: tuple[tuple[int, int], ...] = ((48, 64),),
    hidden_every: int = 0,
    unlabelled_every: int = 0,
    seed: int = 0,
) -> Written:
    """train.json and test.json (and images/) under `folder`. Image i has size sizes[i % len];
    with max_instances > 1 image i has 1 + i % max_instances instances. hidden_every > 0 leaves
    landmark 0 out of every hidden_every-th image: not drawn, and v = 0 (not labelled).
    unlabelled_every > 0 draws landmark 0 of every unlabelled_every-th training image but marks
    it v = 0, as an annotator who skipped it would; the images are those of the fully labelled
    set with the same seed."""
    rng = np.random.default_rng(seed)
    names = [f"joint{i}" for i in range(k)]
    written = Written(names)
    counts = counts or {"train": 40, "test": 8}
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for split_index, (split, count) in enumerate(counts.items()):
        images, annotations = [], []
        written.points[split] = []
        for i in range(count):
            height, width = sizes[i % len(sizes)]
            image_id = 1000 * split_index + i
            instances = 1 + i % max_instances
            points = np.empty((instances, k, 2))
            points[..., 0] = rng.uniform(4, width - 5, (instances, k))
            points[..., 1] = rng.uniform(4, height - 5, (instances, k))
            if hidden_every and i % hidden_every == 0:
                points[:, 0] = np.nan
            file_name = f"{split}_{i}.png"
            skio.imsave(
                folder / "images" / file_name,
                draw((height, width), points, colour, rng),
                check_contrast=False,
            )
            images.append(
                {"id": image_id, "file_name": file_name, "width": width, "height": height}
            )
            skipped = split == "train" and unlabelled_every and i % unlabelled_every == 0
            for m, instance in enumerate(points):
                values: list[float] = []
                for j, (x, y) in enumerate(instance):
                    labelled = not np.isnan(x) and not (skipped and j == 0)
                    values += [x + 0.5, y + 0.5, 2] if labelled else [0.0, 0.0, 0]
                annotations.append(
                    {
                        "id": 10 * image_id + m,
                        "image_id": image_id,
                        "category_id": 1,
                        "keypoints": values,
                        "num_keypoints": int(sum(v == 2 for v in values[2::3])),
                    }
                )
            written.points[split].append(points)
        coco = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "tool", "keypoints": names, "skeleton": []}],
        }
        (folder / f"{split}.json").write_text(json.dumps(coco, indent=1))
    return written


def write_pts_set(
    folder: Path, *, k: int, count: int = 30, size: tuple[int, int] = (40, 40), seed: int = 0
) -> Written:
    """`count` grey images with `.pts` files directly in `folder` (split by name)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = Written([f"p{i + 1}" for i in range(k)], {"all": []})
    for i in range(count):
        points = np.stack([rng.uniform(4, size[1] - 5, k), rng.uniform(4, size[0] - 5, k)], axis=-1)
        skio.imsave(
            folder / f"face_{i:03d}.png", draw(size, points[None], False, rng), check_contrast=False
        )
        write_pts(folder / f"face_{i:03d}.pts", points)
        written.points["all"].append(points[None])
    return written


def write_grid(path: Path, source: Path, extra: str = "") -> Path:
    """A user's grid for the keypoints task on `source`: two fixed sigmas and Adaloss."""
    path.write_text(
        "task: keypoints\n"
        f"data_source: {source}\n"
        "lrs: [1.0e-3]\n"
        "methods:\n"
        "  sigma5: {schedule: fixed, sigma: 5}\n"
        "  sigma25: {schedule: fixed, sigma: 25}\n"
        "  adaloss: {schedule: adaloss}\n" + extra
    )
    return path
