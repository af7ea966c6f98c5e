"""A `bench run` killed with SIGKILL mid-cell leaves RUNNING runs; the next run of the grid closes
them (KILLED, naming the runs that take over), `--dry-run` calls the cell interrupted, and the
report counts only the run that finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from bench.track.orphans import SUPERSEDED_TAG
from bench.track.report import build_report
from bench.track.tracking import ROLE_TAG

GRID = "task: cathdet\nlrs: [1.0e-3]\nmethods:\n  sigma5: {schedule: fixed, sigma: 5}\n"


@pytest.mark.slow
def test_a_killed_grid_is_closed_and_superseded_by_the_next_run(tmp_path: Path) -> None:
    grid = tmp_path / "orphan.yaml"
    grid.write_text(GRID)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    bench = [sys.executable, "-c", "from bench.cli import main; main()"]
    command = [
        *bench, "run", "--grid", str(grid), "--profile", "smoke", "--epochs", "40",
        "--device", "cpu", "--tracking-uri", uri, "--data-root", str(tmp_path / "datasets"),
    ]  # fmt: skip
    first = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoints = tmp_path / "mlruns" / "checkpoints"
    deadline = time.monotonic() + 300
    while not any(checkpoints.glob("*/*.pt")):
        assert first.poll() is None, "the grid ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    client = MlflowClient(uri)
    (experiment,) = client.search_experiments(filter_string="name = 'orphan'")
    before = client.search_runs([experiment.experiment_id])
    assert {run.info.status for run in before} == {"RUNNING"}  # what SIGKILL leaves

    dry = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, check=False)
    assert dry.returncode == 0, dry.stderr
    (row,) = [line for line in dry.stdout.splitlines() if "sigma5" in line]
    assert "interrupted (checkpoint at epoch" in row

    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    runs = {run.info.run_id: run for run in client.search_runs([experiment.experiment_id])}
    assert "RUNNING" not in {run.info.status for run in runs.values()}
    old = {run.data.tags[ROLE_TAG]: runs[run.info.run_id] for run in before}
    old_ids = {run.info.run_id for run in before}
    new = {run.data.tags[ROLE_TAG]: run for run in runs.values() if run.info.run_id not in old_ids}
    assert new["cell"].info.status == "FINISHED"
    for role in ("parent", "cell"):
        assert old[role].info.status == "KILLED"
        assert old[role].data.tags[SUPERSEDED_TAG] == new[role].info.run_id
    assert old["cell"].data.tags["outcome"] == "interrupted"

    report = build_report(uri, "orphan", profile="smoke")
    assert list(report.records.run_id) == [new["cell"].info.run_id]
