"""From annotated image files to a `LandmarkDataset`: the part the users' formats (COCO keypoints,
`.pts` folders) share once they have been parsed.

Images are resized to `image_size` and points mapped with docs/design.md's
`u = (x + 0.5) * W / W_in - 0.5`. Images are stored with one channel when every image is grey (a
colour file whose three channels are equal counts as grey, as exported X-ray frames often are),
else with three. Points are (N, K, 2) when no image has more than one instance, else
(N, K, M, 2) with M the most instances in one image and NaN for absent ones; an image without
annotations has all-NaN points. Errors are reported in each image's original frame: the common
(H, W) when all images share one, else per image (`Split.frames`), the dataset's reference size
then being the most common one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from adaloss.targets import rescale_points
from bench.data.dataset import LandmarkDataset, Split
from bench.data.layout import one_group_per_landmark
from bench.data.loaders.imagefiles import FloatImage, read_image, resize_image, to_channels


@dataclass(frozen=True)
class Annotated:
    """One annotated image: its file, where it was listed (`origin`, e.g. "train.json image id
    7", for error messages), its (height, width) as the annotation says ((0, 0): not said), and
    its instances as (K, 2) points (pixel centres of the original image, NaN: not labelled)."""

    image: Path
    origin: str
    size: tuple[int, int]
    instances: list[NDArray[np.float64]]


def assemble(
    task: str,
    variant: str,
    names: tuple[str, ...],
    splits: dict[str, list[Annotated]],
    image_size: tuple[int, int],
) -> LandmarkDataset:
    """The dataset of the parsed `splits` ("train", "val", "test"), images at `image_size`."""
    everything = [a for split in splits.values() for a in split]
    max_instances = max((len(a.instances) for a in everything), default=0)
    pixels = {n: [read_resized(a, image_size) for a in split] for n, split in splits.items()}
    for name, split in splits.items():
        for annotated, (_, on_disk) in zip(split, pixels[name], strict=True):
            check_inside(annotated, on_disk, names)
    grey = all(is_grey(image) for split in pixels.values() for image, _ in split)
    sizes = Counter(on_disk for split in pixels.values() for _, on_disk in split)
    reference = sizes.most_common(1)[0][0] if sizes else image_size
    return LandmarkDataset(
        task=task,
        variant=variant,
        landmark_names=names,
        landmark_groups=one_group_per_landmark(names),
        splits={
            name: build_split(
                splits[name],
                pixels[name],
                image_size,
                channels=1 if grey else 3,
                layout=(len(names), max_instances),
                with_frames=len(sizes) > 1,
            )
            for name in ("train", "val", "test")
        },
        reference_size=reference,
    )


def read_resized(
    annotated: Annotated, image_size: tuple[int, int]
) -> tuple[FloatImage, tuple[int, int]]:
    """(image resized to image_size with its own channels, (H, W) on disk)."""
    try:
        image = read_image(annotated.image)
    except ValueError as error:
        raise ValueError(f"{error} ({annotated.origin})") from None
    on_disk = (int(image.shape[0]), int(image.shape[1]))
    if annotated.size != (0, 0) and annotated.size != on_disk:
        raise ValueError(
            f"{annotated.image}: image is {on_disk[1]}x{on_disk[0]} but {annotated.origin} says "
            f"{annotated.size[1]}x{annotated.size[0]}; the keypoints would not line up, use the "
            "exported image"
        )
    return resize_image(image, image_size), on_disk


# how far outside its image a labelled point may lie, in pixels: annotation tools let a click land
# on the border, and pixel centres run from -0.5 to W - 0.5
OUTSIDE_MARGIN = 1.0


def check_inside(annotated: Annotated, on_disk: tuple[int, int], names: tuple[str, ...]) -> None:
    """Every labelled point of `annotated` is finite and inside its (H, W) image, give or take
    OUTSIDE_MARGIN; else ValueError naming the image, its origin, the landmark and the value. A
    point outside would render no target, silently teaching "no landmark" on that image."""
    height, width = on_disk
    for instance in annotated.instances:
        for name, (x, y) in zip(names, instance.tolist(), strict=True):
            if np.isnan(x) and np.isnan(y):
                continue  # not labelled
            problem = None
            if not (np.isfinite(x) and np.isfinite(y)):
                problem = "is not a finite number"
            elif not (
                -0.5 - OUTSIDE_MARGIN <= x <= width - 0.5 + OUTSIDE_MARGIN
                and -0.5 - OUTSIDE_MARGIN <= y <= height - 0.5 + OUTSIDE_MARGIN
            ):
                problem = f"lies outside the {width}x{height} image"
            if problem is not None:
                raise ValueError(
                    f"{annotated.image}: landmark {name!r} at pixel centre (x, y) = ({x:g}, {y:g}) "
                    f"({annotated.origin}) {problem}; fix the annotation, or leave the point "
                    "unlabelled"
                )


def is_grey(image: FloatImage) -> bool:
    return image.shape[-1] == 1 or bool(np.all(image.max(axis=-1) == image.min(axis=-1)))


def build_split(
    annotated: list[Annotated],
    pixels: list[tuple[FloatImage, tuple[int, int]]],
    image_size: tuple[int, int],
    *,
    channels: int,
    layout: tuple[int, int],
    with_frames: bool,
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
    frames = torch.tensor([on_disk for _, on_disk in pixels], dtype=torch.int64).reshape(-1, 2)
    return Split(
        images=torch.from_numpy(images),
        points=torch.from_numpy(points).float(),
        frames=frames if with_frames else None,
    )
