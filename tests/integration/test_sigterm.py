"""SIGTERM (what Slurm, container runtimes, `timeout` and shutdowns send) is Ctrl-C for
`bench run`: open runs KILLED, cell processes ended, exit 143; and a cell process whose parent
dies by SIGKILL ends by itself instead of waiting for cells for ever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

GRID = (
    "task: cathdet\nlrs: [1.0e-3]\nmethods:\n  sigma5: {schedule: fixed, sigma: 5}\n"
    "  sigma40: {schedule: fixed, sigma: 40}\n"
)


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone while we looked
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_grid(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, set[int]]:
    """A two-cell grid training two at a time, once both cells have started: the process, the
    store and its two cell processes."""
    grid = tmp_path / "term.yaml"
    grid.write_text(GRID)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    command = [
        sys.executable, "-m", "bench", "run", "--grid", str(grid), "--profile", "smoke",
        "--epochs", "200", "--device", "cpu", "--jobs", "2", "--tracking-uri", uri,
        "--data-root", str(tmp_path / "datasets"),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "mlruns" / "checkpoints"
    deadline = time.monotonic() + 300
    while len(list(checkpoints.glob("*/*.pt"))) < 2:
        assert process.poll() is None, "the grid ended before both cells checkpointed"
        assert time.monotonic() < deadline, "no checkpoints appeared"
        time.sleep(0.1)
    cells = {pid for pid in children(process.pid) if b"spawn_main" in _cmdline(pid)}
    assert len(cells) == 2
    return process, uri, cells


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def wait_gone(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    return {pid for pid in pids if alive(pid)}


def test_sigterm_marks_the_open_runs_killed_ends_the_cells_and_exits_143(tmp_path: Path) -> None:
    process, uri, cells = start_grid(tmp_path)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    assert wait_gone(cells, 30) == set()
    client = MlflowClient(uri)
    (experiment,) = client.search_experiments(filter_string="name = 'term'")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3  # the parent and two cells
    assert {run.info.status for run in runs} == {"KILLED"}


def test_cell_processes_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    process, _, cells = start_grid(tmp_path)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert wait_gone(cells, 30) == set()
