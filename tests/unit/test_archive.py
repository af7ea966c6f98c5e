"""bench.track.archive on hand-made run files and fresh stores (the smoke grid's round trip is in
tests/integration/test_runs_archive.py)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from bench.run.cell import cell_key
from bench.run.grid import expand_cells, load_grid
from bench.track.archive import (
    ADOPTED_FROM_TAG,
    SOURCE_RUN_TAG,
    ArchivedRun,
    ArchiveError,
    _dumps,
    adopt_runs,
    import_runs,
    read_archive,
)
from bench.track.tracking import cell_runs

CSV = "landmark,sigma_final\r\ntip,12.5\r\n"  # csv.writer's line ends, which must survive


def record(key: str = "aaaa", start: int = 1_000, **changes: Any) -> dict[str, Any]:
    """A run file's object as `bench runs export` writes it, for cell `key`."""
    base: dict[str, Any] = {
        "format": 1,
        "experiment": "g",
        "source_run": f"run-{key}-{start}",
        "run_name": f"sigma5-lr0.001-s0-{start}",
        "start_time": start,
        "end_time": start + 500,
        "tags": {
            "cell_key": key,
            "grid": "g",
            "task": "cathdet",
            "method": "sigma5",
            "lr": "0.001",
            "seed": "0",
            "profile": "smoke",
            "outcome": "finished",
            "bench.role": "cell",
            "mlflow.runName": f"sigma5-lr0.001-s0-{start}",
        },
        "params": {"schedule.kind": "fixed", "lr": "0.001"},
        "metrics": {
            "train_loss": [[1, 0.5, start + 10], [2, 0.25, start + 20]],
            "val_distance": [[1, "nan", start + 10], [2, 7.0, start + 20]],
        },
        "datasets": [
            {
                "name": "cathdet/synthetic-smoke",
                "digest": "0123456789abcdef",
                "source_type": "local",
                "source": '{"uri": "/data"}',
                "profile": "24/8/16",
                "context": {"mlflow.data.context": "training"},
            }
        ],
        "artifacts": {"config.json": json.dumps({"cell_key": key}), "per_landmark.csv": CSV},
    }
    base.update(changes)
    return base


