"""Two `bench run`s of one grid on one store, started together, train every cell exactly once
(#38): each claims a cell before training it (`bench.track.claims`) and skips the cells the
other holds; both exit 0. On SQLite (flock) and on the local PostgreSQL (advisory locks)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from mlflow import MlflowClient

from bench.run.grid import expand_cells, load_grid

pytestmark = pytest.mark.slow


def run_twice_together(tmp_path: Path, uri: str) -> list[subprocess.CompletedProcess[str]]:
    command = [
        sys.executable, "-m", "bench", "run", "--grid", "cathdet", "--profile", "smoke",
        "--device", "cpu", "--jobs", "1", "--tracking-uri", uri,
        "--data-root", str(tmp_path / "datasets"),
    ]  # fmt: skip
    # the data first, so that neither runner spends its head start generating them
    prepared = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, check=False)
    assert prepared.returncode == 0, prepared.stderr
    runners = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = []
    for runner in runners:
        out, err = runner.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(runner.args, runner.returncode, out, err))
    return results


def assert_every_cell_finished_once(uri: str, results: list[subprocess.CompletedProcess[str]]):
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("cathdet")
    runs = client.search_runs([experiment.experiment_id], "tags.`bench.role` = 'cell'")
    finished = Counter(run.data.tags["cell_key"] for run in runs if run.info.status == "FINISHED")
    assert len(expand_cells(load_grid("cathdet"), "smoke")) == 10
    assert sorted(finished.values()) == [1] * 10
    assert {run.info.status for run in runs} == {"FINISHED"}  # no cell started twice
    # each runner says which cells the other one trained
    said = "".join(result.stdout for result in results)
    assert said.count("running elsewhere") + said.count("skipped") >= 10


def test_two_runners_on_one_sqlite_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert_every_cell_finished_once(uri, run_twice_together(tmp_path, uri))


@pytest.mark.postgres
def test_two_runners_on_one_postgresql_store(tmp_path: Path, mlflow_postgres_uri: str) -> None:
    results = run_twice_together(tmp_path, mlflow_postgres_uri)
    assert_every_cell_finished_once(mlflow_postgres_uri, results)
