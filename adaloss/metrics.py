"""Evaluation metrics (docs/design.md): point error, NME, failure rate, AUC, detection matching,
NTV.

NaN coordinates mark missing landmarks or absent instances; they count in no metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

FACE_LANDMARKS = 68
OUTER_EYE_CORNERS = (36, 45)
"""0-based indices of the outer eye corners in the 68-point 300-W layout."""
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)


def point_error(pred: Tensor, target: Tensor) -> Tensor:
    """Euclidean distance per point: (..., 2|3), (..., 2|3) -> (...); NaN where either is NaN."""
    if pred.shape != target.shape or pred.shape[-1:] not in ((2,), (3,)):
        raise ValueError(
            "point_error: pred and target must have the same shape (..., 2) or (..., 3), got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    distance: Tensor = torch.linalg.vector_norm(pred - target, dim=-1)
    return distance


def _normalizer_distance(target: Tensor, normalizer: str | tuple[int, int]) -> Tensor:
    """(B, K, 2) ground truth -> (B,) normalising distance d."""
    k = target.shape[1]
    if isinstance(normalizer, tuple):
        i, j = normalizer
        if not (0 <= i < k and 0 <= j < k) or i == j:
            raise ValueError(
                f"nme: normalizer {normalizer} must be two different landmark indices in [0, {k})"
            )
        return point_error(target[:, i], target[:, j])
    if normalizer not in ("inter-ocular", "inter-pupil"):
        raise ValueError(
            f"nme: normalizer must be 'inter-ocular', 'inter-pupil' or (i, j), got {normalizer!r}"
        )
    if k != FACE_LANDMARKS:
        raise ValueError(
            f"nme: the {normalizer!r} normalizer needs the 68-point 300-W layout, got K={k}; "
            "pass normalizer=(i, j) for other layouts"
        )
    if normalizer == "inter-ocular":
        left, right = OUTER_EYE_CORNERS
        return point_error(target[:, left], target[:, right])
    return point_error(target[:, LEFT_EYE].mean(dim=1), target[:, RIGHT_EYE].mean(dim=1))


def nme(
    pred: Tensor, target: Tensor, *, normalizer: str | tuple[int, int] = "inter-ocular"
) -> Tensor:
    """Normalised mean error per image: (B, K, 2), (B, K, 2) -> (B,).

    Per image `mean_k ||p_k - g_k|| / d` over the landmarks whose ground truth is not NaN.
    d is `||g_36 - g_45||` ("inter-ocular", default), `||mean(g_36..41) - mean(g_42..47)||`
    ("inter-pupil"), or `||g_i - g_j||` for `normalizer=(i, j)` (0-based). An image with no
    usable landmark, or a NaN eye landmark under a named normaliser, gets NaN. The set value
    is the mean of the per-image values over all images of the set (concatenate the batches,
    then `.nanmean()`; x100 for the % of the paper's tables).
    """
    if pred.ndim != 3 or pred.shape != target.shape or pred.shape[-1] != 2:
        raise ValueError(
            "nme: pred and target must both be (B, K, 2), got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    d = _normalizer_distance(target, normalizer)
    if bool((d == 0).any()):
        image = int(torch.nonzero(d == 0)[0, 0])
        raise ValueError(f"nme: the normalising distance of image {image} is zero")
    errors = point_error(pred, target)
    labelled = ~torch.isnan(target).any(dim=-1)
    total = torch.where(labelled, errors, torch.zeros_like(errors)).sum(dim=1)
    count = labelled.sum(dim=1)
    mean_error = torch.where(count > 0, total / count.clamp(min=1), math.nan)
    return mean_error / d


def _error_values(name: str, values: ArrayLike | Tensor) -> NDArray[np.float64]:
    """Per-image errors as a 1-D float64 array without NaN; raises when empty or negative."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    array = array[~np.isnan(array)]
    if array.size == 0:
        raise ValueError(f"{name}: no non-NaN error values to summarise")
    if bool((array < 0).any()):
        raise ValueError(f"{name}: error values must be >= 0, got min {array.min()}")
    return array


def failure_rate(nme_values: ArrayLike | Tensor, threshold: float = 0.08) -> float:
    """Share of images with NME > threshold: (N,) -> float in [0, 1]; NaN entries ignored."""
    errors = _error_values("failure_rate", nme_values)
    return float(np.mean(errors > threshold))


def auc(nme_values: ArrayLike | Tensor, threshold: float = 0.08) -> float:
    """Area under the cumulative error distribution on [0, threshold], divided by threshold.

    (N,) -> float in [0, 1]; NaN entries ignored. The CED is the step function
    F(e) = #{i : e_i <= e} / N, so the integral is exact: each image contributes
    `max(0, threshold - e_i)`, and AUC = mean_i max(0, 1 - e_i / threshold).
    """
    if not threshold > 0:
        raise ValueError(f"auc: threshold must be > 0, got {threshold!r}")
    errors = _error_values("auc", nme_values)
    return float(np.mean(np.clip(1.0 - errors / threshold, 0.0, None)))


def _finite_rows(
    name: str, points: ArrayLike | Tensor
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """(N, D) points -> (the rows without NaN, their original indices)."""
    if isinstance(points, Tensor):
        points = points.detach().cpu().numpy()
    array = np.asarray(points, dtype=np.float64)
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, 2)
    if array.ndim != 2 or array.shape[1] not in (2, 3):
        raise ValueError(f"match_points: {name} must be (N, 2) or (N, 3), got {array.shape}")
    keep = np.flatnonzero(~np.isnan(array).any(axis=1))
    return array[keep], keep


def match_points(
    pred: ArrayLike | Tensor, true: ArrayLike | Tensor, radius: float
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """One-to-one matching of predictions to ground truth within `radius`.

    pred (P, 2|3), true (T, 2|3) -> (pairs (M, 2) int64 rows of [pred index, true index],
    distances (M,)). Rows with NaN are ignored (indices refer to the input rows). Among all
    one-to-one matchings that use only pairs at distance <= radius, the result has the most
    pairs and, among those, the smallest total distance.

    Why one assignment problem does both: the Hungarian solver assigns exactly
    n = min(P, T) pairs. Admissible pairs cost their distance, inadmissible ones cost
    BIG = n * (largest admissible distance) + 1. An assignment with m admissible pairs costs
    S + (n - m) * BIG with 0 <= S < BIG, so more admissible pairs always cost less, and equal
    counts are ordered by S. Every admissible matching extends to a full assignment, and a
    maximum one gains no admissible pair by extension, so dropping the inadmissible pairs of
    the optimum leaves a maximum admissible matching of least total distance.
    """
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"match_points: radius must be a finite number > 0, got {radius!r}")
    pred_rows, pred_index = _finite_rows("pred", pred)
    true_rows, true_index = _finite_rows("true", true)
    if pred_rows.shape[1] != true_rows.shape[1]:
        raise ValueError(
            f"match_points: pred has {pred_rows.shape[1]} coordinates, true {true_rows.shape[1]}"
        )
    distance = np.linalg.norm(pred_rows[:, None, :] - true_rows[None, :, :], axis=-1)
    admissible = distance <= radius
    if not admissible.any():
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float64)
    n = min(distance.shape)
    big = n * float(distance[admissible].max()) + 1.0
    rows, cols = linear_sum_assignment(np.where(admissible, distance, big))
    kept = admissible[rows, cols]
    rows, cols = rows[kept], cols[kept]
    pairs = np.stack([pred_index[rows], true_index[cols]], axis=1).astype(np.int64)
    return pairs, distance[rows, cols]


