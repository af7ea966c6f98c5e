"""The smoke grid end to end through `bench run`, in temporary MLflow stores.

The session's `smoke_grid` run (conftest) trains the shipped cathdet grid at the smoke profile
with one cell made to fail in its second epoch; these tests read what it left and run further
invocations on copies of its store.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from bench.run.cell import cell_key
from bench.run.grid import expand_cells, load_grid
from bench.run.runner import RunOptions, run_grid
from bench.track.tracking import ROLE_TAG, ensure_experiment, open_store

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("smoke_grid")]

SMOKE = ["--grid", "cathdet", "--profile", "smoke", "--device", "cpu"]
TAGS = (
    "cell_key",
    "task",
    "method",
    "lr",
    "seed",
    "profile",
    "git_commit",
    "git_dirty",
    "device",
    "torch_version",
    "outcome",
)


def runs_of(uri: str) -> tuple[list, list]:
    """(parent runs, cell runs) of the cathdet experiment."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("cathdet")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(ROLE_TAG) == "parent"]
    cells = [r for r in runs if r.data.tags.get(ROLE_TAG) == "cell"]
    return parents, cells


def smoke_cells() -> list:
    return expand_cells(load_grid("cathdet"), "smoke")


def is_failing(run: Any, smoke_grid: Any) -> bool:
    return (run.data.tags["method"], float(run.data.tags["lr"])) == smoke_grid.failing


def test_grid_records_one_parent_and_a_nested_run_per_cell(smoke_grid: Any) -> None:
    assert smoke_grid.exit_code == 1  # one cell failed
    parents, cells = runs_of(smoke_grid.uri)
    assert len(parents) == 1 and len(cells) == 10
    assert parents[0].info.status == "FAILED"
    assert parents[0].data.metrics["cells_finished"] == 9
    assert parents[0].data.metrics["cells_failed"] == 1
    expected_keys = {cell_key(cell) for cell in smoke_cells()}
    assert {run.data.tags["cell_key"] for run in cells} == expected_keys
    for run in cells:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert set(TAGS) <= set(run.data.tags)
        assert (run.data.tags["task"], run.data.tags["profile"]) == ("cathdet", "smoke")
        assert run.data.tags["device"] == "cpu"
        assert len(run.data.tags["git_commit"]) == 40 or run.data.tags["git_commit"] == "unknown"
        assert run.data.params["schedule.sigma_ref"] == "256"
        assert run.data.params["lr"] == str(float(run.data.tags["lr"]))


def test_finished_cells_have_params_epoch_metrics_and_artifacts(smoke_grid: Any) -> None:
    client = MlflowClient(smoke_grid.uri)
    _, cells = runs_of(smoke_grid.uri)
    by_key = {cell_key(cell): cell for cell in smoke_cells()}
    finished = [run for run in cells if not is_failing(run, smoke_grid)]
    assert len(finished) == 9
    for run in finished:
        assert run.info.status == "FINISHED"
        assert run.data.tags["outcome"] in ("finished", "diverged")
        cell = by_key[run.data.tags["cell_key"]]
        assert run.data.params == cell.to_params()
        for name in ("train_loss", "val_distance", "sigma_mean", "sigma/tip"):
            history = client.get_metric_history(run.info.run_id, name)
            assert sorted(m.step for m in history) == [1, 2], name
        if cell.schedule.kind == "fixed":
            sigmas = client.get_metric_history(run.info.run_id, "sigma_mean")
            assert {m.value for m in sigmas} == {cell.schedule.sigma}
        if run.data.tags["outcome"] == "finished":
            assert {"test_distance", "ntv_all", "ntv_last"} <= set(run.data.metrics)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.json", "figures", "per_landmark.csv"} <= artifacts
        figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
        assert "figures/sigma_per_epoch.png" in figures
        assert "figures/validation_per_epoch.png" in figures
        config = json.loads(
            client.download_artifacts(run.info.run_id, "config.json")
            and Path(client.download_artifacts(run.info.run_id, "config.json")).read_text()
        )
        assert config["cell_key"] == run.data.tags["cell_key"]
        assert config["schedule"] == cell.to_dict()["schedule"]


