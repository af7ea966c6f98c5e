"""`bench runs export` and `bench runs import` on the session's smoke grid (conftest).

The original store is the second implementation: what an import re-creates is compared with the
runs `bench run` recorded, value by value, and with the report `bench report` builds from them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from bench.cli import main
from bench.track.archive import SOURCE_RUN_TAG
from bench.track.orphans import HEARTBEAT_TAG, OWNER_TAG
from bench.track.report import build_report, render
from bench.track.tracking import ROLE_TAG

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("smoke_grid")]

NOT_CARRIED = {"mlflow.parentRunId", OWNER_TAG, HEARTBEAT_TAG, SOURCE_RUN_TAG}


def bench(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def finished_cells(uri: str) -> dict[str, Any]:
    """cell_key -> the FINISHED cell run of the cathdet experiment."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("cathdet")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return {
        r.data.tags["cell_key"]: r
        for r in runs
        if r.data.tags.get(ROLE_TAG) == "cell" and r.info.status == "FINISHED"
    }


def history(uri: str, run: Any) -> dict[str, list[tuple[int, str, int]]]:
    """Every metric's (step, value, timestamp) points; values as repr, so that NaN equals NaN."""
    client = MlflowClient(uri)
    return {
        key: sorted(
            (m.step, repr(m.value), m.timestamp)
            for m in client.get_metric_history(run.info.run_id, key)
        )
        for key in run.data.metrics
    }


def report_tables(uri: str) -> list[str]:
    """`bench report`'s Markdown without its line that names the store and the time."""
    lines = render(build_report(uri, "cathdet"), "md").splitlines()
    return [line for line in lines if not line.startswith("Store `")]


def dry_run_rows(grid: str, uri: str) -> list[list[str]]:
    """`bench run --grid GRID --profile smoke --dry-run`'s table rows, split into columns."""
    code, out, err = bench(
        "run", "--grid", grid, *("--profile", "smoke", "--device", "cpu"), "--dry-run",
        "--tracking-uri", uri,
    )  # fmt: skip
    assert code == 0, err
    return [line.split() for line in out.strip().splitlines()[1:]]