def detection_scores(
    pred_list: Sequence[ArrayLike | Tensor],
    true_list: Sequence[ArrayLike | Tensor],
    radius: float,
) -> dict[str, float]:
    """Micro-averaged detection scores over frames (one landmark class).

    pred_list[f] (P_f, 2), true_list[f] (T_f, 2): one entry per frame, NaN rows ignored.
    Matched pairs (`match_points`) are true positives, unmatched predictions false positives,
    unmatched ground truth false negatives. Returns {"precision", "recall", "mean_distance",
    "tp", "fp", "fn"}; precision is NaN without predictions, recall without ground truth,
    mean_distance (over true positives) without true positives.
    """
    if len(pred_list) != len(true_list):
        raise ValueError(
            f"detection_scores: {len(pred_list)} prediction frames but {len(true_list)} "
            "ground-truth frames"
        )
    tp = fp = fn = 0
    distance_sum = 0.0
    for pred, true in zip(pred_list, true_list, strict=True):
        n_pred = len(_finite_rows("pred", pred)[1])
        n_true = len(_finite_rows("true", true)[1])
        _, distances = match_points(pred, true, radius)
        tp += len(distances)
        fp += n_pred - len(distances)
        fn += n_true - len(distances)
        distance_sum += float(distances.sum())
    return {
        "precision": tp / (tp + fp) if tp + fp else math.nan,
        "recall": tp / (tp + fn) if tp + fn else math.nan,
        "mean_distance": distance_sum / tp if tp else math.nan,
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def ntv(weight: Tensor) -> float:
    """Normalised total variation (Ruderman et al. 2018) of a conv weight.

    weight (c_out, c_in, kh, kw) (or more spatial axes) -> TV / sum |W|, where TV sums the
    absolute differences of neighbours along every spatial axis, without wrap-around, over all
    channels. NaN for an all-zero weight, whose NTV is undefined.
    """
    if weight.ndim < 4:
        raise ValueError(
            f"ntv: weight must be (c_out, c_in, kh, kw), got shape {tuple(weight.shape)}"
        )
    w = weight.detach().to(torch.float64)
    tv = sum(float(w.diff(dim=axis).abs().sum()) for axis in range(2, w.ndim))
    mass = float(w.abs().sum())
    return tv / mass if mass > 0 else math.nan


def model_ntv(model: nn.Module) -> dict[str, float]:
    """NTV of a model's conv layers: {"all": mean over layers, "last": the last layer}.

    Counts nn.Conv2d / nn.Conv3d layers whose kernel is at least 2 on every axis, in module
    order; 1x1 convs have no spatial structure. Transposed convs are left out: their kernels
    scatter to disjoint output pixels at the usual stride, so neighbouring taps are not
    neighbouring filter responses.
    """
    values = [
        ntv(module.weight)
        for module in model.modules()
        if isinstance(module, nn.Conv2d | nn.Conv3d) and min(module.kernel_size) >= 2
    ]
    if not values:
        raise ValueError(
            f"model_ntv: {type(model).__name__} has no Conv2d/Conv3d layer with a kernel of "
            "at least 2x2"
        )
    return {"all": float(np.mean(values)), "last": values[-1]}
