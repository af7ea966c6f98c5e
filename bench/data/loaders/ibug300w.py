"""300-W faces in the iBUG folder layout (images beside 68-point `.pts` files).

Layout under the root (as the iBUG site distributes it):

    afw/  helen/trainset/  helen/testset/  lfpw/trainset/  lfpw/testset/  ibug/
    each: <name>.jpg | .jpeg | .png  beside  <name>.pts   (iBUG 68-point layout, 1-based)
    optional: "Bounding Boxes/bounding_boxes_<folder>.mat" (or "Bounding_Boxes/"), e.g.
    bounding_boxes_helen_trainset.mat, the iBUG face-detector boxes

The standard split (the paper's Table 3): training = afw + helen/trainset + lfpw/trainset (3148
faces), "common" = helen/testset + lfpw/testset (554), "challenging" = ibug (135), "full" = both
(689). Folder counts that differ from these raise a warning naming the folder: the numbers would
not be comparable to the paper's.

Splits: "train" and "val" (every `VAL_EVERY`-th training face in folder-then-name order, 5 %:
faces are independent photographs, so an interleaved hold-out is fair), "test" = common then
challenging, with subsets "common" and "challenging" ("full" is the whole split).

Crop: a box around the face (the landmark box: min/max of the 68 points; or, when the
bounding-box files are there, the iBUG detector box `bb_detector`) enlarged `CROP_ENLARGEMENT`
times about its centre and widened to the output's aspect ratio, resampled to `image_size`
(bilinear, Gaussian pre-filter when shrinking; outside the photograph is black). A crop whose
left/top edge lies at continuous coordinate e (pixel centres at integers) and which spans S
input pixels over W output pixels maps a point by `u = (x - e) * W / S - 0.5`, docs/design.md's
convention (for the whole image, e = -0.5 and S = W_in, it is `u = (x + 0.5) * W / W_in - 0.5`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage
from scipy.io import loadmat

from adaloss.io import read_pts
from bench.data.dataset import LandmarkDataset, Split
from bench.data.loaders.imagefiles import FloatImage, read_image, to_channels
from bench.tasks import fixed_layout

# folder -> (part of the standard split, number of faces in it)
FOLDERS: dict[str, tuple[str, int]] = {
    "afw": ("train", 337),
    "helen/trainset": ("train", 2000),
    "lfpw/trainset": ("train", 811),
    "helen/testset": ("common", 330),
    "lfpw/testset": ("common", 224),
    "ibug": ("challenging", 135),
}
NUM_POINTS = 68
CROP_ENLARGEMENT = 1.25
VAL_EVERY = 20
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
BOX_FOLDERS = ("Bounding Boxes", "Bounding_Boxes")
REFERENCE_SIZE = fixed_layout("face300w").reference_size

Box = NDArray[np.float64]  # (4,) x_min, y_min, x_max, y_max in pixel-centre coordinates


@dataclass(frozen=True)
class Face:
    """One annotated face: its image file, (68, 2) 0-based points and the box to crop."""

    image: Path
    points: NDArray[np.float64]
    box: Box


def load(path: Path, image_size: tuple[int, int]) -> LandmarkDataset:
    """The `face300w` task from 300-W under `path` (layout in the module docstring).

    Images (N, 3, H, W) of the face crops at `image_size`; points (N, 68, 2) in crop pixels.
    """
    parts: dict[str, list[Face]] = {"train": [], "common": [], "challenging": []}
    for folder, (part, expected) in FOLDERS.items():
        faces = read_folder(path, folder)
        if len(faces) != expected:
            warnings.warn(
                f"300-W folder {path / folder}: {len(faces)} faces, the standard split has "
                f"{expected}; results will not be comparable to the paper's",
                stacklevel=2,
            )
        parts[part].extend(faces)
    train = [f for i, f in enumerate(parts["train"]) if i % VAL_EVERY != VAL_EVERY - 1]
    val = [f for i, f in enumerate(parts["train"]) if i % VAL_EVERY == VAL_EVERY - 1]
    n_common = len(parts["common"])
    test = parts["common"] + parts["challenging"]
    return LandmarkDataset.with_layout(
        "face300w",
        "300w",
        fixed_layout("face300w"),
        {
            "train": _split(train, image_size, {}),
            "val": _split(val, image_size, {}),
            "test": _split(
                test,
                image_size,
                {
                    "common": torch.arange(n_common),
                    "challenging": torch.arange(n_common, len(test)),
                },
            ),
        },
    )


def read_folder(root: Path, folder: str) -> list[Face]:
    """The faces of one 300-W folder, in file-name order, with their crop boxes."""
    directory = root / folder
    if not directory.is_dir():
        raise ValueError(
            f"300-W folder {directory} is missing; the root must hold the iBUG layout "
            f"({', '.join(FOLDERS)})"
        )
    detector_boxes = _detector_boxes(root, folder)
    faces = []
    for pts in sorted(directory.glob("*.pts")):
        points = read_pts(pts)
        if points.shape != (NUM_POINTS, 2):
            raise ValueError(
                f"{pts}: {len(points)} points, expected {NUM_POINTS} (the iBUG 68-point layout); "
                "re-export the file with all 68 points or remove it"
            )
        image = _image_beside(pts)
        if detector_boxes is None:
            box = np.concatenate([points.min(axis=0), points.max(axis=0)])
        elif image.name in detector_boxes:
            box = detector_boxes[image.name]
        else:
            raise ValueError(
                f"{_box_file(root, folder)} has no box for {image.name}; add it or remove the "
                "bounding-box files to crop from the landmarks"
            )
        faces.append(Face(image=image, points=points, box=box))
    return faces


def _image_beside(pts: Path) -> Path:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (pts.with_suffix(suffix), pts.with_suffix(suffix.upper())):
            if candidate.is_file():
                return candidate
    looked = ", ".join(pts.with_suffix(s).name for s in IMAGE_SUFFIXES)
    raise ValueError(f"{pts}: no image beside it (looked for {looked}); put the face image there")


def _box_file(root: Path, folder: str) -> Path | None:
    name = f"bounding_boxes_{folder.replace('/', '_')}.mat"
    for box_folder in BOX_FOLDERS:
        if (root / box_folder / name).is_file():
            return root / box_folder / name
    return None


def _detector_boxes(root: Path, folder: str) -> dict[str, Box] | None:
    """Image name -> detector box (0-based) from the iBUG .mat file of `folder`, if present.

    The file holds a cell array `bounding_boxes` of structs (imgName, bb_detector,
    bb_ground_truth), boxes as 1-based [x_min y_min x_max y_max].
    """
    path = _box_file(root, folder)
    if path is None:
        return None
    try:
        entries = np.atleast_1d(
            loadmat(path, squeeze_me=True, struct_as_record=False)["bounding_boxes"]
        )
        return {
            str(entry.imgName): np.asarray(entry.bb_detector, dtype=np.float64).reshape(4) - 1.0
            for entry in entries
        }
    except (KeyError, AttributeError, ValueError) as error:
        raise ValueError(
            f"{path}: not an iBUG bounding-box file ({error}); expected a cell array "
            "'bounding_boxes' of structs with imgName and bb_detector, or remove the file"
        ) from error


def crop_window(box: Box, image_size: tuple[int, int]) -> tuple[NDArray[np.float64], float]:
    """(edge (x, y), span_x): the crop's top-left continuous coordinate and its width in input
    pixels; its height is span_x * H / W (the output's aspect ratio)."""
    height, width = image_size
    centre = (box[:2] + box[2:]) / 2.0
    extent_x, extent_y = box[2] - box[0], box[3] - box[1]
    span_x = CROP_ENLARGEMENT * max(extent_x, extent_y * width / height, 1.0)
    span_y = span_x * height / width
    return centre - np.array([span_x, span_y]) / 2.0, span_x


def crop_points(
    points: NDArray[np.float64], box: Box, image_size: tuple[int, int]
) -> NDArray[np.float64]:
    """(..., 2) points of the photograph -> pixels of the crop: u = (x - e) * W / S - 0.5."""
    edge, span_x = crop_window(box, image_size)
    return (points - edge) * (image_size[1] / span_x) - 0.5


def crop_image(image: FloatImage, box: Box, image_size: tuple[int, int]) -> FloatImage:
    """(H, W, C) photograph -> (image_size, C) crop, the inverse of `crop_points`' mapping.

    Shrinking pre-filters with a Gaussian of sigma (zoom - 1) / 2 input pixels (as
    skimage.transform.resize does) on a window around the crop only, so large photographs cost
    little; pixels outside the photograph are 0.
    """
    height, width = image_size
    edge, span_x = crop_window(box, image_size)
    zoom = span_x / width  # input pixels per output pixel, the same on both axes
    sigma = max((zoom - 1.0) / 2.0, 0.0)
    # input coordinates of the output pixel centres: x = e + (u + 0.5) * zoom
    xs = edge[0] + (np.arange(width) + 0.5) * zoom
    ys = edge[1] + (np.arange(height) + 0.5) * zoom
    margin = int(np.ceil(4.0 * sigma)) + 2
    c0, c1 = int(np.floor(xs[0])) - margin, int(np.ceil(xs[-1])) + margin + 1
    r0, r1 = int(np.floor(ys[0])) - margin, int(np.ceil(ys[-1])) + margin + 1
    window = np.zeros((r1 - r0, c1 - c0, image.shape[2]), dtype=np.float32)
    src_r0, src_r1 = max(r0, 0), min(r1, image.shape[0])
    src_c0, src_c1 = max(c0, 0), min(c1, image.shape[1])
    if src_r0 < src_r1 and src_c0 < src_c1:
        window[src_r0 - r0 : src_r1 - r0, src_c0 - c0 : src_c1 - c0] = image[
            src_r0:src_r1, src_c0:src_c1
        ]
    if sigma > 0:
        window = ndimage.gaussian_filter(window, (sigma, sigma, 0.0), mode="constant")
    rows, cols = np.meshgrid(ys - r0, xs - c0, indexing="ij")
    out = np.stack(
        [
            ndimage.map_coordinates(window[:, :, c], [rows, cols], order=1, mode="constant")
            for c in range(window.shape[2])
        ],
        axis=-1,
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _split(
    faces: list[Face], image_size: tuple[int, int], subsets: dict[str, torch.Tensor]
) -> Split:
    images = np.empty((len(faces), 3, *image_size), dtype=np.float32)
    points = np.empty((len(faces), NUM_POINTS, 2), dtype=np.float64)
    for index, face in enumerate(faces):
        photo = to_channels(read_image(face.image), 3)
        images[index] = crop_image(photo, face.box, image_size).transpose(2, 0, 1)
        points[index] = crop_points(face.points, face.box, image_size)
    return Split(
        images=torch.from_numpy(images),
        points=torch.from_numpy(points.astype(np.float32)),
        subsets=subsets,
    )