@pytest.fixture
def exported(smoke_grid: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    code, out, err = bench(
        "runs",
        "export",
        "--grid",
        "cathdet",
        "--out",
        str(folder),
        "--tracking-uri",
        smoke_grid.uri,
    )
    assert code == 0, err
    assert "exported 9 finished cell run(s) of cathdet" in out
    return folder


def test_export_writes_one_file_per_finished_cell(smoke_grid: Any, exported: Path) -> None:
    original = finished_cells(smoke_grid.uri)
    assert len(original) == 9  # the smoke grid's 10 cells less the one made to fail
    assert sorted(p.stem for p in exported.glob("*.json")) == sorted(original)


def test_import_recreates_every_run_value_for_value(
    smoke_grid: Any, exported: Path, tracking_uri: str
) -> None:
    code, out, err = bench("runs", "import", str(exported), "--tracking-uri", tracking_uri)
    assert code == 0, err
    assert out.strip() == "cathdet: imported 9 cell run(s), skipped 0 already finished"
    original, imported = finished_cells(smoke_grid.uri), finished_cells(tracking_uri)
    assert sorted(imported) == sorted(original)
    client_a, client_b = MlflowClient(smoke_grid.uri), MlflowClient(tracking_uri)
    for key, run in original.items():
        copy = imported[key]
        assert copy.data.params == run.data.params
        assert repr(sorted(copy.data.metrics.items())) == repr(sorted(run.data.metrics.items()))
        assert history(tracking_uri, copy) == history(smoke_grid.uri, run)
        kept = {k: v for k, v in run.data.tags.items() if k not in NOT_CARRIED}
        assert {k: v for k, v in copy.data.tags.items() if k not in NOT_CARRIED} == kept
        assert copy.data.tags[SOURCE_RUN_TAG] == run.info.run_id
        assert (copy.info.start_time, copy.info.end_time) == (
            run.info.start_time,
            run.info.end_time,
        )
        assert copy.info.run_name == run.info.run_name
        for name in ("config.json", "per_landmark.csv"):
            a = Path(client_a.download_artifacts(run.info.run_id, name)).read_bytes()
            b = Path(client_b.download_artifacts(copy.info.run_id, name)).read_bytes()
            assert a == b
        datasets = [
            (d.dataset.name, d.dataset.digest, d.dataset.source) for d in run.inputs.dataset_inputs
        ]
        assert [
            (d.dataset.name, d.dataset.digest, d.dataset.source) for d in copy.inputs.dataset_inputs
        ] == datasets
        assert datasets  # the smoke grid's cells log their dataset
    # the report reads the imported cells exactly as the recorded ones: the same tables, less the
    # rows of the failed cell, which has no FINISHED run to carry
    method, lr = smoke_grid.failing
    failed_rows = f"| {method} | {lr:g} |"
    original_tables = report_tables(smoke_grid.uri)
    assert sum(line.startswith(failed_rows) for line in original_tables) == 2  # results, outcomes
    assert report_tables(tracking_uri) == [
        line for line in original_tables if not line.startswith(failed_rows)
    ]


def test_imported_cells_are_done_for_bench_run_and_a_second_import_adds_nothing(
    exported: Path, tracking_uri: str, tmp_path: Path
) -> None:
    assert bench("runs", "import", str(exported), "--tracking-uri", tracking_uri)[0] == 0
    statuses = [row[-1] for row in dry_run_rows("cathdet", tracking_uri)]
    assert statuses.count("done") == 9 and statuses.count("pending") == 1, statuses
    code, out, _ = bench("runs", "import", str(exported), "--tracking-uri", tracking_uri)
    assert code == 0
    assert out.strip() == "cathdet: imported 0 cell run(s), skipped 9 already finished"
    assert len(finished_cells(tracking_uri)) == 9
    # export -> import -> export gives the same files, byte for byte
    again = tmp_path / "again"
    assert (
        bench(
            "runs",
            "export",
            "--grid",
            "cathdet",
            "--out",
            str(again),
            "--tracking-uri",
            tracking_uri,
        )[0]
        == 0
    )
    for path in exported.glob("*.json"):
        assert (again / path.name).read_text() == path.read_text()


def damage(folder: Path, change: Any) -> Path:
    path = sorted(folder.glob("*.json"))[0]
    record = json.loads(path.read_text())
    change(record, path)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r, p: p.write_text("{not json"), "not a readable JSON file"),
        (
            lambda r, p: p.write_text(json.dumps({**r, "metrics": 3})),
            "field 'metrics' is missing or not an object",
        ),
        (lambda r, p: p.write_text(json.dumps({**r, "format": 99})), "archive format 99"),
        (lambda r, p: p.rename(p.with_name("other.json")), "name the file after it"),
        (
            lambda r, p: p.write_text(json.dumps({**r, "metrics": {"train_loss": [[1, 0.5]]}})),
            "metrics.train_loss is not a list of [step, value, timestamp]",
        ),
    ],
)
def test_a_damaged_file_stops_the_import_before_anything_is_written(
    exported: Path, tmp_path: Path, change: Any, message: str
) -> None:
    damage(exported, change)
    store = tmp_path / "store" / "mlflow.db"
    store.parent.mkdir()
    code, _, err = bench("runs", "import", str(exported), "--tracking-uri", f"sqlite:///{store}")
    assert code == 2
    line = err.strip()
    assert line.startswith("Error: ") and "\n" not in line and message in line and ".json" in line
    assert not store.exists()


def test_missing_folder_and_unknown_grid_are_one_line(tmp_path: Path, tracking_uri: str) -> None:
    code, _, err = bench(
        "runs", "import", str(tmp_path / "nowhere"), "--tracking-uri", tracking_uri
    )
    assert code == 2 and "not a folder" in err
    code, _, err = bench(
        "runs",
        "export",
        "--grid",
        "nogrid",
        "--out",
        str(tmp_path / "o"),
        "--tracking-uri",
        tracking_uri,
    )
    assert code == 2 and "--grid nogrid: the store has no such experiment" in err
    assert not (tmp_path / "o").exists()
    absent = tmp_path / "absent" / "mlflow.db"
    code, _, err = bench(
        "runs",
        "export",
        "--grid",
        "cathdet",
        "--out",
        str(tmp_path / "o"),
        "--tracking-uri",
        f"sqlite:///{absent}",
    )
    assert code == 2 and "no store there" in err
    assert not absent.exists() and not (tmp_path / "o").exists()


