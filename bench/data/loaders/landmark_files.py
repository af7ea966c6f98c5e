"""The `keypoints` task's data: a COCO keypoints export (`coco_keypoints`: train.json beside
test.json) or a folder of images with `.pts` files (`pts_folder`), told apart by what the
folder holds. Both keep their landmark names, K, channels and instances.
"""

from __future__ import annotations

from pathlib import Path

from bench.data.dataset import LandmarkDataset
from bench.data.loaders import coco_keypoints, pts_folder

LOADER_VERSION = 1  # bumped when coco_keypoints' or pts_folder's output changes


def load(path: Path, image_size: tuple[int, int]) -> LandmarkDataset:
    if path.is_dir() and coco_keypoints.is_coco_folder(path):
        return coco_keypoints.load(path, image_size)
    if pts_folder.is_pts_folder(path):
        return pts_folder.load(path, image_size)
    raise ValueError(
        f"{path}: neither a COCO keypoints export (train.json and test.json) nor a folder of "
        "images with .pts files; export COCO Keypoints from your annotation tool into it"
    )