def test_a_failing_cell_is_isolated_with_its_traceback(smoke_grid: Any) -> None:
    client = MlflowClient(smoke_grid.uri)
    _, cells = runs_of(smoke_grid.uri)
    failed = [run for run in cells if is_failing(run, smoke_grid)]
    assert len(failed) == 1
    run = failed[0]
    assert (run.info.status, run.data.tags["outcome"]) == ("FAILED", "failed")
    traceback_text = Path(client.download_artifacts(run.info.run_id, "traceback.txt")).read_text()
    assert "Traceback (most recent call last)" in traceback_text
    assert smoke_grid.error in traceback_text
    # the epochs before the failure are kept
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    assert "failed" in smoke_grid.stdout and "1 of 10 cells failed" in smoke_grid.stderr


def test_summary_table_lists_every_cell(smoke_grid: Any) -> None:
    lines = smoke_grid.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["cell", "outcome", "val_distance"]
    rows = lines[2:]
    assert len(rows) == 10
    assert sum(" failed " in row for row in rows) == 1
    # stderr is no terminal here: plain progress lines, one per cell start, epoch and end
    progress = smoke_grid.stderr.splitlines()
    assert sum(" start cathdet " in line for line in progress) == 10
    assert sum(" epoch 2/2 loss=" in line and "val_distance=" in line for line in progress) == 10
    assert any("[10/10] finished cathdet" in line or "[10/10] failed" in line for line in progress)


def test_dry_run_shows_done_failed_and_pending(
    smoke_grid: Any, bench_run: Any, tmp_path: Path
) -> None:
    code, out, _ = bench_run([*SMOKE, "--dry-run", "--tracking-uri", smoke_grid.uri])
    assert code == 0
    statuses = {line.split()[0]: line.split()[-1] for line in out.strip().splitlines()[1:]}
    failing = next(c for c in smoke_cells() if (c.method, c.lr) == smoke_grid.failing)
    assert statuses.pop(cell_key(failing)) == "failed"
    assert set(statuses.values()) == {"done"} and len(statuses) == 9
    # a dry run on a store that does not exist yet lists everything pending and creates nothing
    absent = tmp_path / "none" / "mlflow.db"
    code, out, _ = bench_run([*SMOKE, "--dry-run", "--tracking-uri", f"sqlite:///{absent}"])
    assert code == 0 and not absent.parent.exists()
    assert [line.split()[-1] for line in out.strip().splitlines()[1:]] == ["pending"] * 10