# the smoke grid's methods under other labels (and one cell it never trained), as a user's grid
RELABELLED_GRID = """\
task: cathdet
sigma_ref: 256
lrs: [1.0e-3, 1.0e-4]
seeds: 1
methods:
  narrow: {schedule: fixed, sigma: 5}
  wide: {schedule: fixed, sigma: 60}
  bounded_rule: {schedule: adaloss, window: 3, rho: 0.9, restrict: true, max_step: 4}
  untrained: {schedule: fixed, sigma: 12}
"""


def test_import_into_another_grid_adopts_the_runs_that_train_its_cells(
    smoke_grid: Any, exported: Path, tracking_uri: str, tmp_path: Path
) -> None:
    grid = tmp_path / "relabelled.yaml"
    grid.write_text(RELABELLED_GRID)
    code, out, err = bench(
        "runs", "import", str(exported), "--into", str(grid), "--tracking-uri", tracking_uri
    )
    assert code == 0, err
    assert out.splitlines() == [
        f"relabelled: 6 run(s) of {exported} are cells of it (cathdet/adaloss as bounded_rule, "
        "cathdet/sigma5 as narrow, cathdet/sigma60 as wide); 3 are not and were left out",
        "relabelled: imported 6 cell run(s), skipped 0 already finished",
    ]
    rows = dry_run_rows(str(grid), tracking_uri)
    assert sorted((row[2], row[-1]) for row in rows) == sorted(
        [(m, "done") for m in ("narrow", "wide", "bounded_rule") for _ in range(2)]
        + [("untrained", "pending")] * 2
    )
    # an adopted run carries the original's measurements
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("relabelled")
    adopted = client.search_runs([experiment.experiment_id], "tags.method = 'wide'")
    original = finished_cells(smoke_grid.uri)
    for run in adopted:
        source = next(
            r for r in original.values() if r.info.run_id == run.data.tags[SOURCE_RUN_TAG]
        )
        assert source.data.tags["method"] == "sigma60"
        assert history(tracking_uri, run) == history(smoke_grid.uri, source)


def test_an_adopted_run_is_what_training_the_cell_there_gives(
    smoke_grid: Any, exported: Path, tracking_uri: str, tmp_path: Path
) -> None:
    """The premise of adoption: a cell's training depends on its config, not on the grid's or
    the method's name. Training the adopted cell again in its new grid gives the same values."""
    grid = tmp_path / "relabelled.yaml"
    grid.write_text(RELABELLED_GRID)
    args = ["--into", str(grid), "--tracking-uri", tracking_uri]
    assert bench("runs", "import", str(exported), *args)[0] == 0
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("relabelled")
    (adopted,) = client.search_runs(
        [experiment.experiment_id], "tags.method = 'bounded_rule' and tags.lr = '0.001'"
    )
    code, _, err = bench(
        "run",
        "--grid",
        str(grid),
        "--profile",
        "smoke",
        "--device",
        "cpu",
        "--jobs",
        "1",
        "--methods",
        "bounded_rule",
        "--lrs",
        "1e-3",
        "--force",
        "--tracking-uri",
        tracking_uri,
    )
    assert code == 0, err
    runs = client.search_runs(
        [experiment.experiment_id], "tags.method = 'bounded_rule' and tags.lr = '0.001'"
    )
    (trained,) = [run for run in runs if run.info.run_id != adopted.info.run_id]
    assert trained.data.tags["cell_key"] == adopted.data.tags["cell_key"]
    for key in ("train_loss", "val_distance", "sigma_mean", "test_distance"):
        values = [m.value for m in client.get_metric_history(adopted.info.run_id, key)]
        assert values, key
        assert [m.value for m in client.get_metric_history(trained.info.run_id, key)] == values


def test_import_into_a_grid_none_of_the_runs_trains_is_one_line(
    exported: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store" / "mlflow.db"
    store.parent.mkdir()
    args = ["--into", "endovis", "--tracking-uri", f"sqlite:///{store}"]
    code, _, err = bench("runs", "import", str(exported), *args)
    assert code == 2
    line = err.strip()
    assert line == (
        f"Error: {exported}: no run trains the config of a cell of grid endovis (its task, data, "
        "a method's schedule, a learning rate, the profile's epochs); nothing was imported"
    )
    assert not store.exists()
