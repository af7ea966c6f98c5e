"""The `keypoints` task's metrics on hand-made points whose scores are worked out by hand.

Points are given in pixels of the stored images; the task reports in the reference frame with
`x_ref = (u + 0.5) * W_ref / W - 0.5`, so a shift of d stored pixels is d * W_ref / W reference
pixels (the +-0.5 cancels in every difference).
"""

from __future__ import annotations

import math

import pytest
import torch

from bench.data.dataset import LandmarkDataset, Split
from bench.data.layout import DataLayout
from bench.tasks import get_task
from bench.tasks.base import Task
from bench.tasks.keypoints import MetricOptions

nan = math.nan
TRAINING = ("ntv_all", "ntv_last", "sigma_final_mean")


def dataset_of(
    points: torch.Tensor,
    image_size: tuple[int, int],
    reference_size: tuple[int, int],
    names: tuple[str, ...],
    frames: torch.Tensor | None = None,
) -> LandmarkDataset:
    """A dataset whose every split is `points` on blank grey images, all landmarks one group."""
    split = Split(torch.zeros(len(points), 1, *image_size), points, frames=frames)
    return LandmarkDataset(
        task="keypoints",
        variant="hand",
        landmark_names=names,
        landmark_groups={"body": tuple(range(len(names)))},
        splits={"train": split, "val": split, "test": split},
        reference_size=reference_size,
    )


def task_for(data: LandmarkDataset, metric: dict[str, object] | None = None) -> Task:
    return get_task("keypoints", data.layout, {"metric": metric} if metric is not None else {})


def layout(reference_size: tuple[int, int], multi_instance: bool) -> DataLayout:
    """A grey layout of the landmarks "nose" and "tail"."""
    return DataLayout(
        ("nose", "tail"), {"nose": (0,), "tail": (1,)}, reference_size, 1, multi_instance
    )


# --- one instance per landmark ---------------------------------------------------------------

# 32 x 32 stored images of a 64 x 64 frame: one stored pixel is 2 reference pixels.
SINGLE_TRUE = torch.tensor(
    [
        [[10.0, 10.0], [20.0, 5.0]],
        [[4.0, 4.0], [nan, nan]],  # tail not labelled
        [[8.0, 16.0], [16.0, 8.0]],
    ]
)
SINGLE_PRED = torch.tensor(
    [
        [[11.0, 10.0], [20.0, 6.5]],  # shifts 1 and 1.5 stored px -> 2 and 3 reference px
        [[5.5, 6.0], [30.0, 30.0]],  # (1.5, 2) -> 2.5 -> 5; the tail has no truth: no error
        [[8.0, 16.0], [19.0, 12.0]],  # 0; (3, 4) -> 5 -> 10
    ]
)
# Errors (reference px): nose 2, 5, 0; tail 3, 10. Pooled, sorted: 0, 2, 3, 5, 10.


