"""The Optuna work queue: storage URLs, enqueueing cells, claiming them, and heartbeats."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState
from schema_race import lose_the_schema_race_once

from bench.run.cell import cell_key
from bench.run.grid import expand_cells, load_grid
from bench.scale import queue, timing
from bench.track.tracking import database_url

URI = "sqlite:///unused/mlflow.db"


@pytest.fixture(autouse=True)
def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def smoke_cells() -> list:
    return expand_cells(load_grid("cathdet"), "smoke")


def journal(tmp_path: Path, liveness: timing.Liveness | None = None) -> queue.BaseStorage:
    """A fresh handle on the test's journal file: one per simulated worker process."""
    return queue.open_storage(f"journal:{tmp_path / 'queue.log'}", liveness)


def never_invalid(message: str) -> None:
    raise AssertionError(f"unexpected invalid trial: {message}")


def test_storage_urls_open_the_right_backend(tmp_path: Path) -> None:
    assert isinstance(journal(tmp_path), queue.HeartbeatJournalStorage)
    rdb = queue.open_storage(f"sqlite:///{tmp_path / 'deep' / 'optuna.db'}")
    assert isinstance(rdb, RDBStorage) and (tmp_path / "deep" / "optuna.db").exists()
    assert rdb.get_heartbeat_interval() == 60  # seconds, the default bench worker --help shows
    with pytest.raises(queue.QueueError, match=r"^queue\.db: not an Optuna storage URL; use e\.g"):
        queue.open_storage("queue.db")
    with pytest.raises(queue.QueueError, match="a journal storage needs a file"):
        queue.open_storage("journal:")
    with pytest.raises(
        queue.QueueError, match=r"postgresql\+psycopg2://bob:\*\*\*@127\.0\.0\.1:1/x"
    ):
        queue.open_storage("postgresql+psycopg2://bob:secret@127.0.0.1:1/x")


def test_a_process_that_loses_the_schema_race_opens_the_storage_on_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    queue.open_storage(url)  # the rival: the schema exists
    calls = lose_the_schema_race_once(monkeypatch)
    monkeypatch.setattr(queue.time, "sleep", lambda seconds: None)
    storage = queue.open_storage(url)
    assert calls == ["raced", "checked"]
    assert isinstance(storage, RDBStorage)


def test_other_database_errors_are_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "optuna.db").write_text("not a database")
    monkeypatch.setattr(queue.time, "sleep", lambda seconds: pytest.fail("retried"))
    with pytest.raises(queue.QueueError, match=r"optuna\.db: cannot open the Optuna storage: "):
        queue.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")


