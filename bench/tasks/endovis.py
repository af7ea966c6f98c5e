"""EndoVis: several instances of two landmarks (left and right clasper joints) per frame.

Each heatmap is decoded into any number of peaks (`adaloss.decode.decode_peaks`), and the peaks
are matched one-to-one to the ground truth within tau = 20 px of the 720 x 576 frame
(`adaloss.metrics.detection_scores`); precision, recall (%) and the mean true-positive distance
(reference pixels) are reported per clasper and test subset (no-scissors, with-scissors, full).
The per-epoch metric is val_error = 1 - F1 over both claspers of the validation frames.

Peak decoding is specified at the paper's 288 x 360 heatmaps and scaled with the heatmap width:
peaks at least 10 px apart (at 360 px), above 0.5 (half of a target's peak) after a 3 x 3 median
filter. decode_peaks' default 7 x 7 median is not used: it lowers the peak of a Gaussian of sigma
s to exp(-(7 / sqrt(2 pi))^2 / (2 s^2)), which falls below 0.5 for s < 2.4 px, so narrow targets
(where Adaloss ends) would decode to nothing. At the quick profile's 80 px width the median
shrinks to 1 x 1 (none) and the spacing to 2 px.

Model: the paper's U-Net with LeakyReLU (9 conv layers, kernel 5, BatchNorm).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from adaloss.decode import decode_peaks
from adaloss.metrics import detection_scores
from bench.data.dataset import LandmarkDataset, Split
from bench.models import UNet
from bench.tasks.base import (
    Task,
    TaskProfile,
    landmark_group,
    percent,
    subset_names,
    to_reference,
)

TAU_PX = 20.0  # detection radius, pixels of the reference (576 x 720) frame
PEAK_THRESHOLD = 0.5
PAPER_HEATMAP_WIDTH = 360
PAPER_MEDIAN_SIZE = 3
PAPER_MIN_DISTANCE = 10

PROFILES = {
    "smoke": TaskProfile(epochs=2, batch_size=8, width=4, depth=4, kernel_size=5),
    "quick": TaskProfile(epochs=30, batch_size=16, width=8, depth=4, kernel_size=5),
    "paper": TaskProfile(epochs=300, batch_size=8, width=32, depth=4, kernel_size=5),
}


def peak_settings(heatmap_width: int) -> tuple[int, int]:
    """(median_size, min_distance) for heatmaps `heatmap_width` px wide, scaled from the paper's
    360 px; the median size stays odd and both stay >= 1."""
    scale = heatmap_width / PAPER_HEATMAP_WIDTH
    median_size = 2 * round((PAPER_MEDIAN_SIZE * scale - 1) / 2) + 1
    return max(1, median_size), max(1, round(PAPER_MIN_DISTANCE * scale))


def pad_instances(found: Sequence[Sequence[np.ndarray]]) -> Tensor:
    """Per image, per landmark (n, 2) arrays -> (B, K, M, 2) float32, NaN-padded, M >= 1."""
    instances = max([1, *(len(points) for per_image in found for points in per_image)])
    padded = torch.full((len(found), len(found[0]), instances, 2), math.nan)
    for b, per_image in enumerate(found):
        for k, points in enumerate(per_image):
            padded[b, k, : len(points)] = torch.from_numpy(points).float()
    return padded


def class_detections(
    pred: Tensor, true: Tensor, landmark: int, indices: Tensor
) -> dict[str, float]:
    """detection_scores of one landmark class over the frames `indices`; (N, K, M, 2) points in
    reference pixels."""
    frames = indices.tolist()
    return detection_scores(
        [pred[i, landmark].numpy() for i in frames],
        [true[i, landmark].numpy() for i in frames],
        radius=TAU_PX,
    )


def f1_score(tp: float, fp: float, fn: float) -> float:
    """2 TP / (2 TP + FP + FN); 1 when there is nothing to find and nothing was found."""
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 1.0


@dataclass(frozen=True)
class EndoVis(Task):
    name: str = "endovis"
    profiles: dict[str, TaskProfile] = field(default_factory=lambda: dict(PROFILES))
    validation_metric: str = "val_error"
    # the paper reports the left clasper on the full test set; F1 weighs precision and recall
    headline_metric: str = "test_f1/left_clasper/full"
    headline_higher_is_better: bool = True
    summary_metrics: tuple[str, ...] = (
        *(
            f"test_{metric}/{clasper}/{subset}"
            for clasper in ("left_clasper", "right_clasper")
            for subset in ("no-scissors", "with-scissors", "full")
            for metric in ("precision", "recall", "f1", "distance")
        ),
        "ntv_all",
        "ntv_last",
        "sigma_final_mean",
    )

    def build_model(
        self, profile: str | TaskProfile, in_channels: int, num_landmarks: int
    ) -> nn.Module:
        settings = self.resolve(profile)
        return UNet(
            in_channels,
            num_landmarks,
            width=settings.width,
            depth=settings.depth,
            kernel_size=settings.kernel_size,
            activation=nn.LeakyReLU,
        )

    def decode(self, heatmaps: Tensor) -> Tensor:
        median_size, min_distance = peak_settings(heatmaps.shape[-1])
        maps = heatmaps.float().cpu().numpy()
        found = [
            [
                decode_peaks(
                    heatmap,
                    median_size=median_size,
                    min_distance=min_distance,
                    threshold=PEAK_THRESHOLD,
                )
                for heatmap in per_image
            ]
            for per_image in maps
        ]
        return pad_instances(found)

    def validate(self, points: Tensor, split: Split, dataset: LandmarkDataset) -> dict[str, float]:
        pred, true = to_reference(points, dataset), to_reference(split.points, dataset)
        frames = split.subset_indices("full")
        scores = [class_detections(pred, true, k, frames) for k in range(dataset.num_landmarks)]
        tp, fp, fn = (sum(s[key] for s in scores) for key in ("tp", "fp", "fn"))
        distance_sum = sum(s["mean_distance"] * s["tp"] for s in scores if s["tp"])
        return {
            "val_error": 1.0 - f1_score(tp, fp, fn),
            "val_precision": percent(tp / (tp + fp)) if tp + fp else math.nan,
            "val_recall": percent(tp / (tp + fn)) if tp + fn else math.nan,
            "val_distance": distance_sum / tp if tp else math.nan,
        }

    def test(
        self, points: Tensor, split: Split, dataset: LandmarkDataset
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        pred, true = to_reference(points, dataset), to_reference(split.points, dataset)
        metrics: dict[str, float] = {}
        rows = []
        groups = landmark_group(dataset)
        for k, name in enumerate(dataset.landmark_names):
            for subset in subset_names(split):
                scores = class_detections(pred, true, k, split.subset_indices(subset))
                metrics[f"test_precision/{name}/{subset}"] = percent(scores["precision"])
                metrics[f"test_recall/{name}/{subset}"] = percent(scores["recall"])
                metrics[f"test_distance/{name}/{subset}"] = scores["mean_distance"]
                metrics[f"test_f1/{name}/{subset}"] = percent(
                    f1_score(scores["tp"], scores["fp"], scores["fn"])
                )
            rows.append(
                {
                    "landmark": name,
                    "group": groups[k],
                    "precision": metrics[f"test_precision/{name}/full"],
                    "recall": metrics[f"test_recall/{name}/full"],
                    "mean_distance": metrics[f"test_distance/{name}/full"],
                }
            )
        return metrics, rows