def test_single_instance_distances_pck_and_rows_by_hand() -> None:
    data = dataset_of(SINGLE_TRUE, (32, 32), (64, 64), ("nose", "tail"))
    task = task_for(data, {"pck_radius": 4})
    split = data.split("test")

    metrics, rows = task.test(SINGLE_PRED, split, data)
    # the unlabelled tail of image 1 counts in nothing: 5 errors, not 6
    assert metrics["test_distance"] == pytest.approx(20 / 5)
    assert metrics["test_distance_median"] == pytest.approx(3.0)  # middle of five
    # torch.quantile interpolates: position 0.9 * 4 = 3.6 -> 5 + 0.6 * (10 - 5)
    assert metrics["test_distance_p90"] == pytest.approx(8.0)
    assert metrics["test_pck"] == pytest.approx(60.0)  # 0, 2, 3 <= 4 of five
    assert metrics["test_distance/nose"] == pytest.approx(7 / 3)
    assert metrics["test_distance/tail"] == pytest.approx(6.5)
    assert metrics["test_pck/nose"] == pytest.approx(200 / 3)  # 2 and 0 of 2, 5, 0
    assert metrics["test_pck/tail"] == pytest.approx(50.0)  # 3 of 3, 10
    assert "test_nme" not in metrics
    assert rows == [
        {
            "landmark": "nose",
            "group": "body",
            "mean_distance": pytest.approx(7 / 3),
            "median_distance": pytest.approx(2.0),
            "pck": pytest.approx(200 / 3),
        },
        {
            "landmark": "tail",
            "group": "body",
            "mean_distance": pytest.approx(6.5),
            "median_distance": pytest.approx(3.0),  # torch: the lower middle of 3, 10
            "pck": pytest.approx(50.0),
        },
    ]

    val = task.validate(SINGLE_PRED, split, data)
    assert val == {"val_distance": pytest.approx(4.0), "val_distance_median": pytest.approx(3.0)}
    assert task.validate(SINGLE_TRUE.clone(), split, data) == {
        "val_distance": 0.0,
        "val_distance_median": 0.0,
    }


def test_pck_counts_an_error_at_the_radius() -> None:
    data = dataset_of(SINGLE_TRUE, (32, 32), (64, 64), ("nose", "tail"))
    metrics, _ = task_for(data, {"pck_radius": 5.0}).test(SINGLE_PRED, data.split("test"), data)
    # 5 is exact in binary: (1.5, 2) stored px -> (3, 4) reference px
    assert metrics["test_pck"] == pytest.approx(80.0)  # all but 10
    assert metrics["test_pck/nose"] == pytest.approx(100.0)


def test_default_radius_is_five_percent_of_the_longer_reference_side() -> None:
    # 24 x 40 stored of a 48 x 80 frame (2 reference px a stored px); 0.05 * 80 = 4 px
    true = torch.tensor([[[10.0, 10.0]], [[20.0, 12.0]]])
    pred = torch.tensor([[[12.0, 10.0]], [[20.0, 14.25]]])  # 2 -> 4 px (in); 2.25 -> 4.5 (out)
    data = dataset_of(true, (24, 40), (48, 80), ("tip",))
    task = task_for(data)
    assert task.metric.pck_radius == pytest.approx(4.0)
    metrics, _ = task.test(pred, data.split("test"), data)
    assert metrics["test_pck"] == pytest.approx(50.0)
    assert metrics["test_pck/tip"] == pytest.approx(50.0)
    assert metrics["test_distance"] == pytest.approx(4.25)
    # the match radius of multi-instance data has the same default
    assert MetricOptions.of({}, layout((48, 80), True)).match_radius == pytest.approx(4.0)


def test_nme_with_a_normaliser_by_hand() -> None:
    true = torch.tensor(
        [
            [[4.0, 4.0], [14.0, 4.0]],  # nose-tail 10 stored px = 20 reference px
            [[2.0, 2.0], [2.0, 22.0]],  # 20 stored px = 40 reference px
            [[nan, nan], [10.0, 10.0]],  # no nose: no normalising distance, no NME
        ]
    )
    pred = torch.tensor(
        [
            [[5.0, 4.0], [14.0, 6.0]],  # errors 2 and 4 px: mean 3 / 20 = 15 %
            [[2.0, 2.0], [5.0, 26.0]],  # errors 0 and (3, 4) -> 5 -> 10 px: mean 5 / 40 = 12.5 %
            [[0.0, 0.0], [10.0, 10.0]],
        ]
    )
    data = dataset_of(true, (32, 32), (64, 64), ("nose", "tail"))
    task = task_for(data, {"normalizer": [0, 1]})
    split = data.split("test")
    assert task.metric.normalizer == (0, 1)
    assert (task.headline_metric, task.validation_metric) == ("test_nme", "val_nme")
    assert task.summary_metrics == (
        "test_nme",
        "test_distance",
        "test_distance_median",
        "test_pck",
        *TRAINING,
    )

    metrics, _ = task.test(pred, split, data)
    # image 2 is left out of the mean (it would make it 27.5 / 3 if counted as 0)
    assert metrics["test_nme"] == pytest.approx((15.0 + 12.5) / 2)
    assert metrics["test_distance"] == pytest.approx((2 + 4 + 0 + 10 + 0) / 5)
    val = task.validate(pred, split, data)
    assert set(val) == {"val_distance", "val_distance_median", "val_nme"}
    assert val["val_nme"] == pytest.approx(13.75)

    plain = task_for(data)
    assert (plain.headline_metric, plain.validation_metric) == ("test_distance", "val_distance")
    assert not plain.headline_higher_is_better
    assert "test_nme" not in plain.summary_metrics
    assert "test_nme" not in plain.test(pred, split, data)[0]