def test_second_invocation_resumes_only_the_unfinished_cell(
    smoke_grid: Any, bench_run: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "store"
    source = Path(smoke_grid.uri.removeprefix("sqlite:///")).parent
    shutil.copytree(source, folder)  # the failed cell's checkpoint comes along
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    code, out, err = bench_run([*SMOKE, "--tracking-uri", uri])
    assert code == 0, err
    parents, cells = runs_of(uri)
    assert len(parents) == 2 and len(cells) == 11
    rows = out.strip().splitlines()[2:]
    assert sum(" skipped " in row for row in rows) == 9
    newest = max(parents, key=lambda r: r.info.start_time)
    reran = [r for r in cells if r.data.tags["mlflow.parentRunId"] == newest.info.run_id]
    assert (
        len(reran) == 1 and is_failing(reran[0], smoke_grid) and reran[0].info.status == "FINISHED"
    )
    # resumed from the epoch-2 checkpoint: both epochs replayed into the new run, none retrained
    client = MlflowClient(uri)
    steps = [m.step for m in client.get_metric_history(reran[0].info.run_id, "train_loss")]
    assert steps == [1, 2]
    failed_run = next(r for r in cells if is_failing(r, smoke_grid) and r.info.status == "FAILED")
    before = client.get_metric_history(failed_run.info.run_id, "train_loss")
    after = client.get_metric_history(reran[0].info.run_id, "train_loss")
    assert [m.value for m in sorted(after, key=lambda m: m.step)] == [
        m.value for m in sorted(before, key=lambda m: m.step)
    ]
    # a third invocation has nothing left to do and opens no parent run
    code, _, err = bench_run([*SMOKE, "--tracking-uri", uri])
    assert code == 0 and "nothing to do" in err
    assert len(runs_of(uri)[0]) == 2


def test_jobs_2_trains_cells_in_worker_processes(
    smoke_grid: Any, bench_run: Any, tracking_uri: str
) -> None:
    code, _, err = bench_run(
        [
            *SMOKE,
            "--methods",
            "sigma25,adaloss",
            "--lrs",
            "1e-3",
            "--jobs",
            "2",
            "--tracking-uri",
            tracking_uri,
        ]
    )
    assert code == 0, err
    assert "seed 0, device cpu, up to 2 at once" in err
    _, cells = runs_of(tracking_uri)
    assert sorted(r.data.tags["method"] for r in cells) == ["adaloss", "sigma25"]
    _, inline = runs_of(smoke_grid.uri)
    inline_by_key = {r.data.tags["cell_key"]: r for r in inline}
    client = MlflowClient(tracking_uri)
    for run in cells:
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_distance")] == [
            1,
            2,
        ]
        # the same cell trained in this process by the session run: same data, same seed
        twin = inline_by_key[run.data.tags["cell_key"]]
        assert run.data.metrics["sigma_mean"] == twin.data.metrics["sigma_mean"]
        assert run.data.metrics["test_distance"] == pytest.approx(
            twin.data.metrics["test_distance"], rel=1e-3
        )


def test_a_single_cell_trains_in_this_process_whatever_jobs(
    tracking_uri: str, tmp_path: Path
) -> None:
    from bench.run.trainer import train_cell

    trained_in: list[int] = []

    def recording(cell, **kwargs):  # a closure: a spawned process could not receive it
        trained_in.append(os.getpid())
        return train_cell(cell, **kwargs)

    client = open_store(tracking_uri)
    options = RunOptions(checkpoint_root=tmp_path / "checkpoints", jobs=2, train_fn=recording)
    (report,) = run_grid(
        smoke_cells()[:1],
        client=client,
        experiment_id=ensure_experiment(client, tracking_uri, "cathdet"),
        grid="cathdet",
        profile="smoke",
        options=options,
        command="test",
    )
    assert report.outcome == "finished"
    assert trained_in == [os.getpid()]


def test_ctrl_c_marks_the_cell_and_the_parent_killed(tracking_uri: str, tmp_path: Path) -> None:
    from bench.run.trainer import train_cell

    cells = smoke_cells()[:3]

    def interrupted_in_second_cell(cell, **kwargs):
        if cell == cells[1]:
            raise KeyboardInterrupt
        return train_cell(cell, **kwargs)

    client = open_store(tracking_uri)
    experiment_id = ensure_experiment(client, tracking_uri, "cathdet")
    options = RunOptions(
        checkpoint_root=tmp_path / "checkpoints", train_fn=interrupted_in_second_cell
    )
    with pytest.raises(KeyboardInterrupt):
        run_grid(
            cells,
            client=client,
            experiment_id=experiment_id,
            grid="cathdet",
            profile="smoke",
            options=options,
            command="test",
        )
    parents, runs = runs_of(tracking_uri)
    assert [p.info.status for p in parents] == ["KILLED"]
    status = {r.data.tags["cell_key"]: (r.info.status, r.data.tags["outcome"]) for r in runs}
    assert status == {
        cell_key(cells[0]): ("FINISHED", "finished"),
        cell_key(cells[1]): ("KILLED", "killed"),
    }
