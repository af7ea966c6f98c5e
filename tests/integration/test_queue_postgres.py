"""The smoke grid and a tuning study shared through the local PostgreSQL server.

This is the team recipe of docs/scale-out.md on one machine: the Optuna storage and the MLflow
backend store are two PostgreSQL databases (each test makes its own and drops it), and several
`bench worker` / `bench tune` processes share them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from queue_support import (
    SMOKE,
    assert_each_cell_finished_once,
    cell_runs,
    enqueue,
    kill_mid_cell_and_retry,
    reaped,
    smoke_cells,
    start_bench,
    start_worker,
    tails,
    wait_all,
)
from schema_race import lose_the_schema_race_once

from bench.scale import queue

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Artifacts and checkpoints of database-backed stores go to ./mlruns: here, tmp."""
    monkeypatch.chdir(tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def smoke_data() -> None:
    from bench.data.sources import load_dataset

    load_dataset("cathdet", profile="smoke")


def test_three_workers_share_a_postgresql_queue_and_mlflow_store(
    tmp_path: Path, postgres_url: str, mlflow_postgres_uri: str, smoke_data: None
) -> None:
    code, _, err = enqueue([*SMOKE, "--queue", postgres_url, "--tracking-uri", mlflow_postgres_uri])
    assert code == 0, err
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    processes = [start_worker(postgres_url, mlflow_postgres_uri, tmp_path, log) for log in logs]
    with reaped(processes) as workers:
        codes = wait_all(workers, logs)
    assert codes == [0, 0, 0], tails(logs)
    trials, runs = assert_each_cell_finished_once(postgres_url, mlflow_postgres_uri, smoke_cells())
    assert len(trials) == len(runs) == 10
    # the artifacts went where the experiment says, for every run
    client = MlflowClient(mlflow_postgres_uri)
    for run in runs:
        names = {item.path for item in client.list_artifacts(run.info.run_id)}
        assert {"config.json", "figures", "per_landmark.csv"} <= names


def test_a_sigkilled_worker_s_cell_is_retried_through_the_database_heartbeat(
    tmp_path: Path, postgres_url: str, tracking_uri: str, smoke_data: None
) -> None:
    kill_mid_cell_and_retry(postgres_url, tracking_uri, tmp_path)


def test_two_tune_processes_share_one_study(
    tmp_path: Path, postgres_url: str, tracking_uri: str, smoke_data: None
) -> None:
    logs = [tmp_path / f"tune{seed}.log" for seed in (1, 2)]
    args = [*SMOKE, "--trials", "2", "--device", "cpu", "--storage", postgres_url]
    args += ["--study", "shared", "--tracking-uri", tracking_uri]
    processes = [
        start_bench(tmp_path, log, "tune", *args, "--seed", str(seed))
        for seed, log in zip((1, 2), logs, strict=True)
    ]
    with reaped(processes) as tuners:
        codes = wait_all(tuners, logs)
    assert codes == [0, 0], tails(logs)
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    runs = cell_runs(tracking_uri, "cathdet-tune")
    assert Counter(run.data.tags["trial"] for run in runs) == Counter(["0", "1", "2", "3"])
    assert {run.data.tags["study"] for run in runs} == {"shared"}
    parents = {run.data.tags["mlflow.parentRunId"] for run in runs}
    assert len(parents) == 2  # one parent run per tune process


def test_a_tuner_that_loses_the_schema_race_on_postgresql_opens_the_storage(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `bench tune` on a fresh database once failed in CI with DuplicateTable "relation
    studies already exists": the rival had committed the table after Optuna checked for it."""
    queue.open_storage(postgres_url)
    calls = lose_the_schema_race_once(monkeypatch)
    monkeypatch.setattr(queue.time, "sleep", lambda seconds: None)
    queue.open_storage(postgres_url)
    assert calls == ["raced", "checked"]