def write(folder: Path, *records: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for item in records:
        (folder / f"{item['tags']['cell_key']}.json").write_text(_dumps(item))
    return folder


def active_runs(uri: str) -> dict[str, list[Any]]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("g")
    return {} if experiment is None else cell_runs(client, experiment.experiment_id)


def test_a_file_reads_back_as_written_with_non_finite_values(tmp_path: Path) -> None:
    item = record(metrics={"m": [[1, "nan", 5], [2, "inf", 6], [3, "-inf", 7], [4, 1.5, 8]]})
    (archived,) = read_archive(write(tmp_path, item))
    assert archived.record == item
    assert archived.path == tmp_path / "aaaa.json"
    # each metric's history is one line of the file
    assert (
        '  "m": [[1, "nan", 5], [2, "inf", 6], [3, "-inf", 7], [4, 1.5, 8]]'
        in (tmp_path / "aaaa.json").read_text().splitlines()
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": True}, "field 'format' is missing or not a whole number"),
        ({"start_time": 1.5}, "field 'start_time' is missing or not a whole number"),
        ({"source_run": None}, "field 'source_run' is missing or not a string"),
        ({"params": {"lr": 0.001}}, "params must map names to strings"),
        ({"end_time": 10}, "end_time before start_time"),
        ({"experiment": "other"}, "experiment 'other' but tag grid 'g'"),
        (
            {"metrics": {"m": [[1, "NaN", 5]]}},
            "metrics.m is not a list of [step, value, timestamp]",
        ),
        ({"metrics": {"m": [[1, 0.5, -1]]}}, "metrics.m is not a list of [step, value, timestamp]"),
        ({"datasets": [{"name": "x"}]}, "datasets[0] needs name, digest, source_type, source"),
        (
            {"artifacts": {"model.pt": "x"}},
            "artifacts.model.pt: only config.json, per_landmark.csv",
        ),
    ],
)
def test_a_bad_field_is_one_line_naming_the_file(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    write(tmp_path, record(**changes))
    with pytest.raises(ArchiveError) as error:
        read_archive(tmp_path)
    text = str(error.value)
    assert message in text and str(tmp_path / "aaaa.json") in text and "\n" not in text


def test_import_creates_finished_runs_with_every_value(tmp_path: Path, tracking_uri: str) -> None:
    item = record()
    summary = import_runs(
        MlflowClient(tracking_uri), tracking_uri, read_archive(write(tmp_path, item)), "cmd"
    )
    assert summary.imported == {"g": ["aaaa"]} and summary.skipped == {"g": []}
    (run,) = active_runs(tracking_uri)["aaaa"]
    client = MlflowClient(tracking_uri)
    assert run.info.status == "FINISHED"
    assert (run.info.start_time, run.info.end_time, run.info.run_name) == (
        1000,
        1500,
        item["run_name"],
    )
    assert run.data.params == item["params"]
    assert run.data.tags[SOURCE_RUN_TAG] == "run-aaaa-1000"
    assert {k: run.data.tags[k] for k in item["tags"]} == item["tags"]
    loss = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted((m.step, m.value, m.timestamp) for m in loss) == [(1, 0.5, 1010), (2, 0.25, 1020)]
    val = sorted(client.get_metric_history(run.info.run_id, "val_distance"), key=lambda m: m.step)
    assert math.isnan(val[0].value) and val[1].value == 7.0
    csv = Path(client.download_artifacts(run.info.run_id, "per_landmark.csv")).read_bytes()
    assert csv == CSV.encode()
    (dataset,) = run.inputs.dataset_inputs
    assert (dataset.dataset.name, dataset.dataset.digest) == (
        "cathdet/synthetic-smoke",
        "0123456789abcdef",
    )
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"
    assert (parent.data.tags["bench.role"], parent.data.tags["profile"]) == ("parent", "smoke")


def test_the_same_or_an_older_run_is_skipped_and_a_newer_one_imported(
    tmp_path: Path, tracking_uri: str
) -> None:
    client = MlflowClient(tracking_uri)
    import_runs(client, tracking_uri, read_archive(write(tmp_path / "a", record(start=2_000))), "c")
    same = import_runs(client, tracking_uri, read_archive(tmp_path / "a"), "c")
    older = import_runs(
        client, tracking_uri, read_archive(write(tmp_path / "b", record(start=1_000))), "c"
    )
    assert same.skipped == older.skipped == {"g": ["aaaa"]}
    assert same.imported == older.imported == {"g": []}
    newer = import_runs(
        client, tracking_uri, read_archive(write(tmp_path / "c", record(start=3_000))), "c"
    )
    assert newer.imported == {"g": ["aaaa"]}
    runs = active_runs(tracking_uri)["aaaa"]  # newest first
    assert [r.info.start_time for r in runs] == [3_000, 2_000]


def test_a_value_mlflow_refuses_undoes_the_whole_import(tmp_path: Path, tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    import_runs(client, tracking_uri, read_archive(write(tmp_path / "first", record("aaaa"))), "c")
    before = {key: [r.info.run_id for r in runs] for key, runs in active_runs(tracking_uri).items()}
    folder = write(tmp_path / "second", record("bbbb"), record("cccc", params={"bad!key": "1"}))
    with pytest.raises(ArchiveError) as error:
        import_runs(client, tracking_uri, read_archive(folder), "c")
    assert str(error.value).startswith(f"{folder / 'cccc.json'}: ")
    assert str(error.value).endswith("; nothing was imported")
    after = {key: [r.info.run_id for r in runs] for key, runs in active_runs(tracking_uri).items()}
    assert after == before  # bbbb's run and the import's parent were deleted again
    experiment = client.get_experiment_by_name("g").experiment_id
    parents = client.search_runs([experiment], "tags.`bench.role` = 'parent'")
    assert len(parents) == 1  # the first import's


def test_an_interrupted_import_leaves_nothing(
    tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowClient(tracking_uri)

    def interrupt(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(client, "log_artifacts", interrupt)
    with pytest.raises(KeyboardInterrupt):
        import_runs(client, tracking_uri, read_archive(write(tmp_path, record())), "c")
    experiment = client.get_experiment_by_name("g").experiment_id
    assert client.search_runs([experiment]) == []


def trained_as(grid: str, method: str, seed: int = 2, **changes: Any) -> ArchivedRun:
    """A run file of the shipped `grid`'s `method` at the smoke profile, as the tracker writes
    its tags, params and config.json (CellConfig fields in `changes` replace the grid's)."""
    (cell,) = expand_cells(load_grid(grid), "smoke", range(seed, seed + 1), [method], [1e-3])
    cell = dataclasses.replace(cell, **changes)
    config = {"cell_key": f"key-{method}", "device": "cpu", **cell.to_dict()}
    tags = {
        "cell_key": f"key-{method}",
        "grid": grid,
        "task": cell.task,
        "method": method,
        "lr": "0.001",
        "seed": str(seed),
        "profile": "smoke",
        "device": "cpu",
        "outcome": "finished",
        "mlflow.runName": f"{method}-lr0.001-s{seed}",
    }
    artifacts = {"config.json": json.dumps(config, indent=2), "per_landmark.csv": CSV}
    item = record(
        f"key-{method}", experiment=grid, tags=tags, params=cell.to_params(), artifacts=artifacts
    )
    return ArchivedRun(Path(f"{grid}/key-{method}.json"), item)


def test_a_readings_run_becomes_the_main_grid_cell_that_trains_the_same_config() -> None:
    # the cathdet grid's `adaloss` spells the readings grid's `step_limited` (max_step 4)
    step_limited = trained_as("readings_cathdet", "step_limited")
    (adopted,), left_out = adopt_runs([step_limited], load_grid("cathdet"))
    assert left_out == []
    # the cell `bench run --grid cathdet --profile smoke --seeds 2-2` trains as `adaloss`
    (target,) = expand_cells(load_grid("cathdet"), "smoke", range(2, 3), ["adaloss"], [1e-3])
    assert adopted.record["experiment"] == "cathdet"
    assert adopted.record["run_name"] == "adaloss-lr0.001-s2"
    tags = adopted.record["tags"]
    assert tags["mlflow.runName"] == "adaloss-lr0.001-s2"
    assert (tags["grid"], tags["method"], tags["cell_key"]) == (
        "cathdet",
        "adaloss",
        cell_key(target),
    )
    assert tags[ADOPTED_FROM_TAG] == "readings_cathdet/step_limited"
    assert adopted.record["params"]["grid"] == "cathdet"
    assert adopted.record["params"]["method"] == "adaloss"
    config = json.loads(adopted.record["artifacts"]["config.json"])
    assert config == {"cell_key": cell_key(target), "device": "cpu", **target.to_dict()}
    # what the run measured travels untouched
    for field in ("metrics", "datasets", "source_run", "start_time", "end_time"):
        assert adopted.record[field] == step_limited.record[field]
    assert adopted.record["artifacts"]["per_landmark.csv"] == CSV
    # the path stays the file's, for error messages
    assert adopted.path == step_limited.path


def test_runs_that_no_cell_of_the_grid_trains_are_left_out() -> None:
    other_reading = trained_as("readings_cathdet", "iteration_variance")
    unbounded = trained_as("readings_cathdet", "literal")
    other_epochs = trained_as("readings_cathdet", "step_limited", epochs=7)
    other_lr = trained_as("readings_cathdet", "step_limited", lr=3e-3)
    other_task = trained_as("readings_endovis", "step_limited")
    runs = [other_reading, unbounded, other_epochs, other_lr, other_task]
    adopted, left_out = adopt_runs(runs, load_grid("cathdet"))
    assert adopted == [] and left_out == runs


def test_a_run_of_the_grid_itself_passes_unchanged() -> None:
    own = trained_as("cathdet", "sigma40")
    assert adopt_runs([own], load_grid("cathdet")) == ([own], [])


def test_a_run_two_methods_of_the_grid_would_train_is_refused(tmp_path: Path) -> None:
    grid = tmp_path / "twins.yaml"
    grid.write_text(
        "task: cathdet\nsigma_ref: 256\nlrs: [1.0e-3]\nseeds: 1\nmethods:\n"
        "  first: {schedule: adaloss}\n  second: {schedule: adaloss}\n"
    )
    with pytest.raises(ArchiveError, match="same config as methods first and second"):
        adopt_runs([trained_as("readings_cathdet", "literal")], load_grid(str(grid)))


@pytest.mark.parametrize(
    "config", [None, "{not json", "[]", json.dumps({"device": "cpu", "grid": "g"})]
)
def test_a_run_without_a_cell_config_is_one_line_naming_the_file(config: str | None) -> None:
    run = trained_as("readings_cathdet", "literal")
    artifacts = {"per_landmark.csv": CSV} | ({} if config is None else {"config.json": config})
    broken = ArchivedRun(run.path, {**run.record, "artifacts": artifacts})
    with pytest.raises(ArchiveError) as error:
        adopt_runs([broken], load_grid("cathdet"))
    text = str(error.value)
    assert text.startswith(f"{run.path}: artifacts.config.json") and "\n" not in text
