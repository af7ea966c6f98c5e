"""Helpers of the queue tests: worker processes, and what a finished queue must look like."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from optuna.trial import TrialState

from bench.run.cell import CellConfig, cell_key
from bench.run.grid import expand_cells, load_grid
from bench.scale import queue
from bench.track.tracking import ROLE_TAG

SMOKE = ["--grid", "cathdet", "--profile", "smoke"]
WORKER_TIMEOUT_S = 300  # generous: the suite shares 2 cores with other runs


def bench_argv(*args: str) -> list[str]:
    """`bench ARGS` with this interpreter (the console script may not be on PATH)."""
    return [sys.executable, "-c", "from bench.cli import main; main()", *args]


def start_bench(cwd: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`bench ARGS` in its own process group (killable as a group), output to `log`."""
    with log.open("wb") as output:
        return subprocess.Popen(
            bench_argv(*args),
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_worker(
    queue_url: str, tracking_uri: str, cwd: Path, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    """`bench worker` on the CPU with one thread and quick polling."""
    return start_bench(
        cwd,
        log,
        "worker",
        "--queue",
        queue_url,
        "--tracking-uri",
        tracking_uri,
        "--device",
        "cpu",
        "--threads",
        "1",
        "--poll",
        "0.5",
        *extra,
    )


@contextlib.contextmanager
def reaped(processes: list[subprocess.Popen[bytes]]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Kills whatever is still running when the block ends (a failed or timed-out test)."""
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def wait_all(processes: Sequence[subprocess.Popen[bytes]], logs: Sequence[Path]) -> list[int]:
    """Exit codes of all processes; AssertionError with their logs past WORKER_TIMEOUT_S."""
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"workers still running after {WORKER_TIMEOUT_S} s:\n{tails(logs)}"
            ) from None
    return codes


def wait_until(condition: Callable[[], bool], what: str, logs: Sequence[Path]) -> None:
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{tails(logs)}")
        time.sleep(0.2)


def tails(logs: Sequence[Path], lines: int = 40) -> str:
    parts = []
    for log in logs:
        text = log.read_text(errors="replace").splitlines() if log.exists() else []
        parts.append(f"--- {log.name}\n" + "\n".join(text[-lines:]))
    return "\n".join(parts)


def cell_runs(tracking_uri: str, experiment: str) -> list[Any]:
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment} in {tracking_uri}"
    return list(
        client.search_runs(
            [found.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'cell'", max_results=1000
        )
    )


def assert_each_cell_finished_once(
    queue_url: str, tracking_uri: str, cells: Sequence[CellConfig]
) -> tuple[list[Any], list[Any]]:
    """Every cell has exactly one COMPLETE trial and exactly one FINISHED MLflow run, the one
    its trial names, with the trial's value as the run's last validation metric; nothing is
    left waiting or running. Returns (trials, cell runs)."""
    keys = {cell_key(cell) for cell in cells}
    [grid] = queue.queued_grids(queue.open_storage(queue_url))
    trials = grid.study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert Counter(t.user_attrs[queue.KEY_ATTR] for t in complete) == Counter(keys)

    runs = cell_runs(tracking_uri, cells[0].grid)
    finished = [run for run in runs if run.info.status == "FINISHED"]
    assert Counter(run.data.tags["cell_key"] for run in finished) == Counter(keys)
    by_id = {run.info.run_id: run for run in finished}
    for trial in complete:
        run = by_id[trial.user_attrs[queue.RUN_ATTR]]
        assert run.data.tags["cell_key"] == trial.user_attrs[queue.KEY_ATTR]
        assert run.data.tags["queue_trial"] == str(trial.number)
        if run.data.tags["outcome"] == "diverged":
            assert trial.value == math.inf
        else:
            assert trial.value == run.data.metrics["val_distance"]
    return trials, runs


def enqueue(args: list[str]) -> tuple[int, str, str]:
    from click.testing import CliRunner

    from bench.cli import main

    result = CliRunner().invoke(main, ["run", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def smoke_cells(**narrow: Any) -> list:
    return expand_cells(load_grid("cathdet"), "smoke", **narrow)


def kill_mid_cell_and_retry(url: str, tracking_uri: str, tmp_path: Path) -> None:
    """Worker A takes the only cell and is SIGKILLed after its first epoch; worker B, started
    then, retries the cell after the grace period and finishes it."""
    cells = smoke_cells(methods=["adaloss"], lrs=[1e-3], epochs=12)
    narrow = ["--methods", "adaloss", "--lrs", "1e-3", "--epochs", "12"]
    code, _, err = enqueue([*SMOKE, *narrow, "--queue", url, "--tracking-uri", tracking_uri])
    assert code == 0, err
    liveness = ["--heartbeat", "1", "--grace", "3"]
    logs = [tmp_path / "doomed.log", tmp_path / "survivor.log"]
    with reaped([start_worker(url, tracking_uri, tmp_path, logs[0], *liveness)]) as workers:

        def first_epoch_logged() -> bool:
            runs = cell_runs(tracking_uri, "cathdet")
            return bool(runs) and "train_loss" in runs[0].data.metrics

        wait_until(first_epoch_logged, "the doomed worker's first epoch", logs)
        os.killpg(workers[0].pid, signal.SIGKILL)
        assert workers[0].wait(timeout=30) == -signal.SIGKILL
        workers.append(start_worker(url, tracking_uri, tmp_path, logs[1], *liveness))
        [code] = wait_all(workers[1:], logs)
    assert code == 0, tails(logs)
    trials, runs = assert_each_cell_finished_once(url, tracking_uri, cells)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].system_attrs["failed_trial"] == trials[0].number
    lost = [run for run in runs if run.info.status != "FINISHED"]
    assert len(lost) == 1 and lost[0].info.run_id == trials[0].user_attrs[queue.RUN_ATTR]
    assert (lost[0].info.status, lost[0].data.tags["outcome"]) == ("KILLED", "worker lost")
    lost_parent = MlflowClient(tracking_uri).get_run(lost[0].data.tags["mlflow.parentRunId"])
    assert lost_parent.info.status == "KILLED"
    finished = next(run for run in runs if run.info.status == "FINISHED")
    history = MlflowClient(tracking_uri).get_metric_history(finished.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == list(range(1, 13))
