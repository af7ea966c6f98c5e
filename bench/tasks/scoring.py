"""Scoring shared by the tasks: point distances for one instance per landmark, peak decoding and
radius-gated detection scores for several.

Every function takes points already in the frame where errors are reported (reference pixels,
`bench.tasks.base.in_reference_frame`) unless its docstring says heatmap pixels.

Peak decoding (`decode_instances`) is specified at the paper's EndoVis heatmaps (288 x 360) and
scaled with the heatmap width: peaks at least 10 px apart (at 360 px), above 0.5 (half of a
target's peak) after a 3 x 3 median filter. decode_peaks' default 7 x 7 median is not used: it
lowers the peak of a Gaussian of sigma s to exp(-(7 / sqrt(2 pi))^2 / (2 s^2)), which falls below
0.5 for s < 2.4 px, so narrow targets (where Adaloss ends) would decode to nothing. At 80 px
(EndoVis quick) the median shrinks to 1 x 1 (none) and the spacing to 2 px.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from adaloss.decode import decode_peaks
from adaloss.metrics import detection_scores
from bench.tasks.base import percent

PEAK_THRESHOLD = 0.5  # half of a target's peak
PAPER_HEATMAP_WIDTH = 360  # EndoVis heatmaps in the paper, where the peak spacing is specified
PAPER_MEDIAN_SIZE = 3
PAPER_MIN_DISTANCE = 10


def distance_summary(errors: Tensor, prefix: str, within: Sequence[float] = ()) -> dict[str, float]:
    """Mean, median and 90th percentile of the finite errors, and for each radius r of `within`
    the rate (%) of errors <= r as "<prefix>_within_<r>px"."""
    values = errors[~torch.isnan(errors)].double()
    if values.numel() == 0:
        raise ValueError(f"{prefix}: no labelled landmark to score")
    summary = {
        f"{prefix}_distance": float(values.mean()),
        f"{prefix}_distance_median": float(values.median()),
        f"{prefix}_distance_p90": float(torch.quantile(values, 0.9)),
    }
    for radius in within:
        summary[f"{prefix}_within_{radius:g}px"] = within_rate(values, radius)
    return summary


def within_rate(errors: Tensor, radius: float) -> float:
    """% of the finite errors that are <= radius (PCK at that radius); NaN when none is finite."""
    values = errors[~torch.isnan(errors)]
    if values.numel() == 0:
        return math.nan
    return percent(float((values <= radius).double().mean()))


def peak_settings(heatmap_width: int) -> tuple[int, int]:
    """(median_size, min_distance) for heatmaps `heatmap_width` px wide, scaled from the paper's
    360 px; the median size stays odd and both stay >= 1."""
    scale = heatmap_width / PAPER_HEATMAP_WIDTH
    median_size = 2 * round((PAPER_MEDIAN_SIZE * scale - 1) / 2) + 1
    return max(1, median_size), max(1, round(PAPER_MIN_DISTANCE * scale))


def decode_instances(heatmaps: Tensor) -> Tensor:
    """(B, K, H, W) heatmaps -> (B, K, M, 2) peaks in heatmap pixels, NaN-padded: every peak above
    PEAK_THRESHOLD after the scaled median filter, at least the scaled spacing apart."""
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


def pad_instances(found: Sequence[Sequence[np.ndarray]]) -> Tensor:
    """Per image, per landmark (n, 2) arrays -> (B, K, M, 2) float32, NaN-padded, M >= 1."""
    instances = max([1, *(len(points) for per_image in found for points in per_image)])
    padded = torch.full((len(found), len(found[0]), instances, 2), math.nan)
    for b, per_image in enumerate(found):
        for k, points in enumerate(per_image):
            padded[b, k, : len(points)] = torch.from_numpy(points).float()
    return padded


def class_detections(
    pred: Tensor, true: Tensor, landmark: int, indices: Tensor, radius: float
) -> dict[str, float]:
    """detection_scores of one landmark class over the images `indices` of (N, K, M, 2) points."""
    frames = indices.tolist()
    return detection_scores(
        [pred[i, landmark].numpy() for i in frames],
        [true[i, landmark].numpy() for i in frames],
        radius=radius,
    )


def f1_score(tp: float, fp: float, fn: float) -> float:
    """2 TP / (2 TP + FP + FN); 1 when there is nothing to find and nothing was found."""
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 1.0


def pooled_detections(scores: Sequence[dict[str, float]]) -> dict[str, float]:
    """Precision, recall, F1 (%) and true-positive distance pooled over several classes'
    detection_scores (sums of TP, FP, FN; the distance weighted by each class's TP)."""
    tp, fp, fn = (sum(s[key] for s in scores) for key in ("tp", "fp", "fn"))
    distance_sum = sum(s["mean_distance"] * s["tp"] for s in scores if s["tp"])
    return {
        "precision": percent(tp / (tp + fp)) if tp + fp else math.nan,
        "recall": percent(tp / (tp + fn)) if tp + fn else math.nan,
        "f1": percent(f1_score(tp, fp, fn)),
        "distance": distance_sum / tp if tp else math.nan,
    }


def detection_validation(pooled: dict[str, float]) -> dict[str, float]:
    """The per-epoch metrics of a multi-instance task from `pooled_detections`: "val_error"
    (1 - F1, lower is better), "val_precision", "val_recall" (%) and "val_distance"."""
    return {
        "val_error": 1.0 - pooled["f1"] / 100.0,
        "val_precision": pooled["precision"],
        "val_recall": pooled["recall"],
        "val_distance": pooled["distance"],
    }
