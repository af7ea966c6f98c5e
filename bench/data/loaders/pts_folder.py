"""Users' landmarks as images with iBUG `.pts` files beside them (any number of points).

Layout under the path, either

    train/  test/  [val/]      each a folder of <name>.png | .jpg | .jpeg beside <name>.pts

or one folder of such pairs, split by sorted file name: every `TEST_EVERY`-th pair (20 %) is
test, and of the rest every `VAL_EVERY`-th (10 %) validation. Without val/, validation is held
out of train/ the same way. Every file must hold the same number of points K; the landmarks are
named "p1" .. "pK", in file order (the iBUG numbering). `.pts` files are 1-based on disk
(`adaloss.io.read_pts` makes them 0-based); an image without a `.pts` file is an error, a `.pts`
without an image too, so that nothing is silently left out.
"""

from __future__ import annotations

from pathlib import Path

from adaloss.io import read_pts
from bench.data.dataset import LandmarkDataset
from bench.data.loaders.annotated_images import Annotated, assemble

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TEST_EVERY = 5
VAL_EVERY = 10


def is_pts_folder(path: Path) -> bool:
    """A folder with `.pts` files in it or in its train/ folder."""
    return path.is_dir() and (any(path.glob("*.pts")) or any(path.glob("train/*.pts")))


def load(path: Path, image_size: tuple[int, int]) -> LandmarkDataset:
    """Splits "train", "val" and "test" of the `.pts` folder `path` (module docstring)."""
    if (path / "train").is_dir() or (path / "test").is_dir():
        splits = {name: read_folder(path / name) for name in ("train", "test")}
        if (path / "val").is_dir():
            splits["val"] = read_folder(path / "val")
        else:
            kept = splits["train"]
            splits["train"] = held_in(kept, VAL_EVERY)
            splits["val"] = held_out(kept, VAL_EVERY)
    else:
        pairs = read_folder(path)
        rest = held_in(pairs, TEST_EVERY)
        splits = {
            "train": held_in(rest, VAL_EVERY),
            "val": held_out(rest, VAL_EVERY),
            "test": held_out(pairs, TEST_EVERY),
        }
    pairs = [a for split in splits.values() for a in split]
    k = len(pairs[0].instances[0])
    for pair in pairs:
        if len(pair.instances[0]) != k:
            raise ValueError(
                f"{pair.origin}: {len(pair.instances[0])} points, but {pairs[0].origin} has {k}; "
                "every .pts file must list the same landmarks"
            )
    names = tuple(f"p{i + 1}" for i in range(k))
    return assemble("pts_folder", path.name, names, splits, image_size)


def held_in(items: list[Annotated], every: int) -> list[Annotated]:
    return [a for i, a in enumerate(items) if i % every != every - 1]


def held_out(items: list[Annotated], every: int) -> list[Annotated]:
    return [a for i, a in enumerate(items) if i % every == every - 1]


def read_folder(folder: Path) -> list[Annotated]:
    """The image/.pts pairs of `folder`, sorted by name; ValueError naming an unpaired file."""
    if not folder.is_dir():
        raise ValueError(
            f"{folder} is missing; a .pts folder holds train/ and test/ (val/ optional), or "
            "all its image/.pts pairs directly"
        )
    images = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    annotations = {p.stem: p for p in folder.glob("*.pts")}
    for stem, pts in sorted(annotations.items()):
        if stem not in images:
            raise ValueError(
                f"{pts}: no image beside it (looked for {stem} with "
                f"{', '.join(IMAGE_SUFFIXES)}); put the image next to its .pts file"
            )
    for stem, image in sorted(images.items()):
        if stem not in annotations:
            raise ValueError(
                f"{image}: no {stem}.pts beside it; annotate the image or move it out of {folder}"
            )
    if not annotations:
        raise ValueError(f"{folder}: no .pts files; put each image's {{name}}.pts beside it")
    return [
        Annotated(
            image=images[stem],
            origin=str(annotations[stem]),
            size=(0, 0),
            instances=[read_pts(annotations[stem])],
        )
        for stem in sorted(annotations)
    ]
