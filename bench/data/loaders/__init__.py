"""Loaders for the real data formats, one module per format.

Each module exposes `load(path: Path, image_size: tuple[int, int]) -> LandmarkDataset` with the
splits "train", "val" (a deterministic held-out part of the training data, documented per
module) and "test": `endovis15` (EndoVis'15 frames with Du et al.'s joint annotations),
`ibug300w` (300-W in the iBUG folder layout) and `coco_keypoints` (COCO keypoints JSON, the
export format of CVAT, Label Studio and most annotation tools, for users' own data).
"""
