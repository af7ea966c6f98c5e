"""EndoVis: several instances of two landmarks (left and right clasper joints) per frame.

Each heatmap is decoded into any number of peaks (`adaloss.decode.decode_peaks`), and the peaks
are matched one-to-one to the ground truth within tau = 20 px of the 720 x 576 frame
(`adaloss.metrics.detection_scores`); precision, recall (%) and the mean true-positive distance
(reference pixels) are reported per clasper and test subset (no-scissors, with-scissors, full).
The per-epoch metric is val_error = 1 - F1 over both claspers of the validation frames.

Peaks are decoded as `bench.tasks.scoring.decode_instances` explains (the paper's spacing and
median filter, scaled with the heatmap width).

Model: the paper's U-Net with LeakyReLU (9 conv layers, kernel 5, BatchNorm).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from torch import Tensor, nn

from bench.data.dataset import LandmarkDataset, Split
from bench.tasks.base import (
    Task,
    TaskProfile,
    in_reference_frame,
    landmark_group,
    percent,
    subset_names,
)
from bench.tasks.scoring import (
    class_detections,
    decode_instances,
    detection_validation,
    f1_score,
    pooled_detections,
)

TAU_PX = 20.0  # detection radius, pixels of the reference (576 x 720) frame

PROFILES = {
    "smoke": TaskProfile(epochs=2, batch_size=8, width=4, depth=4, kernel_size=5),
    "quick": TaskProfile(epochs=30, batch_size=16, width=8, depth=4, kernel_size=5),
    "paper": TaskProfile(epochs=300, batch_size=8, width=32, depth=4, kernel_size=5),
}


@dataclass(frozen=True)
class EndoVis(Task):
    validation_metric: str = "val_error"
    # the paper reports the left clasper on the full test set; F1 weighs precision and recall
    headline_metric: str = "test_f1/left_clasper/full"
    headline_higher_is_better: bool = True
    landmark_metric: str | None = "test_f1/{landmark}/full"
    model_options: ClassVar[Mapping[str, Any]] = MappingProxyType({"activation": nn.LeakyReLU})
    summary_metrics: tuple[str, ...] = (
        *(
            f"test_{metric}/{clasper}/{subset}"
            for clasper in ("left_clasper", "right_clasper")
            for subset in ("no-scissors", "with-scissors", "full")
            for metric in ("precision", "recall", "f1", "distance")
        ),
        *Task.TRAINING_METRICS,
    )

    def decode(self, heatmaps: Tensor) -> Tensor:
        return decode_instances(heatmaps)

    def validate(self, points: Tensor, split: Split, dataset: LandmarkDataset) -> dict[str, float]:
        pred, true = in_reference_frame(points, split, dataset)
        frames = split.subset_indices("full")
        per_class = [
            class_detections(pred, true, k, frames, TAU_PX) for k in range(dataset.num_landmarks)
        ]
        return detection_validation(pooled_detections(per_class))

    def test(
        self, points: Tensor, split: Split, dataset: LandmarkDataset
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        pred, true = in_reference_frame(points, split, dataset)
        metrics: dict[str, float] = {}
        rows = []
        groups = landmark_group(dataset)
        for k, name in enumerate(dataset.landmark_names):
            for subset in subset_names(split):
                scores = class_detections(pred, true, k, split.subset_indices(subset), TAU_PX)
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