def test_bare_postgresql_urls_use_the_installed_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert database_url("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert database_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert database_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_a_remote_queue_with_local_sqlite_tracking_is_warned_about() -> None:
    remote = "postgresql+psycopg2://bob:pw@db.lab/queue"
    warning = queue.local_tracking_warning(remote, "sqlite:///mlruns/mlflow.db")
    assert warning is not None and "sqlite:///mlruns/mlflow.db" in warning
    assert "pw" not in warning and "bob:***@db.lab" in warning
    assert queue.local_tracking_warning(remote, "http://db.lab:5000") is None
    assert queue.local_tracking_warning("sqlite:///q.db", "sqlite:///mlruns/mlflow.db") is None
    assert queue.local_tracking_warning("journal:/nfs/q.log", "sqlite:///m.db") is None
    assert queue.is_remote("mysql+pymysql://u@h/db") and not queue.is_remote("journal:x")
    assert queue.redact("postgresql://bob@h/db") == "postgresql://bob@h/db"


def claim_all(storage: queue.BaseStorage) -> list[queue.ClaimedCell]:
    claimed = []
    while (cell := queue.claim_next_cell(queue.queued_grids(storage), never_invalid)) is not None:
        claimed.append(cell)
    return claimed


def test_enqueue_skips_queued_and_complete_cells_and_requeues_failed_ones(tmp_path: Path) -> None:
    cells = smoke_cells()
    storage = journal(tmp_path)
    first = queue.enqueue_cells(storage, "cathdet", cells, URI)
    assert (first.study, first.added, first.already_queued, first.already_complete) == (
        "grid:cathdet",
        10,
        0,
        0,
    )
    again = queue.enqueue_cells(storage, "cathdet", cells, URI)
    assert (again.added, again.already_queued, again.already_complete) == (0, 10, 0)

    grid = queue.queued_grids(storage)[0]
    assert grid.study.user_attrs[queue.TRACKING_ATTR] == URI
    done = queue.claim_next_cell([grid], never_invalid)
    broken = queue.claim_next_cell([grid], never_invalid)
    assert done is not None and broken is not None
    assert queue.complete(done, 1.5)
    queue.fail(broken)
    third = queue.enqueue_cells(storage, "cathdet", cells, URI)
    assert (third.added, third.already_queued, third.already_complete) == (1, 8, 1)
    waiting = [t.user_attrs[queue.KEY_ATTR] for t in grid.trials(TrialState.WAITING)]
    assert waiting.count(cell_key(broken.cell)) == 1 and cell_key(done.cell) not in waiting
    states = queue.queue_states(storage, "cathdet")
    assert states == {
        **{cell_key(cell): "waiting" for cell in cells},
        cell_key(done.cell): "complete",
    }  # the failed cell's newest trial is its new waiting one
    assert queue.queue_states(storage, "face300w") == {}


def test_two_workers_never_claim_the_same_cell(tmp_path: Path) -> None:
    cells = smoke_cells()
    queue.enqueue_cells(journal(tmp_path), "cathdet", cells, URI)
    workers = [journal(tmp_path), journal(tmp_path)]
    taken: list[str] = []
    while True:
        round_ = [queue.claim_next_cell(queue.queued_grids(w), never_invalid) for w in workers]
        found = [claimed for claimed in round_ if claimed is not None]
        taken.extend(cell_key(claimed.cell) for claimed in found)
        if not found:
            break
    assert sorted(taken) == sorted(cell_key(cell) for cell in cells)
    # the claimed trial carries the cell it was queued with, unchanged
    grid = queue.queued_grids(workers[0])[0]
    assert {cell_key(queue.queued_cell(t)) for t in grid.trials(TrialState.RUNNING)} == set(taken)


def test_a_trial_without_a_readable_cell_is_failed_and_skipped(tmp_path: Path) -> None:
    cells = smoke_cells()[:2]
    storage = journal(tmp_path)
    queue.enqueue_cells(storage, "cathdet", cells[1:], URI)
    grid = queue.queued_grids(storage)[0]
    grid.study.enqueue_trial(
        {queue.KEY_ATTR: "0123456789abcdef"},
        user_attrs={queue.KEY_ATTR: "0123456789abcdef", queue.CELL_ATTR: cells[0].to_dict()},
    )
    messages: list[str] = []
    claimed = queue.claim_next_cell([grid], messages.append)
    assert claimed is not None and cell_key(claimed.cell) == cell_key(cells[1])
    assert messages == []
    assert queue.claim_next_cell([grid], messages.append) is None
    assert len(messages) == 1 and "queue the grid again" in messages[0]
    assert [
        t.state for t in grid.study.trials if t.user_attrs[queue.KEY_ATTR].startswith("0123")
    ] == [TrialState.FAIL]


def test_a_worker_without_heartbeat_loses_its_cell_to_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    liveness = timing.Liveness(heartbeat_interval=10, grace_period=30, max_retry=2)
    queue.enqueue_cells(journal(tmp_path, liveness), "cathdet", smoke_cells()[:1], URI)
    dead, alive = journal(tmp_path, liveness), journal(tmp_path, liveness)
    claimed = queue.claim_next_cell(queue.queued_grids(dead), never_invalid)
    assert claimed is not None
    queue.record_run(claimed, "run-of-the-dead-worker")
    now = queue.time.time()
    dead.record_heartbeat(claimed.trial_id)

    # within the grace period nothing is stale and nothing waits
    monkeypatch.setattr(queue.time, "time", lambda: now + 29)
    assert queue.claim_next_cell(queue.queued_grids(alive), never_invalid) is None
    assert queue.still_claimed(claimed)

    # past it, the other worker fails the trial and takes its retry, same cell
    monkeypatch.setattr(queue.time, "time", lambda: now + 31)
    retry = queue.claim_next_cell(queue.queued_grids(alive), never_invalid)
    assert retry is not None
    assert cell_key(retry.cell) == cell_key(claimed.cell)
    assert retry.previous_run_id == "run-of-the-dead-worker"
    assert retry.trial.system_attrs["failed_trial"] == claimed.trial.number
    assert not queue.still_claimed(claimed)
    assert not queue.complete(claimed, 1.0)  # the dead worker's late answer is refused
    states = [t.state for t in retry.grid.study.trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING]


def test_a_recent_heartbeat_keeps_a_long_cell_claimed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    liveness = timing.Liveness(heartbeat_interval=10, grace_period=30)
    queue.enqueue_cells(journal(tmp_path, liveness), "cathdet", smoke_cells()[:1], URI)
    busy, other = journal(tmp_path, liveness), journal(tmp_path, liveness)
    claimed = queue.claim_next_cell(queue.queued_grids(busy), never_invalid)
    assert claimed is not None
    start = queue.time.time()
    monkeypatch.setattr(queue.time, "time", lambda: start + 100)
    busy.record_heartbeat(claimed.trial_id)  # started 100 s ago, beat just now
    monkeypatch.setattr(queue.time, "time", lambda: start + 120)
    assert queue.claim_next_cell(queue.queued_grids(other), never_invalid) is None
    assert queue.still_claimed(claimed)


def test_an_interrupted_worker_gives_its_cell_back_at_once(tmp_path: Path) -> None:
    storage = journal(tmp_path)
    queue.enqueue_cells(storage, "cathdet", smoke_cells()[:1], URI)
    claimed = queue.claim_next_cell(queue.queued_grids(storage), never_invalid)
    assert claimed is not None
    queue.release(claimed, timing.Liveness())
    again = queue.claim_next_cell(queue.queued_grids(journal(tmp_path)), never_invalid)
    assert again is not None and cell_key(again.cell) == cell_key(claimed.cell)
    assert [t.state for t in again.grid.study.trials] == [TrialState.FAIL, TrialState.RUNNING]


def test_heartbeats_are_recorded_while_the_block_runs(tmp_path: Path) -> None:
    storage = journal(tmp_path, timing.Liveness(heartbeat_interval=1))
    queue.enqueue_cells(storage, "cathdet", smoke_cells()[:1], URI)
    claimed = queue.claim_next_cell(queue.queued_grids(storage), never_invalid)
    assert claimed is not None
    with queue.heartbeat(storage, claimed.trial_id):
        pass
    beat = storage.get_trial(claimed.trial_id).system_attrs[queue.HEARTBEAT_ATTR]
    assert abs(beat - queue.time.time()) < 60


@pytest.mark.parametrize("command", ["tune", "worker"])
def test_help_of_the_scale_out_commands_imports_no_heavy_library(command: str) -> None:
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from bench.cli import main\n"
        f"result = CliRunner().invoke(main, [{command!r}, '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = ('torch', 'mlflow', 'optuna', 'pandas', 'matplotlib', 'sqlalchemy')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


class CountingHeartbeat(BaseHeartbeat):
    """A heartbeat storage that counts beats and says when the `wanted`-th came."""

    def __init__(self, interval: float, wanted: int) -> None:
        self.interval, self.wanted = interval, wanted
        self.beats: list[int] = []
        self.enough = threading.Event()

    def record_heartbeat(self, trial_id: int) -> None:
        self.beats.append(trial_id)
        if len(self.beats) >= self.wanted:
            self.enough.set()

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return []

    def get_heartbeat_interval(self) -> int | None:
        return self.interval  # type: ignore[return-value]  # seconds; a float keeps the test short

    def get_heartbeat_stale_trial_callback(self) -> None:
        return None


def test_the_heartbeat_keeps_beating_until_the_block_ends() -> None:
    storage = CountingHeartbeat(interval=0.01, wanted=5)
    with queue.heartbeat(storage, 7):  # type: ignore[arg-type]
        # a long cell: the block lasts until the fifth beat, however slow the machine
        assert storage.enough.wait(timeout=60), f"only {len(storage.beats)} beats in 60 s"
    stopped_at = len(storage.beats)
    time.sleep(0.1)  # ten intervals: a thread still running would have beaten again
    assert len(storage.beats) == stopped_at >= 5
    assert set(storage.beats) == {7}
