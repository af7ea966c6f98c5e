"""Metrics against hand examples, closed forms and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from torch import nn

from adaloss.metrics import (
    auc,
    detection_scores,
    failure_rate,
    match_points,
    model_ntv,
    nme,
    ntv,
    point_error,
)

# ---------------------------------------------------------------- point error and NME


def test_point_error_two_and_three_dimensions() -> None:
    pred = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    target = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(point_error(pred, target), torch.tensor([5.0, 0.0]))
    torch.testing.assert_close(
        point_error(torch.tensor([1.0, 2.0, 2.0]), torch.zeros(3)), torch.tensor(3.0)
    )


def test_point_error_nan_target_gives_nan() -> None:
    error = point_error(torch.zeros(2, 2), torch.tensor([[math.nan, 0.0], [0.0, 1.0]]))
    assert math.isnan(error[0].item())
    assert error[1].item() == 1.0


def test_point_error_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(3, 2\) and \(3, 3\)"):
        point_error(torch.zeros(3, 2), torch.zeros(3, 3))


def face_example() -> tuple[torch.Tensor, torch.Tensor]:
    """Two images of 68 points g_k = (k, 0), except g_45 = (45, 12), with hand-placed errors.

    Inter-ocular d = |(45, 12) - (36, 0)| = sqrt(81 + 144) = 15. Inter-pupil: the mean of
    36..41 is (38.5, 0), of 42..47 (44.5, 12/6 = 2), so d = sqrt(36 + 4) = sqrt(40).
    Image 0: landmark 0 off by (3, 4) (error 5), landmark 1 off by (0, 1) (error 1): mean
    error 6/68. Image 1: the same errors, and landmark 2 unlabelled (NaN) with a wild
    prediction, so the mean runs over 67 landmarks: 6/67.
    """
    target = torch.zeros(2, 68, 2, dtype=torch.float64)
    target[:, :, 0] = torch.arange(68, dtype=torch.float64)
    target[:, 45, 1] = 12.0
    pred = target.clone()
    pred[:, 0] += torch.tensor([3.0, 4.0], dtype=torch.float64)
    pred[:, 1, 1] += 1.0
    target[1, 2] = math.nan
    pred[1, 2] = torch.tensor([500.0, -300.0], dtype=torch.float64)
    return pred, target


def test_nme_is_nan_where_a_normalising_landmark_is_nan() -> None:
    pred, target = face_example()
    # image 1 loses an outer eye corner (36): its inter-ocular distance, and so its NME, is NaN;
    # image 0 keeps 6/68/15. Under (0, 1) the NaN corner is not a normaliser: 6/67/1 there.
    target[1, 36] = math.nan
    values = nme(pred, target)
    assert values[0].item() == pytest.approx(6 / 68 / 15) and math.isnan(values[1].item())
    pairs = nme(pred, target, normalizer=(0, 1))
    assert pairs.tolist() == pytest.approx([6 / 68 / 1, 6 / 66 / 1])  # 36 and 2 unlabelled
    target[0, 1] = math.nan  # now a normaliser of image 0 under (0, 1)
    pairs = nme(pred, target, normalizer=(0, 1))
    assert math.isnan(pairs[0].item()) and pairs[1].item() == pytest.approx(6 / 66)
    assert math.isnan(nme(pred, target, normalizer="inter-pupil")[1].item())


def test_nme_inter_ocular_hand_example() -> None:
    pred, target = face_example()
    expected = torch.tensor([6 / 68 / 15, 6 / 67 / 15], dtype=torch.float64)
    torch.testing.assert_close(nme(pred, target), expected)
    torch.testing.assert_close(nme(pred, target, normalizer="inter-ocular"), expected)


def test_nme_inter_pupil_hand_example() -> None:
    pred, target = face_example()
    d = math.sqrt(40)
    expected = torch.tensor([6 / 68 / d, 6 / 67 / d], dtype=torch.float64)
    torch.testing.assert_close(nme(pred, target, normalizer="inter-pupil"), expected)


def test_nme_custom_pair_and_other_layouts() -> None:
    target = torch.tensor([[[0.0, 0.0], [0.0, 2.0], [4.0, 0.0]]])
    pred = target + torch.tensor([[[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]])
    # errors 1, 0, 2 -> mean 1; d = |g_0 - g_2| = 4.
    torch.testing.assert_close(nme(pred, target, normalizer=(0, 2)), torch.tensor([0.25]))
    with pytest.raises(ValueError, match="68-point"):
        nme(pred, target)
    with pytest.raises(ValueError, match="normalizer"):
        nme(pred, target, normalizer="inter-canthal")
    with pytest.raises(ValueError, match="distance of image 0 is zero"):
        nme(pred, target.clone().fill_(1.0), normalizer=(0, 1))


# ---------------------------------------------------------------- failure rate and AUC


def test_failure_rate_hand_example() -> None:
    values = [0.01, 0.05, 0.08, 0.09, 0.2, math.nan]  # 0.08 is not > 0.08; NaN is ignored
    assert failure_rate(values) == pytest.approx(2 / 5)
    assert failure_rate(torch.tensor(values), threshold=0.1) == pytest.approx(1 / 5)


def test_auc_extremes() -> None:
    assert auc(np.zeros(7)) == 1.0
    assert auc([0.081, 0.5, 3.0]) == 0.0


def test_auc_hand_integrated_mixed_case() -> None:
    # Errors 0, 0.02, 0.04, 0.1 with threshold 0.08: the CED is 1/4 on [0, 0.02), 2/4 on
    # [0.02, 0.04), 3/4 on [0.04, 0.08]: area 0.02/4 + 0.02/2 + 0.04 * 3/4 = 0.045 -> / 0.08.
    assert auc([0.0, 0.02, 0.04, 0.1]) == pytest.approx(0.045 / 0.08)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 0.2), min_size=1, max_size=20))
def test_auc_matches_a_riemann_sum_of_the_empirical_cdf(errors: list[float]) -> None:
    threshold, n_grid = 0.08, 200_000
    grid = (np.arange(n_grid) + 0.5) * threshold / n_grid
    cdf = (np.asarray(errors)[None, :] <= grid[:, None]).mean(axis=1)
    # Midpoint rule on a step function: each jump costs at most one cell of width T/n_grid.
    assert auc(errors, threshold) == pytest.approx(cdf.mean(), abs=len(errors) / n_grid + 1e-12)


def test_summaries_reject_empty_and_negative_values() -> None:
    with pytest.raises(ValueError, match="no non-NaN"):
        auc([math.nan])
    with pytest.raises(ValueError, match=">= 0"):
        failure_rate([-0.1, 0.2])


# ---------------------------------------------------------------- matching


def brute_force_matching(pred: np.ndarray, true: np.ndarray, radius: float) -> tuple[int, float]:
    """(most pairs within radius, least total distance among those) over every one-to-one map."""
    pred_ok = [i for i in range(len(pred)) if not np.isnan(pred[i]).any()]
    true_ok = [j for j in range(len(true)) if not np.isnan(true[j]).any()]
    best = (0, 0.0)
    # Each usable prediction takes one unused true point or None.
    for choice in itertools.product([None, *true_ok], repeat=len(pred_ok)):
        used = [j for j in choice if j is not None]
        if len(used) != len(set(used)):
            continue
        dists = [
            float(np.linalg.norm(pred[i] - true[j]))
            for i, j in zip(pred_ok, choice, strict=True)
            if j is not None
        ]
        if any(d > radius for d in dists):
            continue
        candidate = (len(dists), sum(dists))
        if candidate[0] > best[0] or (candidate[0] == best[0] and candidate[1] < best[1]):
            best = candidate
    return best


# A small field makes radius conflicts (one prediction near two truths) common.
coordinate = st.one_of(st.integers(0, 12).map(float), st.just(math.nan))
point_sets = st.lists(st.tuples(coordinate, st.integers(0, 12).map(float)), max_size=4)


@settings(max_examples=200, deadline=None)
@given(pred=point_sets, true=point_sets, radius=st.sampled_from([2.0, 4.0, 7.0]))
def test_match_points_agrees_with_brute_force(
    pred: list[tuple[float, float]], true: list[tuple[float, float]], radius: float
) -> None:
    pred_a = np.array(pred, dtype=np.float64).reshape(-1, 2)
    true_a = np.array(true, dtype=np.float64).reshape(-1, 2)
    pairs, distances = match_points(pred_a, true_a, radius)
    count, total = brute_force_matching(pred_a, true_a, radius)
    assert len(pairs) == count
    assert distances.sum() == pytest.approx(total, abs=1e-9)
    assert pairs.dtype == np.int64 and pairs.shape == (count, 2)
    assert len(set(pairs[:, 0])) == count and len(set(pairs[:, 1])) == count
    for (i, j), d in zip(pairs, distances, strict=True):
        assert d == pytest.approx(np.linalg.norm(pred_a[i] - true_a[j]))
        assert d <= radius


def test_far_false_positive_does_not_steal_a_true_positive() -> None:
    # T0 = (0, 0), T1 = (40, 0); P0 = (19, 0) is 19 from T0 and 21 from T1, P1 = (-30, 0) is
    # 30 and 70 away. Raw-distance matching prefers P0-T1 + P1-T0 (21 + 30 = 51 < 19 + 70),
    # and the radius check then drops both pairs; radius-aware matching keeps P0-T0.
    pred = np.array([[19.0, 0.0], [-30.0, 0.0]])
    true = np.array([[0.0, 0.0], [40.0, 0.0]])
    raw = np.linalg.norm(pred[:, None] - true[None], axis=-1)
    rows, cols = linear_sum_assignment(raw)
    assert (raw[rows, cols] <= 20).sum() == 0  # the naive method really loses it
    pairs, distances = match_points(pred, true, 20.0)
    np.testing.assert_array_equal(pairs, [[0, 0]])
    np.testing.assert_allclose(distances, [19.0])


def test_match_points_prefers_more_pairs_to_shorter_ones() -> None:
    # T0 = (0, 0), T1 = (4, 0); P0 = (1, 0) is 1 from T0 and 3 from T1, P1 = (-2, 0) is 2 from
    # T0 and 6 from T1; radius 3.5. P0-T0 alone (total 1) is shorter, but P0-T1 + P1-T0 (total
    # 3 + 2 = 5) has two pairs, and the count comes first.
    pairs, distances = match_points([[1.0, 0.0], [-2.0, 0.0]], [[0.0, 0.0], [4.0, 0.0]], 3.5)
    np.testing.assert_array_equal(pairs, [[0, 1], [1, 0]])
    np.testing.assert_allclose(distances, [3.0, 2.0])


def test_match_points_empty_and_nan_rows() -> None:
    pairs, distances = match_points(np.zeros((0, 2)), np.array([[1.0, 1.0]]), 5.0)
    assert pairs.shape == (0, 2) and distances.shape == (0,)
    pred = np.array([[math.nan, math.nan], [1.0, 1.0]])
    pairs, distances = match_points(pred, torch.tensor([[1.0, 4.0]]), 5.0)
    np.testing.assert_array_equal(pairs, [[1, 0]])
    np.testing.assert_allclose(distances, [3.0])
    with pytest.raises(ValueError, match="radius"):
        match_points(pred, pred, 0.0)


def test_detection_scores_hand_example() -> None:
    frames_pred = [
        np.array([[19.0, 0.0], [-30.0, 0.0]]),  # 1 TP at 19, 1 FP
        np.array([[0.0, 0.0]]),  # 1 TP at 5
        np.zeros((0, 2)),  # nothing predicted
        np.array([[5.0, 5.0]]),  # 1 FP
    ]
    frames_true = [
        np.array([[0.0, 0.0], [40.0, 0.0]]),  # the second is a FN
        np.array([[3.0, 4.0], [math.nan, math.nan]]),  # the NaN row counts nowhere
        np.array([[1.0, 1.0]]),  # 1 FN
        np.zeros((0, 2)),
    ]
    scores = detection_scores(frames_pred, frames_true, 20.0)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 2, 2)
    assert scores["precision"] == pytest.approx(0.5)
    assert scores["recall"] == pytest.approx(0.5)
    assert scores["mean_distance"] == pytest.approx((19 + 5) / 2)


def test_detection_scores_undefined_ratios_are_nan() -> None:
    scores = detection_scores([np.zeros((0, 2))], [np.zeros((0, 2))], 20.0)
    assert math.isnan(scores["precision"]) and math.isnan(scores["recall"])
    assert math.isnan(scores["mean_distance"])
    with pytest.raises(ValueError, match="2 prediction frames but 1"):
        detection_scores([np.zeros((0, 2))] * 2, [np.zeros((0, 2))], 20.0)


# ---------------------------------------------------------------- NTV


def test_ntv_constant_kernel_is_zero() -> None:
    assert ntv(torch.full((4, 3, 5, 5), -0.7)) == 0.0


def test_ntv_centre_delta_is_four() -> None:
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 1, 1] = 1.0
    assert ntv(weight) == pytest.approx(4.0)


def test_ntv_hand_kernel_has_no_wrap_around() -> None:
    # [[1, 2], [3, 4]]: vertical |1-3| + |2-4| = 4, horizontal |1-2| + |3-4| = 2; sum |W| = 10.
    weight = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert ntv(weight) == pytest.approx(0.6)


def test_ntv_sums_over_channels_before_dividing() -> None:
    # A delta channel (TV 4, mass 1) and a constant-1 channel (TV 0, mass 9): 4 / 10, not the
    # mean of per-channel ratios (4 + 0) / 2.
    weight = torch.zeros(2, 1, 3, 3)
    weight[0, 0, 1, 1] = 1.0
    weight[1] = 1.0
    assert ntv(weight) == pytest.approx(0.4)


def test_ntv_of_iid_normal_weights() -> None:
    # Per k x k kernel (k = 3): A = sum of 2k(k-1) = 12 |neighbour differences|, B = sum of 9
    # |w|. a - b ~ N(0, 2), so E|a - b| = 2/sqrt(pi); E|w| = sqrt(2/pi); the ratio of means is
    # 12 * 2/sqrt(pi) / (9 sqrt(2/pi)) = 2 sqrt(2) (k-1)/k = 1.8856.
    # Tolerance (delta method over n independent kernels): Var(NTV) ~ Var(A - R B) / (n E[B]^2)
    # with sd(A) <= 12 sd|a-b| = 12 sqrt(2 (1 - 2/pi)) = 10.23, sd(B) = 3 sqrt(1 - 2/pi) = 1.81,
    # so sd(A - R B) <= 10.23 + 1.8856 * 1.81 = 13.64 and E[B]^2 = 81 * 2/pi = 51.6:
    # sd(NTV) <= sqrt(186 / (51.6 n)) = 0.0074 for n = 256 * 256; 5 sd = 0.037.
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(256, 256, 3, 3, generator=generator)
    assert ntv(weight) == pytest.approx(2 * math.sqrt(2) * 2 / 3, abs=0.037)


def test_ntv_of_all_zero_weight_is_nan() -> None:
    assert math.isnan(ntv(torch.zeros(1, 1, 3, 3)))


def conv_with(weight: list[list[float]], transposed: bool = False) -> nn.Module:
    k = len(weight)
    layer = (nn.ConvTranspose2d if transposed else nn.Conv2d)(1, 1, k, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight).reshape(1, 1, k, k))
    return layer


def test_model_ntv_on_known_kernels() -> None:
    delta = [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]  # NTV 4
    model = nn.Sequential(
        conv_with(delta),
        nn.ReLU(),
        nn.Sequential(conv_with([[2.0]]), conv_with(delta, transposed=True)),  # both skipped
        conv_with([[1.0, 2.0], [3.0, 4.0]]),  # NTV 0.6
    )
    assert model_ntv(model) == pytest.approx({"all": (4.0 + 0.6) / 2, "last": 0.6})


def test_model_ntv_without_spatial_convs_raises() -> None:
    with pytest.raises(ValueError, match="no Conv2d/Conv3d layer"):
        model_ntv(nn.Sequential(nn.Linear(3, 3), conv_with([[1.0]])))
