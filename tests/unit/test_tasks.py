"""Task metrics on hand-made predictions whose scores are worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from adaloss.targets import render_heatmaps
from bench.data.dataset import LandmarkDataset, Split
from bench.data.layout import DataLayout
from bench.tasks import TASK_NAMES, get_task, task_profiles
from bench.tasks.models import conv_layers
from bench.tasks.scoring import peak_settings


def dataset_of(
    task: str,
    points: torch.Tensor,
    image_size: tuple[int, int],
    reference_size: tuple[int, int],
    subsets: dict[str, torch.Tensor] | None = None,
    names: tuple[str, ...] | None = None,
) -> LandmarkDataset:
    """A dataset whose every split is `points` on blank images."""
    k = points.shape[1]
    names = names or tuple(f"p{i}" for i in range(k))
    split = Split(torch.zeros(len(points), 1, *image_size), points, subsets or {})
    return LandmarkDataset(
        task=task,
        variant="hand",
        landmark_names=names,
        landmark_groups={"all": tuple(range(k))},
        splits={"train": split, "val": split, "test": split},
        reference_size=reference_size,
    )


# --- cathdet ---------------------------------------------------------------------------------


def test_cathdet_perfect_and_shifted_predictions() -> None:
    task = get_task("cathdet")
    true = torch.tensor([[[10.0, 20.0]], [[30.0, 40.0]], [[math.nan, math.nan]]])
    data = dataset_of("cathdet", true, (64, 64), (256, 256))
    split = data.split("test")

    perfect = task.validate(true.clone(), split, data)
    assert perfect == {"val_distance": 0.0, "val_distance_median": 0.0}

    # One image pixel is 256 / 64 = 4 reference pixels: shifts of (1, 0) and (0, 1.5) px give
    # 4 and 6 reference pixels; the unlabelled third image counts in nothing.
    shifted = true + torch.tensor([[[1.0, 0.0]], [[0.0, 1.5]], [[0.0, 0.0]]])
    metrics, rows = task.test(shifted, split, data)
    assert metrics["test_distance"] == pytest.approx(5.0)
    assert metrics["test_distance_median"] == pytest.approx(4.0)  # torch: the lower middle
    assert metrics["test_within_2px"] == 0.0
    assert metrics["test_within_5px"] == pytest.approx(50.0)
    assert metrics["test_within_10px"] == pytest.approx(100.0)
    assert rows == [
        {
            "landmark": "p0",
            "group": "all",
            "mean_distance": pytest.approx(5.0),
            "median_distance": pytest.approx(4.0),
        }
    ]


def test_cathdet_decodes_a_rendered_target_to_its_point() -> None:
    task = get_task("cathdet")
    point = torch.tensor([[[12.0, 7.0]]])
    decoded = task.decode(render_heatmaps(point, 2.0, (32, 32)))
    torch.testing.assert_close(decoded, point)


# --- faces -----------------------------------------------------------------------------------


def face_points(n: int) -> torch.Tensor:
    """(n, 68, 2) points with the outer eye corners (36, 45) 40 px apart in a 256 px frame."""
    points = torch.rand(n, 68, 2, generator=torch.Generator().manual_seed(0)) * 100 + 50
    points[:, 36] = torch.tensor([100.0, 120.0])
    points[:, 45] = torch.tensor([140.0, 120.0])
    return points


def test_face_nme_failure_and_auc_by_hand() -> None:
    task = get_task("face300w")
    true = face_points(4)
    subsets = {"common": torch.tensor([0, 1, 2]), "challenging": torch.tensor([3])}
    data = dataset_of("face300w", true, (256, 256), (256, 256), subsets)
    split = data.split("test")
    # Every landmark of image i moves by s_i px; the inter-ocular distance is 40 px, so the
    # per-image NMEs are s_i / 40 = 0.01, 0.03, 0.09, 0.05.
    shifts = torch.tensor([0.4, 1.2, 3.6, 2.0])
    pred = true + torch.stack([shifts, torch.zeros(4)], dim=-1)[:, None, :]
    metrics, rows = task.test(pred, split, data)

    assert metrics["test_nme/common"] == pytest.approx(100 * (0.01 + 0.03 + 0.09) / 3)
    assert metrics["test_nme/challenging"] == pytest.approx(5.0)
    assert metrics["test_nme/full"] == pytest.approx(100 * 0.18 / 4)
    assert metrics["test_failure_0.08/full"] == pytest.approx(25.0)  # only 0.09 > 0.08
    assert metrics["test_failure_0.10/full"] == 0.0
    # AUC@0.08 = mean max(0, 1 - e / 0.08) = (0.875 + 0.625 + 0 + 0.375) / 4
    assert metrics["test_auc_0.08/full"] == pytest.approx(100 * 1.875 / 4)
    assert len(rows) == 68
    assert rows[0]["mean_distance"] == pytest.approx(float(shifts.mean()))
    assert rows[0]["mean_nme"] == pytest.approx(100 * 0.18 / 4)

    val = task.validate(true.clone(), split, data)
    assert val["val_nme"] == 0.0
    assert val["val_failure_0.08"] == 0.0


def test_face_defaults_follow_the_paper() -> None:
    task = get_task("face300w")
    paper = task.settings("paper")
    assert (paper.kernel_size, paper.rotation_deg, paper.normalize) == (11, 30.0, "mean")
    assert task.settings("quick").normalize == "mean"
    assert len(conv_layers(task.build_model("smoke", 3, 68))) == 23


# --- endovis ---------------------------------------------------------------------------------


def test_endovis_detection_by_hand() -> None:
    task = get_task("endovis")
    nan = math.nan
    # 64 x 80 images of the 576 x 720 frame: one image pixel is 9 reference pixels, so tau = 20
    # reference px is 2.22 image px.
    true = torch.tensor(
        [
            [[[10.0, 10.0], [40.0, 30.0]], [[60.0, 50.0], [nan, nan]]],
            [[[20.0, 20.0], [nan, nan]], [[nan, nan], [nan, nan]]],
        ]
    )  # (N=2, K=2, M=2, 2)
    subsets = {"no-scissors": torch.tensor([0]), "with-scissors": torch.tensor([1])}
    data = dataset_of(
        "endovis", true, (64, 80), (576, 720), subsets, names=("left_clasper", "right_clasper")
    )
    split = data.split("test")

    perfect, _ = task.test(true.clone(), split, data)
    assert perfect["test_precision/left_clasper/full"] == 100.0
    assert perfect["test_recall/left_clasper/full"] == 100.0
    assert perfect["test_distance/left_clasper/full"] == 0.0

    # Left clasper: image 0 finds (10, 12) (2 px = 18 ref px away: a hit) and (40, 33) (3 px =
    # 27 ref px: a miss, so one FP and one FN); image 1 finds (20, 20) and a stray (70, 5).
    # Right clasper: image 0 finds (60, 50); nothing else.
    pred = torch.tensor(
        [
            [[[10.0, 12.0], [40.0, 33.0]], [[60.0, 50.0], [nan, nan]]],
            [[[20.0, 20.0], [70.0, 5.0]], [[nan, nan], [nan, nan]]],
        ]
    )
    metrics, rows = task.test(pred, split, data)
    assert metrics["test_precision/left_clasper/full"] == pytest.approx(50.0)  # 2 TP, 2 FP
    assert metrics["test_recall/left_clasper/full"] == pytest.approx(200 / 3)  # 2 TP, 1 FN
    assert metrics["test_distance/left_clasper/full"] == pytest.approx(9.0)  # (18 + 0) / 2
    assert metrics["test_precision/left_clasper/no-scissors"] == pytest.approx(50.0)
    assert metrics["test_recall/left_clasper/no-scissors"] == pytest.approx(50.0)
    assert metrics["test_distance/left_clasper/no-scissors"] == pytest.approx(18.0)
    assert metrics["test_recall/left_clasper/with-scissors"] == pytest.approx(100.0)
    assert metrics["test_precision/right_clasper/full"] == pytest.approx(100.0)
    assert metrics["test_f1/left_clasper/full"] == pytest.approx(100 * 4 / (4 + 2 + 1))
    assert rows[0]["recall"] == pytest.approx(200 / 3)

    # Validation pools both claspers: TP 3, FP 2, FN 1 -> F1 = 6 / 9; distance (18 + 0 + 0) / 3.
    val = task.validate(pred, split, data)
    assert val["val_error"] == pytest.approx(1 - 6 / 9)
    assert val["val_precision"] == pytest.approx(60.0)
    assert val["val_recall"] == pytest.approx(75.0)
    assert val["val_distance"] == pytest.approx(6.0)


def test_endovis_decodes_every_instance() -> None:
    task = get_task("endovis")
    points = torch.tensor([[[[10.0, 12.0], [60.0, 40.0]], [[30.0, 30.0], [math.nan, math.nan]]]])
    heatmaps = render_heatmaps(points, 1.5, (64, 80))  # (1, 2, 64, 80)
    decoded = task.decode(heatmaps)
    assert decoded.shape == (1, 2, 2, 2)
    found = {tuple(p) for p in decoded[0, 0].tolist()}
    assert found == {(10.0, 12.0), (60.0, 40.0)}
    torch.testing.assert_close(decoded[0, 1, 0], torch.tensor([30.0, 30.0]))
    assert torch.isnan(decoded[0, 1, 1]).all()


def test_endovis_peak_settings_scale_with_the_heatmap() -> None:
    assert peak_settings(360) == (3, 10)
    assert peak_settings(1080) == (9, 30)
    assert peak_settings(80) == (1, 2)


# --- shared ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_profile_builds_a_model_with_the_papers_conv_count(name: str) -> None:
    two_points = DataLayout(("a", "b"), {"a": (0,), "b": (1,)}, (64, 64), 3, False)
    task = get_task(name, two_points)
    expected = {"cathdet": 9, "face300w": 23, "endovis": 9, "keypoints": 9}[name]
    # name and profiles come from the task table, not from the Task class
    assert task.name == name
    assert task.profiles is task_profiles(name)
    assert set(task.profiles) == {"smoke", "quick", "paper"}
    for profile in ("smoke", "quick"):
        assert len(conv_layers(task.build_model(profile, 3, 2))) == expected
    assert task.validation_metric.startswith("val_")


def test_extra_overrides_and_typos() -> None:
    task = get_task("cathdet")
    assert task.settings("quick", {"width": 3}).width == 3
    with pytest.raises(ValueError, match="widht"):
        task.settings("quick", {"widht": 3})
    with pytest.raises(ValueError, match="no profile 'fast'"):
        task.settings("fast")
    with pytest.raises(ValueError, match="unknown task 'faces'"):
        get_task("faces")
