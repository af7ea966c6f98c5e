"""A user's own landmarks through `bench run` and `bench report`, as exported: the keypoints
task takes names, K, channels and instances from the data (COCO exports and `.pts` folders
written by tests/keypoint_sets.py), trains every cell at the smoke profile and reports per
landmark."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from keypoint_sets import write_coco_set, write_grid, write_pts_set
from mlflow import MlflowClient

from bench.cli import main
from bench.track.tracking import LAYOUT_TAG, ROLE_TAG

pytestmark = pytest.mark.slow


def run_and_report(folder: Path, grid: Path, uri: str) -> tuple[list, str]:
    """(cell runs, summary.md) after `bench run` and `bench report` on `grid`."""
    common = ["--grid", str(grid), "--tracking-uri", uri]
    trained = CliRunner().invoke(main, ["run", *common, "--profile", "smoke", "--device", "cpu"])
    assert trained.exit_code == 0, (trained.stderr, trained.exception)
    out = folder / "report"
    reported = CliRunner().invoke(main, ["report", *common, "--out", str(out)])
    assert reported.exit_code == 0, (reported.stderr, reported.exception)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(grid.stem)
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'cell'"
    )
    assert (out / "figures" / "per_landmark.png").is_file()
    return runs, (out / "summary.md").read_text()


def layout_of(run: object) -> dict:
    return json.loads(run.data.tags[LAYOUT_TAG])  # type: ignore[attr-defined]


def test_colour_single_instance_coco_with_hidden_points_and_two_sizes(
    tmp_path: Path, tracking_uri: str
) -> None:
    written = write_coco_set(
        tmp_path / "export",
        k=5,
        colour=True,
        hidden_every=3,
        sizes=((48, 64), (48, 64), (60, 80)),
        counts={"train": 30, "test": 6},
    )
    grid = write_grid(tmp_path / "mine.yaml", tmp_path / "export", "metric: {pck_radius: 6}\n")
    runs, summary = run_and_report(tmp_path, grid, tracking_uri)

    assert sorted(run.data.tags["method"] for run in runs) == ["adaloss", "sigma25", "sigma5"]
    assert all(run.info.status == "FINISHED" for run in runs)
    layout = layout_of(runs[0])
    assert layout["landmark_names"] == written.names and layout["channels"] == 3
    assert layout["multi_instance"] is False
    assert layout["reference_size"] == [48, 64]  # the most common original size
    for run in runs:
        assert 0.0 <= run.data.metrics["test_pck"] <= 100.0
        assert {f"test_distance/{name}" for name in written.names} <= set(run.data.metrics)
    assert "| method | lr | seeds | test_distance | test_distance_median | test_pck |" in summary
    assert "## Per landmark (test_distance/<landmark>)" in summary
    for name in written.names:
        assert f"\n| {name} |" in summary


def test_grey_multi_instance_coco(tmp_path: Path, tracking_uri: str) -> None:
    written = write_coco_set(
        tmp_path / "export", k=2, colour=False, max_instances=3, counts={"train": 30, "test": 6}
    )
    grid = write_grid(tmp_path / "tools.yaml", tmp_path / "export", "metric: {match_radius: 8}\n")
    runs, summary = run_and_report(tmp_path, grid, tracking_uri)

    layout = layout_of(runs[0])
    assert layout["channels"] == 1 and layout["multi_instance"] is True
    for run in runs:
        assert {"test_f1", "test_precision", "test_recall", "val_error"} <= set(run.data.metrics)
        assert {f"test_f1/{name}" for name in written.names} <= set(run.data.metrics)
    assert "| method | lr | seeds | test_f1 | test_precision | test_recall |" in summary
    assert "## Per landmark (test_f1/<landmark>)" in summary


def test_pts_folder_with_an_nme_normaliser(tmp_path: Path, tracking_uri: str) -> None:
    write_pts_set(tmp_path / "faces", k=7, count=30)
    grid = write_grid(tmp_path / "faces.yaml", tmp_path / "faces", "metric: {normalizer: [0, 1]}\n")
    runs, summary = run_and_report(tmp_path, grid, tracking_uri)

    layout = layout_of(runs[0])
    assert layout["landmark_names"] == [f"p{i}" for i in range(1, 8)]
    assert layout["channels"] == 1 and layout["reference_size"] == [40, 40]
    for run in runs:
        assert run.data.metrics["test_nme"] > 0.0 and "val_nme" in run.data.metrics
    assert "| method | lr | seeds | test_nme | test_distance |" in summary


def test_the_readme_grid_runs_on_an_export(tmp_path: Path, tracking_uri: str) -> None:
    # the grid of README's "Benchmark your own data", with its data_source pointed at an export
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Benchmark your own data", 1)[1]
    block = textwrap.dedent(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert "\ndata_source: my_export" in block
    write_coco_set(tmp_path / "my_export", k=3, colour=True, counts={"train": 20, "test": 4})
    grid = tmp_path / "mine.yaml"
    grid.write_text(block.replace("my_export", str(tmp_path / "my_export")))
    runs, summary = run_and_report(tmp_path, grid, tracking_uri)
    assert sorted(run.data.tags["method"] for run in runs) == ["adaloss", "sigma25"]
    assert "| adaloss | 0.001 | 1 |" in summary


def test_tune_and_data_show_take_a_keypoints_grid(tmp_path: Path, tracking_uri: str) -> None:
    write_pts_set(tmp_path / "faces", k=4, count=20)
    grid = write_grid(tmp_path / "faces.yaml", tmp_path / "faces")
    tuned = CliRunner().invoke(
        main,
        [
            "tune",
            "--grid",
            str(grid),
            "--trials",
            "1",
            "--epochs",
            "2",
            "--profile",
            "smoke",
            "--device",
            "cpu",
            "--tracking-uri",
            tracking_uri,
        ],
    )
    assert tuned.exit_code == 0, (tuned.stderr, tuned.exception)
    assert "objective val_distance" in tuned.stderr
    assert "1 trials (1 complete)" in tuned.stdout
    preview = tmp_path / "preview.png"
    source = str(tmp_path / "faces")
    shown = CliRunner().invoke(
        main,
        [
            "data",
            "show",
            "keypoints",
            "--source",
            source,
            "--profile",
            "smoke",
            "--out",
            str(preview),
        ],
    )
    assert shown.exit_code == 0, (shown.stderr, shown.exception)
    assert preview.stat().st_size > 0