def test_images_of_several_sizes_report_in_their_own_frames() -> None:
    # 16 x 16 stored; image 0 comes from 32 x 32 (2 px a stored px on both axes), image 1 from
    # 64 x 128 (H x W: 4 px a stored px down, 8 across)
    frames = torch.tensor([[32, 32], [64, 128]])
    true = torch.tensor([[[4.0, 4.0]], [[8.0, 8.0]]])
    # image 0: (1.5, 2) stored -> (3, 4) -> 5 px; image 1: (0.75, 2) -> (6, 8) -> 10 px
    pred = torch.tensor([[[5.5, 6.0]], [[8.75, 10.0]]])
    data = dataset_of(true, (16, 16), (32, 32), ("tip",), frames=frames)
    task = task_for(data)
    metrics, _ = task.test(pred, data.split("test"), data)
    # in the common 32 x 32 frame image 1 would be sqrt(1.5^2 + 4^2) = 4.27 px off
    assert metrics["test_distance"] == pytest.approx(7.5)
    assert metrics["test_distance_median"] == pytest.approx(5.0)  # lower middle of 5, 10
    assert task.validate(pred, data.split("test"), data)["val_distance"] == pytest.approx(7.5)


def test_several_instances_in_per_image_frames() -> None:
    # image 0 from 16 x 16 (1 px a stored px), image 1 from 64 x 128 (4 px down, 8 across)
    frames = torch.tensor([[16, 16], [64, 128]])
    true = torch.tensor([[[[4.0, 4.0], [nan, nan]]], [[[4.0, 4.0], [10.0, 10.0]]]])
    # image 0: 0.5 px down -> 0.5 px; image 1: 0.5 across -> 4 px (out of 3), 0.5 down -> 2 px
    pred = torch.tensor([[[[4.0, 4.5], [nan, nan]]], [[[4.5, 4.0], [10.0, 10.5]]]])
    data = dataset_of(true, (16, 16), (16, 16), ("tip",), frames=frames)
    metrics, _ = task_for(data, {"match_radius": 3}).test(pred, data.split("test"), data)
    # TP 2 (0.5, 2 px), FP 1, FN 1; in stored pixels all three would be 0.5 px hits
    assert metrics["test_precision"] == pytest.approx(200 / 3)
    assert metrics["test_recall"] == pytest.approx(200 / 3)
    assert metrics["test_distance"] == pytest.approx(1.25)


# --- several instances -----------------------------------------------------------------------

