"""Keypoints: the user's own landmarks, shaped by the data (`bench.data.loaders.landmark_files`).

The landmark names and K, the channels and one-or-several instances come from the dataset's
layout; errors are in pixels of each image's original frame. Model: the paper's U-Net (9 conv
layers, kernel 5, BatchNorm, ReLU) at the profile's input size.

One instance per landmark: argmax decoding with the quarter-pixel refinement; per epoch the mean
distance (or the NME with a normaliser); at the end the mean, median and 90th-percentile
distance, PCK at `pck_radius`, the NME between two landmarks when `normalizer: [i, j]` is given,
and the mean distance and PCK of every landmark.

Several instances: every peak above half the target's height (`bench.tasks.scoring`), matched
one-to-one to the ground truth within `match_radius` (Hungarian, `adaloss.metrics`); per epoch
1 - F1 over all landmarks; at the end precision, recall, F1 (%) and the true-positive distance,
pooled and per landmark.

Radii are pixels of the original images; both default to `DEFAULT_RADIUS_FRACTION` of the longer
side of the most common original frame. The grid's `metric` mapping sets them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from adaloss.metrics import nme, point_error
from bench.data.dataset import LandmarkDataset, Split
from bench.data.layout import DataLayout
from bench.tasks.base import Task, TaskProfile, in_reference_frame, landmark_group, percent
from bench.tasks.scoring import (
    class_detections,
    decode_instances,
    detection_validation,
    distance_summary,
    pooled_detections,
    within_rate,
)

DEFAULT_RADIUS_FRACTION = 0.05

# quick: the budget of the shipped quick grids (a few hundred to a few thousand images at 64 px
# train in minutes a cell on 2 CPU cores); a grid's `profiles:` sets other epochs for its data.
PROFILES = {
    "smoke": TaskProfile(epochs=2, batch_size=8, width=4, depth=4, kernel_size=5),
    "quick": TaskProfile(epochs=30, batch_size=16, width=8, depth=4, kernel_size=5),
    "paper": TaskProfile(epochs=100, batch_size=16, width=32, depth=4, kernel_size=5),
}


@dataclass(frozen=True)
class MetricOptions:
    """The grid's `metric` mapping, checked against the data's layout.

    pck_radius, match_radius: pixels of the original images. normalizer: 0-based landmark
    indices (i, j) whose true distance divides each image's mean error (NME), or None.
    """

    pck_radius: float
    match_radius: float
    normalizer: tuple[int, int] | None

    @classmethod
    def of(cls, options: Mapping[str, Any], layout: DataLayout) -> MetricOptions:
        """Raises ValueError naming the grid key when an option does not fit the data."""
        given = dict(options.get("metric") or {})
        default = DEFAULT_RADIUS_FRACTION * max(layout.reference_size)
        normalizer = given.get("normalizer")
        k = len(layout.landmark_names)
        if normalizer is not None:
            if (
                not isinstance(normalizer, list | tuple)
                or len(normalizer) != 2
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in normalizer)
                or normalizer[0] == normalizer[1]
            ):
                raise ValueError(
                    f"metric.normalizer: {normalizer!r} must be two different 0-based landmark "
                    "indices [i, j]"
                )
            if layout.multi_instance:
                raise ValueError(
                    "metric.normalizer: an NME needs one instance per landmark, and these data "
                    "have several; remove it (precision, recall and F1 are reported)"
                )
            outside = [i for i in normalizer if not 0 <= int(i) < k]
            if outside:
                raise ValueError(
                    f"metric.normalizer: landmark index {outside[0]} does not exist; the data "
                    f"have {k} landmarks (0 = {layout.landmark_names[0]!r} .. {k - 1} = "
                    f"{layout.landmark_names[-1]!r})"
                )
            normalizer = (int(normalizer[0]), int(normalizer[1]))
        if "match_radius" in given and not layout.multi_instance:
            raise ValueError(
                "metric.match_radius: these data have one instance per landmark, so nothing is "
                "matched; use metric.pck_radius for the radius of PCK"
            )
        if "pck_radius" in given and layout.multi_instance:
            raise ValueError(
                "metric.pck_radius: these data have several instances per landmark, scored by "
                "matching; use metric.match_radius for the matching radius"
            )
        for key in ("pck_radius", "match_radius"):
            if key in given and not float(given[key]) > 0:
                raise ValueError(
                    f"metric.{key}: {given[key]!r} must be a positive number of pixels"
                )
        return cls(
            pck_radius=float(given.get("pck_radius", default)),
            match_radius=float(given.get("match_radius", default)),
            normalizer=normalizer,
        )


def keypoints_task(
    name: str, profiles: Mapping[str, TaskProfile], layout: DataLayout, options: Mapping[str, Any]
) -> Keypoints:
    """The task for data of `layout`, scored as the grid's `options` say."""
    metric = MetricOptions.of(options, layout)
    if layout.multi_instance:
        return Keypoints(
            name=name,
            profiles=profiles,
            layout=layout,
            metric=metric,
            validation_metric="val_error",
            summary_metrics=(
                "test_f1",
                "test_precision",
                "test_recall",
                "test_distance",
                *Task.TRAINING_METRICS,
            ),
            headline_metric="test_f1",
            headline_higher_is_better=True,
            landmark_metric="test_f1/{landmark}",
        )
    with_nme = metric.normalizer is not None
    return Keypoints(
        name=name,
        profiles=profiles,
        layout=layout,
        metric=metric,
        validation_metric="val_nme" if with_nme else "val_distance",
        summary_metrics=(
            *(("test_nme",) if with_nme else ()),
            "test_distance",
            "test_distance_median",
            "test_pck",
            *Task.TRAINING_METRICS,
        ),
        headline_metric="test_nme" if with_nme else "test_distance",
        landmark_metric="test_distance/{landmark}",
    )


