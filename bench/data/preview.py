"""A grid of dataset images with their landmarks drawn, coloured by landmark group."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D

from bench.data.dataset import LandmarkDataset


def save_preview(
    dataset: LandmarkDataset,
    out: Path,
    *,
    split: str = "test",
    subset: str = "full",
    n: int = 16,
) -> int:
    """Draw `n` images of `split`/`subset`, evenly spaced over it, with their landmarks.

    Points (N, K, 2) or (N, K, M, 2) are drawn as dots coloured by landmark group; NaN points
    (missing landmarks, absent instances) are skipped. Writes the PNG `out` and returns the
    number of images drawn.
    """
    data = dataset.split(split)
    members = data.subset_indices(subset)
    if members.numel() == 0:
        raise ValueError(f"{dataset.task} {split}/{subset} has no images to preview")
    # evenly spaced, so a split ordered by subset (common, then challenging) shows both
    picks = torch.linspace(0, members.numel() - 1, min(n, members.numel())).round().long()
    indices = members[torch.unique(picks)]
    count = int(indices.numel())
    images = data.images[indices].float().clamp(0, 1)
    points = data.points[indices].float()
    if points.ndim == 3:
        points = points.unsqueeze(2)  # (n, K, 1, 2): one instance per landmark
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows + 0.5), squeeze=False)
    colours = _group_colours(dataset)
    height, width = dataset.image_size
    marker = 6.0 if dataset.num_landmarks <= 4 else 3.0  # points; 68 big dots would hide a face
    for slot, axis in enumerate(axes.flat):
        axis.axis("off")
        if slot >= count:
            continue
        axis.imshow(_as_rgb(images[slot]), interpolation="nearest")
        for name, group in dataset.landmark_groups.items():
            xy = points[slot, list(group)].reshape(-1, 2)
            xy = xy[~torch.isnan(xy).any(dim=1)]
            axis.scatter(
                xy[:, 0],
                xy[:, 1],
                s=marker**2,
                c=[colours[name]],
                edgecolors="white",
                linewidths=0.4,
            )
        axis.set_xlim(-0.5, width - 0.5)
        axis.set_ylim(height - 0.5, -0.5)
        axis.set_title(f"#{int(indices[slot])}", fontsize=7)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colours[name], label=name)
        for name in dataset.landmark_groups
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8)
    fig.suptitle(f"{dataset.task} / {dataset.variant}: {split}/{subset}", fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return count


def _group_colours(dataset: LandmarkDataset) -> dict[str, tuple[float, float, float, float]]:
    palette = plt.get_cmap("tab10")
    return {name: palette(k % 10) for k, name in enumerate(dataset.landmark_groups)}


def _as_rgb(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3) for imshow; one channel is shown as grey."""
    array = image.numpy().transpose(1, 2, 0)
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array[..., :3]