# 32 x 32 stored images of a 64 x 64 frame (2 reference px a stored px), (N=2, K=2, M=2, 2)
MULTI_TRUE = torch.tensor(
    [
        [[[5.0, 5.0], [20.0, 20.0]], [[10.0, 25.0], [28.0, 28.0]]],
        [[[8.0, 8.0], [nan, nan]], [[25.0, 10.0], [15.0, 15.0]]],
    ]
)
MULTI_PRED = torch.tensor(
    [
        # nose: 1.5 -> 3 px from (20, 20), 1 -> 2 px from (5, 5) (listed in the other order);
        # tail: (1.5, 2) -> 2.5 -> 5 px from (10, 25); (28, 28) is missed
        [[[20.0, 21.5], [5.0, 6.0]], [[11.5, 27.0], [nan, nan]]],
        # nose: exact hit and a far false positive; tail: 0.5 -> 1 px, (15, 15) missed
        [[[8.0, 8.0], [30.0, 2.0]], [[25.0, 10.5], [nan, nan]]],
    ]
)
# match_radius 6: nose TP 3 (3, 2, 0 px), FP 1, FN 0; tail TP 2 (5, 1 px), FP 0, FN 2.
# Pooled TP 5, FP 1, FN 2.


def test_several_instances_detection_scores_by_hand() -> None:
    data = dataset_of(MULTI_TRUE, (32, 32), (64, 64), ("nose", "tail"))
    task = task_for(data, {"match_radius": 6})
    split = data.split("test")
    assert (task.validation_metric, task.headline_metric) == ("val_error", "test_f1")
    assert task.headline_higher_is_better

    metrics, rows = task.test(MULTI_PRED, split, data)
    assert metrics["test_precision"] == pytest.approx(500 / 6)
    assert metrics["test_recall"] == pytest.approx(500 / 7)
    assert metrics["test_f1"] == pytest.approx(100 * 10 / 13)  # 2 TP / (2 TP + FP + FN)
    assert metrics["test_distance"] == pytest.approx(11 / 5)  # (3 + 2 + 0 + 5 + 1) / 5
    assert metrics["test_precision/nose"] == pytest.approx(75.0)
    assert metrics["test_recall/nose"] == pytest.approx(100.0)
    assert metrics["test_f1/nose"] == pytest.approx(100 * 6 / 7)
    assert metrics["test_distance/nose"] == pytest.approx(5 / 3)
    assert metrics["test_precision/tail"] == pytest.approx(100.0)
    assert metrics["test_recall/tail"] == pytest.approx(50.0)
    assert metrics["test_f1/tail"] == pytest.approx(100 * 4 / 6)
    assert metrics["test_distance/tail"] == pytest.approx(3.0)
    assert rows[0] == {
        "landmark": "nose",
        "group": "body",
        "precision": pytest.approx(75.0),
        "recall": pytest.approx(100.0),
        "f1": pytest.approx(600 / 7),
        "mean_distance": pytest.approx(5 / 3),
    }
    assert rows[1]["landmark"] == "tail" and rows[1]["recall"] == pytest.approx(50.0)

    val = task.validate(MULTI_PRED, split, data)
    assert val == {
        "val_error": pytest.approx(1 - 10 / 13),
        "val_precision": pytest.approx(500 / 6),
        "val_recall": pytest.approx(500 / 7),
        "val_distance": pytest.approx(2.2),
    }
    perfect = task.validate(MULTI_TRUE.clone(), split, data)
    assert perfect["val_error"] == 0.0 and perfect["val_distance"] == 0.0


def test_match_radius_is_respected() -> None:
    data = dataset_of(MULTI_TRUE, (32, 32), (64, 64), ("nose", "tail"))
    # the 5 px tail hit is just outside 4.9 px: one FP and one FN more.
    # tail TP 1 (1 px), FP 1, FN 3; pooled TP 4, FP 2, FN 3.
    metrics, _ = task_for(data, {"match_radius": 4.9}).test(MULTI_PRED, data.split("test"), data)
    assert metrics["test_f1/tail"] == pytest.approx(100 * 2 / 6)
    assert metrics["test_precision/tail"] == pytest.approx(50.0)
    assert metrics["test_recall/tail"] == pytest.approx(25.0)
    assert metrics["test_distance/tail"] == pytest.approx(1.0)
    assert metrics["test_f1/nose"] == pytest.approx(100 * 6 / 7)  # 3 px still in
    assert metrics["test_f1"] == pytest.approx(100 * 8 / 13)
    assert metrics["test_distance"] == pytest.approx(6 / 4)  # (3 + 2 + 0 + 1) / 4


