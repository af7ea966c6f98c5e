"""Optuna's shared storage as the work queue of a grid spread over many machines.

A queued grid is an Optuna study named `grid:<name>` whose trials are the grid's cells: each
trial is enqueued (state WAITING) with the fixed parameter `cell_key` and the cell's whole config
in its user attributes. Workers pop WAITING trials (Optuna's own atomic WAITING -> RUNNING
transition, the one `Study.ask` uses), train the cell and tell the trial COMPLETE or FAIL.

Liveness is Optuna's heartbeat: a worker records a heartbeat for its trial every
`heartbeat_interval` seconds; any worker that finds a RUNNING trial whose heartbeat is older than
`grace_period` fails it, and `RetryHeartbeatStaleTrialCallback` enqueues a copy (same cell) that
the next free worker takes. RDB storages (PostgreSQL, MySQL, SQLite) implement heartbeats; Optuna
5's journal-file storage does not, so `HeartbeatJournalStorage` adds them by recording the beat
as a trial system attribute in the journal.

Storage URLs: any SQLAlchemy URL Optuna accepts (`postgresql+psycopg2://user@host/db`,
`sqlite:///mlruns/optuna.db`, ...) or `journal:PATH` for a journal file (on a file system all
workers share, e.g. NFS).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from bench.run.cell import CellConfig, cell_key
from bench.scale.timing import Liveness
from bench.track.tracking import database_url

DEFAULT_STUDY_STORAGE = "sqlite:///mlruns/optuna.db"
JOURNAL_PREFIX = "journal:"
REMOTE_RDB_SCHEMES = ("postgresql", "mysql", "mariadb", "oracle", "mssql", "cockroachdb")
SCHEMA_ATTEMPTS = 3
GRID_STUDY_PREFIX = "grid:"
KIND_ATTR = "bench.kind"  # study user attribute: "cells" for a queued grid, "tune" for a study
CELLS_KIND = "cells"
TRACKING_ATTR = "tracking_uri"  # study user attribute: where the queueing process tracks runs
CELL_ATTR, KEY_ATTR, RUN_ATTR = "cell", "cell_key", "mlflow_run_id"  # trial user attributes
HEARTBEAT_ATTR = "bench.heartbeat"  # journal trial system attribute: epoch seconds of last beat


class QueueError(ValueError):
    """A storage URL or a queued study is unusable; the message is one line."""


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """A journal storage with Optuna's heartbeat protocol (Optuna 5 has none for journals).

    The beat is the trial system attribute `bench.heartbeat` (the writer's time.time()); a
    RUNNING trial is stale when neither its last beat nor its start lies within the grace period
    (a retried trial inherits the dead trial's old beat, so its start counts too). Clocks of the
    workers' machines must agree to within a small part of the grace period (NTP).
    """

    def __init__(self, path: str, liveness: Liveness) -> None:
        super().__init__(JournalFileBackend(path))
        self.liveness = liveness

    def record_heartbeat(self, trial_id: int) -> None:
        # A trial another worker already failed as stale cannot be updated; its beat is moot.
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            seen = [float(trial.system_attrs.get(HEARTBEAT_ATTR, 0.0))]
            if trial.datetime_start is not None:
                seen.append(trial.datetime_start.timestamp())
            if now - max(seen) > self.liveness.grace_s:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.liveness.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Any:
        return _retry_callback(self.liveness)


def _retry_callback(liveness: Liveness) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=liveness.max_retry)


def is_journal(url: str) -> bool:
    return url.startswith(JOURNAL_PREFIX)


def is_remote(url: str) -> bool:
    """True for a database server URL (PostgreSQL, MySQL, ...): several machines can share it."""
    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
    return scheme in REMOTE_RDB_SCHEMES


def local_tracking_warning(queue_url: str, tracking_uri: str) -> str | None:
    """The warning to print when workers on other machines would each track into their own
    local SQLite file instead of one shared MLflow store; None when the pair is consistent."""
    if is_remote(queue_url) and tracking_uri.startswith("sqlite:"):
        return (
            f"warning: the queue {redact(queue_url)} is shared over the network but MLflow tracks "
            f"into the local file {tracking_uri}: runs of workers on other machines will not be "
            "in it; set MLFLOW_TRACKING_URI (or --tracking-uri) to your `mlflow server`, "
            "e.g. http://HOST:5000 (docs/scale-out.md)"
        )
    return None


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for messages."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in credentials else ''}@{host}"


def open_storage(url: str, liveness: Liveness | None = None) -> BaseStorage:
    """The Optuna storage at `url`, with heartbeats and retry of stale trials.

    url: an RDB URL or `journal:PATH`. A local SQLite file's folder is created. Raises
    QueueError naming the URL and the fix when it cannot be opened.
    """
    liveness = liveness or Liveness()
    if is_journal(url):
        path = Path(url[len(JOURNAL_PREFIX) :])
        if not path.name:
            raise QueueError(f"{url}: a journal storage needs a file, e.g. journal:/nfs/queue.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        return HeartbeatJournalStorage(str(path), liveness)
    if "://" not in url:
        raise QueueError(
            f"{url}: not an Optuna storage URL; use e.g. sqlite:///mlruns/optuna.db, "
            "postgresql+psycopg2://USER@HOST/DB or journal:/shared/queue.log"
        )
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    # Long cells leave pooled connections idle for hours; servers and firewalls drop those.
    engine_kwargs: dict[str, Any] = {} if url.startswith("sqlite") else {"pool_pre_ping": True}
    attempts = 0
    try:
        while True:
            try:
                return _rdb_storage(url, engine_kwargs, liveness)
            except sqlalchemy.exc.DBAPIError as error:
                if not _lost_schema_race(error):
                    raise
                attempts += 1
                if attempts == SCHEMA_ATTEMPTS:
                    raise
                time.sleep(attempts)
    except ImportError as error:
        raise QueueError(f"{redact(url)}: missing database driver: {error}") from None
    except Exception as error:  # SQLAlchemy's connection errors carry several lines
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise QueueError(f"{redact(url)}: cannot open the Optuna storage: {first}") from None


def _lost_schema_race(error: sqlalchemy.exc.DBAPIError) -> bool:
    """Whether `error` comes from several processes creating the schema of an empty database
    at once; the schema exists once the winner is done, so opening again succeeds.

    Optuna checks each table and type before creating it. A rival whose CREATE is still open
    makes ours fail on a duplicate system-catalog key (IntegrityError); one that has committed
    since our check makes it fail on the object itself, an error saying "already exists"
    (PostgreSQL's DuplicateTable or DuplicateObject for the enum types, SQLite's and MySQL's
    OperationalError).
    """
    return isinstance(error, sqlalchemy.exc.IntegrityError) or "already exists" in str(error.orig)


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], liveness: Liveness) -> RDBStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            database_url(url),
            engine_kwargs=engine_kwargs,
            heartbeat_interval=liveness.heartbeat_interval,
            grace_period=liveness.grace_period,
            heartbeat_stale_trial_callback=_retry_callback(liveness),
        )


def grid_study_name(grid: str) -> str:
    return f"{GRID_STUDY_PREFIX}{grid}"


@dataclass(frozen=True)
class EnqueueSummary:
    """What `enqueue_cells` did: cells newly WAITING, and cells it left alone because a trial
    of the same cell is already waiting, running or complete."""

    study: str
    added: int
    already_queued: int
    already_complete: int


def enqueue_cells(
    storage: BaseStorage, grid: str, cells: Sequence[CellConfig], tracking_uri: str
) -> EnqueueSummary:
    """Puts `cells` into the grid's study as WAITING trials (created with the study if needed).

    A cell whose trial is waiting, running or complete is not queued again (`skip_if_exists`);
    a cell whose every trial FAILED (an error in the cell, not a lost worker, which is retried
    by itself) is queued once more, as `bench run` retries failed cells. The study records
    `tracking_uri`, the MLflow store workers log to unless they are told otherwise.
    """
    study = optuna.create_study(
        storage=storage,
        study_name=grid_study_name(grid),
        direction=StudyDirection.MINIMIZE,
        load_if_exists=True,
    )
    study.set_user_attr(KIND_ATTR, CELLS_KIND)
    study.set_user_attr(TRACKING_ATTR, tracking_uri)
    states = trial_states_by_key(study.get_trials(deepcopy=False))
    added = queued = complete = 0
    for cell in cells:
        key = cell_key(cell)
        seen = states.get(key, set())
        if TrialState.COMPLETE in seen:
            complete += 1
            continue
        if seen & {TrialState.WAITING, TrialState.RUNNING}:
            queued += 1
            continue
        study.enqueue_trial(
            {KEY_ATTR: key},
            user_attrs={KEY_ATTR: key, CELL_ATTR: cell.to_dict()},
            skip_if_exists=not seen,  # only FAILED trials of this cell exist: queue it again
        )
        added += 1
    return EnqueueSummary(study.study_name, added, queued, complete)


def enqueue_grid(
    queue_url: str,
    grid: str,
    cells: Sequence[CellConfig],
    tracking_uri: str,
    data_root: Path | None = None,
) -> EnqueueSummary:
    """`bench run --queue`: creates the MLflow store and the grid's experiment here, once, before
    any worker starts, then queues the cells that have no FINISHED run (counted as complete)."""
    from bench.run.runner import plan
    from bench.track import tracking

    client = tracking.open_store(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, tracking_uri, grid)
    to_queue, finished = plan(
        cells, tracking.cell_runs(client, experiment_id), force=False, data_root=data_root
    )
    summary = enqueue_cells(open_storage(queue_url), grid, to_queue, tracking_uri)
    return dataclasses.replace(summary, already_complete=summary.already_complete + len(finished))


def queue_states(storage: BaseStorage, grid: str) -> dict[str, str]:
    """cell_key -> the state of the cell's newest trial in the grid's queue ("waiting",
    "running", "complete", "fail"); {} when the grid was never queued there."""
    name = grid_study_name(grid)
    if name not in {study.study_name for study in storage.get_all_studies()}:
        return {}
    study = optuna.load_study(study_name=name, storage=storage)
    return {
        str(trial.user_attrs[KEY_ATTR]): trial.state.name.lower()
        for trial in study.get_trials(deepcopy=False)  # oldest first: the newest one wins
        if KEY_ATTR in trial.user_attrs
    }


def trial_states_by_key(trials: Sequence[FrozenTrial]) -> dict[str, set[TrialState]]:
    """cell_key -> the states of the cell's trials (retries included)."""
    states: dict[str, set[TrialState]] = {}
    for trial in trials:
        key = trial.user_attrs.get(KEY_ATTR)
        if key is not None:
            states.setdefault(str(key), set()).add(trial.state)
    return states


@dataclass(frozen=True)
class QueuedGrid:
    """A queued grid's study, with the storage and id the worker addresses it by."""

    study: optuna.Study
    storage: BaseStorage
    study_id: int

    def trials(self, *states: TrialState) -> list[FrozenTrial]:
        return self.storage.get_all_trials(self.study_id, deepcopy=False, states=states)


def queued_grids(storage: BaseStorage) -> list[QueuedGrid]:
    """The queued grids in `storage`, oldest first."""
    return [
        QueuedGrid(
            optuna.load_study(study_name=frozen.study_name, storage=storage),
            storage,
            storage.get_study_id_from_name(frozen.study_name),
        )
        for frozen in storage.get_all_studies()
        if frozen.user_attrs.get(KIND_ATTR) == CELLS_KIND
    ]


@dataclass(frozen=True)
class ClaimedCell:
    """A trial this worker moved from WAITING to RUNNING, and the cell it stands for.

    previous_run_id: the MLflow run of a dead worker's attempt at the same cell, if any.
    """

    grid: QueuedGrid
    trial: FrozenTrial
    trial_id: int
    cell: CellConfig
    previous_run_id: str | None


def fail_stale_trials(study: optuna.Study) -> None:
    """Fails RUNNING trials whose worker stopped beating and queues their retries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def claim_next_cell(
    grids: Sequence[QueuedGrid], on_invalid: Callable[[str], None]
) -> ClaimedCell | None:
    """Pops the oldest WAITING trial of the first grid that has one; None when none waits.

    Stale trials of every grid are failed (and retried) first, so a dead worker's cell is
    taken like any other. The WAITING -> RUNNING update is atomic in the storage: of two
    workers racing for one trial exactly one gets it (the update `Study.ask` relies on too).
    A trial whose cell cannot be read is told FAIL and reported to `on_invalid`.
    """
    for grid in grids:
        fail_stale_trials(grid.study)
        for waiting in grid.trials(TrialState.WAITING):
            trial_id = grid.storage.get_trial_id_from_study_id_trial_number(
                grid.study_id, waiting.number
            )
            try:
                if not grid.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            trial = grid.storage.get_trial(trial_id)
            try:
                cell = queued_cell(trial)
            except QueueError as error:
                grid.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
                on_invalid(f"{grid.study.study_name}: {error}")
                continue
            return ClaimedCell(grid, trial, trial_id, cell, trial.user_attrs.get(RUN_ATTR))
    return None


def queued_cell(trial: FrozenTrial) -> CellConfig:
    """The cell a queued trial stands for; QueueError when its config no longer matches its key
    (queued by a different version of bench)."""
    try:
        cell = CellConfig.from_dict(trial.user_attrs[CELL_ATTR])
    except (KeyError, TypeError, ValueError) as error:
        raise QueueError(f"trial {trial.number} holds no valid cell config: {error}") from None
    if cell_key(cell) != trial.user_attrs.get(KEY_ATTR):
        raise QueueError(
            f"trial {trial.number}: the cell config hashes to {cell_key(cell)}, not its queued "
            f"key {trial.user_attrs.get(KEY_ATTR)}; queue the grid again with this bench version"
        )
    return cell


def has_running(grids: Sequence[QueuedGrid]) -> bool:
    """True while some worker still trains a cell (which may come back if that worker dies)."""
    return any(grid.trials(TrialState.RUNNING) for grid in grids)


def still_claimed(claimed: ClaimedCell) -> bool:
    """False once another worker failed this trial as stale (it then retrains the cell)."""
    return bool(claimed.grid.storage.get_trial(claimed.trial_id).state == TrialState.RUNNING)


def record_run(claimed: ClaimedCell, run_id: str) -> None:
    """Notes the cell's MLflow run on its trial, so that whoever retries the cell after this
    worker dies can close that run."""
    claimed.grid.storage.set_trial_user_attr(claimed.trial_id, RUN_ATTR, run_id)


def complete(claimed: ClaimedCell, value: float) -> bool:
    """Tells the trial COMPLETE with `value`; False when it was failed as stale meanwhile."""
    try:
        told = claimed.grid.study.tell(claimed.trial.number, value, skip_if_finished=True)
    except optuna.exceptions.UpdateFinishedTrialError:  # failed between the check and the write
        return False
    return bool(told.state == TrialState.COMPLETE)


def fail(claimed: ClaimedCell) -> None:
    """Tells the trial FAIL (an error in the cell: retrying it would fail again)."""
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        claimed.grid.study.tell(claimed.trial.number, state=TrialState.FAIL, skip_if_finished=True)


def release(claimed: ClaimedCell, liveness: Liveness) -> None:
    """Gives an interrupted cell back to the queue now: FAIL, and a WAITING copy for the next
    worker (what the heartbeat would do after the grace period)."""
    if not still_claimed(claimed):
        return  # already failed as stale, and retried by whoever noticed
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        claimed.grid.study.tell(claimed.trial.number, state=TrialState.FAIL)
        failed = claimed.grid.storage.get_trial(claimed.trial_id)
        _retry_callback(liveness)(claimed.grid.study, failed)


@contextlib.contextmanager
def heartbeat(storage: BaseStorage, trial_id: int) -> Iterator[None]:
    """Records the trial's heartbeat now and every interval until the block ends."""
    interval = storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None
    if interval is None:
        yield
        return
    assert isinstance(storage, BaseHeartbeat)
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
