"""CathDet: one very precise landmark (the catheter tip), scored by its distance in pixels of the
paper's 256 x 256 frame. Model: the paper's U-Net (9 conv layers, kernel 5, BatchNorm, ReLU)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from adaloss.metrics import point_error
from bench.data.dataset import LandmarkDataset, Split
from bench.tasks.base import Task, TaskProfile, in_reference_frame, landmark_group
from bench.tasks.scoring import distance_summary

WITHIN_PX = (2.0, 5.0, 10.0)

# quick: 2000 training images at 64 px, width 8, in channels_last. Measured from a fresh clone on
# two 2-core machines: 220 images/s, cells of 180-220 s, the 10-cell grid in 34 min on one; 460
# images/s (`bench perf trainer`), cells of 87-95 s, the grid in 15 min on the other. 20 epochs
# meet the convergence criterion of docs/data.md for sigma 40 at lr 1e-3 (the validation distance
# still falls slowly at epoch 20: `bench report` says so). paper: the paper's 100 epochs; its
# widths are not published, 32 is ours.
PROFILES = {
    "smoke": TaskProfile(epochs=2, batch_size=8, width=4, depth=4, kernel_size=5),
    "quick": TaskProfile(epochs=20, batch_size=16, width=8, depth=4, kernel_size=5),
    "paper": TaskProfile(epochs=100, batch_size=16, width=32, depth=4, kernel_size=5),
}


def point_errors(points: Tensor, split: Split, dataset: LandmarkDataset) -> Tensor:
    """(N, K) distances in reference pixels between decoded (N, K, 2) points and the truth;
    NaN where the landmark is missing."""
    return point_error(*in_reference_frame(points, split, dataset))


@dataclass(frozen=True)
class CathDet(Task):
    validation_metric: str = "val_distance"
    headline_metric: str = "test_distance"
    summary_metrics: tuple[str, ...] = (
        "test_distance",
        "test_distance_median",
        "test_within_5px",
        *Task.TRAINING_METRICS,
    )

    def validate(self, points: Tensor, split: Split, dataset: LandmarkDataset) -> dict[str, float]:
        summary = distance_summary(point_errors(points, split, dataset), "val", WITHIN_PX)
        return {key: summary[key] for key in ("val_distance", "val_distance_median")}

    def test(
        self, points: Tensor, split: Split, dataset: LandmarkDataset
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        errors = point_errors(points, split, dataset)
        rows = []
        for index, (name, group) in enumerate(
            zip(dataset.landmark_names, landmark_group(dataset), strict=True)
        ):
            summary = distance_summary(errors[:, index], "test", WITHIN_PX)
            rows.append(
                {
                    "landmark": name,
                    "group": group,
                    "mean_distance": summary["test_distance"],
                    "median_distance": summary["test_distance_median"],
                }
            )
        return distance_summary(errors, "test", WITHIN_PX), rows
