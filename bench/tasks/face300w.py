"""300-W faces: 68 landmarks of varying precision, scored by the inter-ocular NME (%) per test
subset (common, challenging, full), failure rates at 0.08 and 0.10, and AUC@0.08.

Model: the paper's Dense U-Net (23 conv layers, BatchNorm, ReLU). Kernel 11 is the paper's, at
256 x 256; the quick (64 px) and smoke (32 px) profiles use kernels 5 and 3. An 11 x 11 kernel
costs 121 / 25 = 4.8x a 5 x 5 one per layer, and on a 64 px face it would span a sixth of the
image per layer where the paper's spans a 23rd; 5 keeps the quick profile trainable on a CPU while
the network's receptive field (three poolings, 23 layers) still covers the whole face.

Training rotates each face by a uniform angle in +-30 degrees (the paper's augmentation), and the
targets are divided by their mean (`normalize="mean"`), as the paper does for faces: the default
for every method on this task, so fixed sigmas and Adaloss see the same target definition (a grid
can set `extra: {normalize: null}` to compare).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from adaloss.metrics import OUTER_EYE_CORNERS, auc, failure_rate, nme, point_error
from bench.data.dataset import LandmarkDataset, Split
from bench.tasks.base import (
    Task,
    TaskProfile,
    in_reference_frame,
    landmark_group,
    percent,
    subset_names,
)
from bench.tasks.models import DenseUNet

FAILURE_THRESHOLDS = (0.08, 0.10)
AUC_THRESHOLD = 0.08

PROFILES = {
    name: TaskProfile(
        epochs=epochs,
        batch_size=batch_size,
        width=width,
        depth=3,
        kernel_size=kernel_size,
        rotation_deg=30.0,
        normalize="mean",
    )
    for name, epochs, batch_size, width, kernel_size in (
        ("smoke", 2, 8, 2, 3),
        ("quick", 30, 16, 8, 5),
        ("paper", 150, 8, 16, 11),
    )
}


def image_nme(points: Tensor, split: Split, dataset: LandmarkDataset) -> Tensor:
    """(N,) inter-ocular NME (a fraction) of decoded (N, 68, 2) points, in the reference frame."""
    return nme(*in_reference_frame(points, split, dataset))


def nme_summary(values: Tensor, prefix: str, suffix: str = "") -> dict[str, float]:
    """NME, failure rates and AUC of (n,) per-image NMEs, all in %."""
    summary = {f"{prefix}_nme{suffix}": percent(float(values.nanmean()))}
    for threshold in FAILURE_THRESHOLDS:
        rate = failure_rate(values, threshold)
        summary[f"{prefix}_failure_{threshold:.2f}{suffix}"] = percent(rate)
    summary[f"{prefix}_auc_{AUC_THRESHOLD:.2f}{suffix}"] = percent(auc(values, AUC_THRESHOLD))
    return summary


@dataclass(frozen=True)
class Face300W(Task):
    validation_metric: str = "val_nme"
    headline_metric: str = "test_nme/full"
    summary_metrics: tuple[str, ...] = (
        "test_nme/common",
        "test_nme/challenging",
        "test_nme/full",
        "test_failure_0.08/full",
        "test_failure_0.10/full",
        "test_auc_0.08/full",
        *Task.TRAINING_METRICS,
    )

    model_class: ClassVar[Callable[..., nn.Module]] = DenseUNet

    def validate(self, points: Tensor, split: Split, dataset: LandmarkDataset) -> dict[str, float]:
        return nme_summary(image_nme(points, split, dataset), "val")

    def test(
        self, points: Tensor, split: Split, dataset: LandmarkDataset
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        values = image_nme(points, split, dataset)
        metrics: dict[str, float] = {}
        for subset in subset_names(split):
            metrics |= nme_summary(values[split.subset_indices(subset)], "test", f"/{subset}")
        return metrics, landmark_rows(points, split, dataset)


def landmark_rows(points: Tensor, split: Split, dataset: LandmarkDataset) -> list[dict[str, Any]]:
    """Per landmark: mean error normalised by each image's inter-ocular distance (%) and mean
    error in reference pixels, over the whole split."""
    pred, true = in_reference_frame(points, split, dataset)
    errors = point_error(pred, true)  # (N, 68)
    left, right = OUTER_EYE_CORNERS
    interocular = point_error(true[:, left], true[:, right])  # (N,), the normaliser of `nme`
    normalised = errors / interocular[:, None]
    rows = []
    groups = landmark_group(dataset)
    for index, name in enumerate(dataset.landmark_names):
        rows.append(
            {
                "landmark": name,
                "group": groups[index],
                "mean_nme": percent(float(normalised[:, index].nanmean())),
                "mean_distance": float(errors[:, index].nanmean()),
            }
        )
    return rows