# --- options ---------------------------------------------------------------------------------


def test_normaliser_index_out_of_range_names_the_landmark_count() -> None:
    single = layout((64, 64), False)
    with pytest.raises(
        ValueError,
        match=r"metric\.normalizer: landmark index 2 does not exist; the data have 2 landmarks "
        r"\(0 = 'nose' \.\. 1 = 'tail'\)",
    ):
        get_task("keypoints", single, {"metric": {"normalizer": [0, 2]}})
    with pytest.raises(ValueError, match=r"landmark index -1 does not exist"):
        get_task("keypoints", single, {"metric": {"normalizer": [-1, 1]}})


def test_normaliser_with_several_instances_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"metric\.normalizer: an NME needs one instance per landmark"
    ):
        get_task("keypoints", layout((64, 64), True), {"metric": {"normalizer": [0, 1]}})


def test_match_radius_with_one_instance_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"metric\.match_radius: these data have one instance per landmark"
    ):
        get_task("keypoints", layout((64, 64), False), {"metric": {"match_radius": 3}})


def test_pck_radius_with_several_instances_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"metric\.pck_radius: these data have several instances per landmark"
    ):
        get_task("keypoints", layout((64, 64), True), {"metric": {"pck_radius": 3}})


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ({"normalizer": [1, 1]}, r"metric\.normalizer: \[1, 1\] must be two different"),
        ({"normalizer": [0]}, r"metric\.normalizer: \[0\] must be two different"),
        ({"normalizer": [0.7, 1]}, r"metric\.normalizer: \[0\.7, 1\] must be two different"),
        ({"pck_radius": 0}, r"metric\.pck_radius: 0 must be a positive number of pixels"),
    ],
)
def test_malformed_metric_options_name_the_key(metric: dict[str, object], message: str) -> None:
    # bench.run.grid refuses these in a grid file; a direct caller of get_task gets the same line
    with pytest.raises(ValueError, match=message):
        get_task("keypoints", layout((64, 64), False), {"metric": metric})


# --- summary and landmark metrics ------------------------------------------------------------


def test_summary_metrics_of_both_kinds() -> None:
    single = get_task("keypoints", layout((64, 64), False))
    assert single.summary_metrics == (
        "test_distance",
        "test_distance_median",
        "test_pck",
        *TRAINING,
    )
    multi = get_task("keypoints", layout((64, 64), True))
    assert multi.summary_metrics == (
        "test_f1",
        "test_precision",
        "test_recall",
        "test_distance",
        *TRAINING,
    )


@pytest.mark.parametrize(
    ("true", "pred", "metric"),
    [
        (SINGLE_TRUE, SINGLE_PRED, {"normalizer": [0, 1]}),
        (SINGLE_TRUE, SINGLE_PRED, None),
        (MULTI_TRUE, MULTI_PRED, None),
    ],
    ids=["single-nme", "single", "multi"],
)
def test_report_metrics_are_ones_test_returns(
    true: torch.Tensor, pred: torch.Tensor, metric: dict[str, object] | None
) -> None:
    # SINGLE_TRUE's image 1 has no tail, so the NME is over images 0 and 2 only
    data = dataset_of(true, (32, 32), (64, 64), ("nose", "tail"))
    task = task_for(data, metric)
    metrics, _ = task.test(pred, data.split("test"), data)
    assert task.landmark_metric is not None
    for name in data.landmark_names:
        assert task.landmark_metric.format(landmark=name) in metrics
    # the trainer adds the training metrics; every other summary metric comes from `test`
    assert set(task.summary_metrics) - set(TRAINING) <= set(metrics)
    assert task.headline_metric in metrics
    assert task.validation_metric in task.validate(pred, data.split("test"), data)
