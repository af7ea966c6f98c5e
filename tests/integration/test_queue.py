"""The smoke grid through a journal-file queue: `bench run --queue` and `bench worker`.

The MLflow store is a SQLite file (a copy of the session's migrated template); the queue is an
Optuna journal file, the storage for a shared file system without a database server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    start_worker,
    tails,
    wait_all,
)

from bench.run.cell import cell_key
from bench.run.trainer import CellResult
from bench.scale import queue
from bench.scale.worker import Worker, WorkerOptions


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stores without a folder of their own (checkpoints, artifacts) land in tmp, not the repo."""
    monkeypatch.chdir(tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def smoke_data() -> None:
    """Generates the smoke dataset once, before several workers would each make it."""
    from bench.data.sources import load_dataset

    load_dataset("cathdet", profile="smoke")


def fake_result(validation: float) -> CellResult:
    return CellResult(
        outcome="finished",
        epochs_run=1,
        history=[{"train_loss": 0.5, "val_distance": validation, "sigma_mean": 5.0}],
        final_metrics={"test_distance": validation + 1},
        per_landmark=[],
    )


def test_run_queue_enqueues_once_and_says_how_to_start_workers(
    tmp_path: Path, tracking_uri: str
) -> None:
    url = f"journal:{tmp_path / 'queue.log'}"
    code, _, err = enqueue([*SMOKE, "--queue", url, "--tracking-uri", tracking_uri])
    assert code == 0, err
    assert "10 new cells" in err and f"bench worker --queue {url}" in err
    code, _, err = enqueue([*SMOKE, "--queue", url, "--tracking-uri", tracking_uri])
    assert code == 0 and "0 new cells" in err and "10 already queued" in err
    [grid] = queue.queued_grids(queue.open_storage(url))
    waiting = grid.trials(TrialState.WAITING)
    assert sorted(t.user_attrs[queue.KEY_ATTR] for t in waiting) == sorted(
        cell_key(cell) for cell in smoke_cells()
    )
    # the experiment exists before any worker starts (workers must not race to create it)
    assert MlflowClient(tracking_uri).get_experiment_by_name("cathdet") is not None


def test_a_worker_completes_cells_finished_in_mlflow_without_training(
    tmp_path: Path, tracking_uri: str
) -> None:
    url = f"journal:{tmp_path / 'queue.log'}"
    cells = smoke_cells(methods=["sigma5", "sigma25"], lrs=[1e-3])
    narrow = ["--methods", "sigma5,sigma25", "--lrs", "1e-3"]
    assert enqueue([*SMOKE, *narrow, "--queue", url, "--tracking-uri", tracking_uri])[0] == 0
    trained: list[str] = []

    def train(cell: Any, **kwargs: Any) -> CellResult:
        trained.append(cell.method)
        kwargs["on_epoch"](1, fake_result(3.0).history[0])
        return fake_result(3.0)

    options = WorkerOptions(tracking_uri=tracking_uri, train_fn=train)
    first = Worker(queue.open_storage(url), options)
    assert [r.outcome for r in first.run()] == ["finished", "finished"]
    assert trained == ["sigma5", "sigma25"]
    assert_each_cell_finished_once(url, tracking_uri, cells)

    # a cell queued again (here: its trial failed after its run FINISHED) is not retrained
    storage = queue.open_storage(url)
    [grid] = queue.queued_grids(storage)
    done = grid.study.trials[0]
    attrs = {name: done.user_attrs[name] for name in (queue.KEY_ATTR, queue.CELL_ATTR)}
    grid.study.enqueue_trial({queue.KEY_ATTR: attrs[queue.KEY_ATTR]}, user_attrs=attrs)
    second = Worker(storage, options)
    [report] = second.run()
    assert report.outcome == "skipped" and trained == ["sigma5", "sigma25"]
    assert grid.study.trials[-1].state == TrialState.COMPLETE
    assert grid.study.trials[-1].value == 3.0
    assert len(cell_runs(tracking_uri, "cathdet")) == 2


def test_a_worker_that_lost_its_claim_does_not_finish_the_cell(
    tmp_path: Path, tracking_uri: str
) -> None:
    url = f"journal:{tmp_path / 'queue.log'}"
    narrow = ["--methods", "sigma5", "--lrs", "1e-3"]
    assert enqueue([*SMOKE, *narrow, "--queue", url, "--tracking-uri", tracking_uri])[0] == 0

    def train(cell: Any, **kwargs: Any) -> CellResult:
        # meanwhile another worker saw no heartbeat and failed the trial (its retry waits)
        other = queue.open_storage(url)
        [grid] = queue.queued_grids(other)
        [running] = grid.trials(TrialState.RUNNING)
        grid.study.tell(running.number, state=TrialState.FAIL)
        return fake_result(2.0)

    worker = Worker(
        queue.open_storage(url),
        WorkerOptions(tracking_uri=tracking_uri, train_fn=train, wait=False),
    )
    [report] = worker.run()
    assert report.outcome == "failed" and "lost trial 0" in (report.error or "")
    [run] = cell_runs(tracking_uri, "cathdet")
    assert run.info.status == "FAILED"
    text = MlflowClient(tracking_uri).download_artifacts(run.info.run_id, "traceback.txt")
    assert "given to another worker" in Path(text).read_text()
    [grid] = queue.queued_grids(queue.open_storage(url))
    assert [t.state for t in grid.study.trials] == [TrialState.FAIL]


@pytest.mark.slow
def test_three_workers_share_a_journal_queue(
    tmp_path: Path, tracking_uri: str, smoke_data: None
) -> None:
    url = f"journal:{tmp_path / 'queue.log'}"
    assert enqueue([*SMOKE, "--queue", url, "--tracking-uri", tracking_uri])[0] == 0
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    with reaped([start_worker(url, tracking_uri, tmp_path, log) for log in logs]) as workers:
        codes = wait_all(workers, logs)
    assert codes == [0, 0, 0], tails(logs)
    trials, runs = assert_each_cell_finished_once(url, tracking_uri, smoke_cells())
    assert len(trials) == len(runs) == 10  # no retries: nothing died
    parents = {run.data.tags["mlflow.parentRunId"] for run in runs}
    client = MlflowClient(tracking_uri)
    for parent in parents:  # one parent run per worker that took cells, closed FINISHED
        info = client.get_run(parent)
        assert info.info.status == "FINISHED" and info.data.tags["queue"] == "grid:cathdet"
    assert {client.get_run(p).data.tags["worker"] for p in parents} == {
        run.data.tags["worker"] for run in runs
    }


@pytest.mark.slow
def test_a_sigkilled_worker_s_cell_is_retried_from_a_journal_queue(
    tmp_path: Path, tracking_uri: str, smoke_data: None
) -> None:
    kill_mid_cell_and_retry(f"journal:{tmp_path / 'queue.log'}", tracking_uri, tmp_path)