@dataclass(frozen=True)
class Keypoints(Task):
    layout: DataLayout = field(kw_only=True)
    metric: MetricOptions = field(kw_only=True)
    # `keypoints_task` sets these from the layout and the options
    validation_metric: str = "val_distance"
    summary_metrics: tuple[str, ...] = ()
    headline_metric: str = "test_distance"

    def decode(self, heatmaps: Tensor) -> Tensor:
        return (
            decode_instances(heatmaps) if self.layout.multi_instance else super().decode(heatmaps)
        )

    def validate(self, points: Tensor, split: Split, dataset: LandmarkDataset) -> dict[str, float]:
        pred, true = in_reference_frame(points, split, dataset)
        if self.layout.multi_instance:
            return detection_validation(self._detections(pred, true, split)[0])
        summary = distance_summary(point_error(pred, true), "val")
        metrics = {key: summary[key] for key in ("val_distance", "val_distance_median")}
        if self.metric.normalizer is not None:
            metrics["val_nme"] = percent(float(self._nme(pred, true).nanmean()))
        return metrics

    def test(
        self, points: Tensor, split: Split, dataset: LandmarkDataset
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        pred, true = in_reference_frame(points, split, dataset)
        groups = landmark_group(dataset)
        if self.layout.multi_instance:
            pooled, per_class = self._detections(pred, true, split)
            metrics = {f"test_{key}": value for key, value in pooled.items()}
            rows = []
            for k, name in enumerate(dataset.landmark_names):
                scores = pooled_detections([per_class[k]])
                metrics.update({f"test_{key}/{name}": value for key, value in scores.items()})
                rows.append(
                    {
                        "landmark": name,
                        "group": groups[k],
                        "precision": scores["precision"],
                        "recall": scores["recall"],
                        "f1": scores["f1"],
                        "mean_distance": scores["distance"],
                    }
                )
            return metrics, rows
        errors = point_error(pred, true)
        metrics = distance_summary(errors, "test")
        metrics["test_pck"] = within_rate(errors, self.metric.pck_radius)
        if self.metric.normalizer is not None:
            metrics["test_nme"] = percent(float(self._nme(pred, true).nanmean()))
        rows = []
        for k, name in enumerate(dataset.landmark_names):
            column = errors[:, k]
            labelled = column[~torch.isnan(column)]
            mean = float(labelled.double().mean()) if labelled.numel() else math.nan
            median = float(labelled.double().median()) if labelled.numel() else math.nan
            pck = within_rate(column, self.metric.pck_radius)
            metrics[f"test_distance/{name}"] = mean
            metrics[f"test_pck/{name}"] = pck
            rows.append(
                {
                    "landmark": name,
                    "group": groups[k],
                    "mean_distance": mean,
                    "median_distance": median,
                    "pck": pck,
                }
            )
        return metrics, rows

    def _nme(self, pred: Tensor, true: Tensor) -> Tensor:
        assert self.metric.normalizer is not None
        return nme(pred, true, normalizer=self.metric.normalizer)

    def _detections(
        self, pred: Tensor, true: Tensor, split: Split
    ) -> tuple[dict[str, float], list[dict[str, float]]]:
        frames = split.subset_indices("full")
        per_class = [
            class_detections(pred, true, k, frames, self.metric.match_radius)
            for k in range(pred.shape[1])
        ]
        return pooled_detections(per_class), per_class
