"""A queue worker: takes queued cells from an Optuna storage until none is left.

Each cell trains in this process with the shared trainer, through the same runner code as
`bench run` (so its MLflow run, artifacts, failure isolation and checkpoints are identical),
while a heartbeat thread tells the queue this worker is alive. The worker opens one parent run
per grid and profile it serves, tagged with the worker's host and process id, and nests its cells
under it. A cell that already has a FINISHED run in MLflow is not trained again: its trial is
completed from that run. An interrupted worker (Ctrl-C) gives its cell back to the queue.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from bench.run.cell import CellConfig, cell_key
from bench.run.progress import Progress
from bench.run.runner import CellReport, RunOptions, TrainFn, plan, run_cells
from bench.scale import queue, timing
from bench.track.orphans import close_orphans
from bench.track.tracking import (
    GridTracker,
    ensure_experiment,
    environment_tags,
    open_store,
    running_runs,
    store_folder,
    tracking_uri,
)

FINISHED_OUTCOMES = ("finished", "diverged")


@dataclass
class WorkerOptions:
    """How a worker runs.

    tracking_uri: the MLflow store; None means MLFLOW_TRACKING_URI, else the store the grid
        was queued with (recorded in its study), else the local default.
    wait: when no cell waits but some are running elsewhere, keep polling every `poll_s`
        seconds (a worker that dies gives its cell back after the grace period) instead of
        exiting. train_fn: None means `bench.run.trainer.train_cell` (tests inject theirs).
    """

    device: str = "cpu"
    tracking_uri: str | None = None
    data_root: Path | None = None
    liveness: timing.Liveness = field(default_factory=timing.Liveness)
    poll_s: float = timing.POLL_S
    wait: bool = True
    command: str = "bench worker"
    train_fn: TrainFn | None = None


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def resolve_tracking_uri(option: str | None, grid: queue.QueuedGrid) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the queueing process's store."""
    if option or os.environ.get("MLFLOW_TRACKING_URI"):
        return tracking_uri(option)
    return tracking_uri(grid.study.user_attrs.get(queue.TRACKING_ATTR))


def trial_value(report: CellReport) -> float:
    """The value a queued cell's trial is told: its last validation metric (inf if diverged)."""
    if report.outcome == "diverged" or report.validation is None:
        return math.inf
    return float(report.validation)


class _ClaimTracker(GridTracker):
    """The worker's GridTracker as seen by one queued cell: it notes the cell's run on the trial
    and refuses to finish a run whose trial was taken away (another worker retrains that cell).
    """

    def __init__(self, tracker: GridTracker, claimed: queue.ClaimedCell) -> None:
        super().__init__(
            tracker.client, tracker.experiment_id, tracker.parent_run_id, tracker.shared_tags
        )
        self.claimed = claimed

    def start_cell(self, cell: CellConfig, device: str) -> str:
        run_id = super().start_cell(cell, device)
        queue.record_run(self.claimed, run_id)
        self.client.set_tag(run_id, "queue_trial", str(self.claimed.trial.number))
        return run_id

    def finish_cell(
        self, run_id: str, cell: CellConfig, result: Any, validation_metric: str
    ) -> None:
        if not queue.still_claimed(self.claimed):
            raise RuntimeError(
                f"this worker lost trial {self.claimed.trial.number} of "
                f"{self.claimed.grid.study.study_name}: its heartbeat was missing for longer than "
                "the grace period, so the cell was given to another worker, which trains it"
            )
        super().finish_cell(run_id, cell, result, validation_metric)


class Worker:
    """Serves the queued grids of one storage; `run` returns one report per cell it took."""

    def __init__(
        self, storage: Any, options: WorkerOptions, say: Callable[[str], None] = print
    ) -> None:
        self.storage = storage
        self.options = options
        self.say = say
        self.name = worker_name()
        self.trackers: dict[tuple[str, str, str], GridTracker] = {}
        self.reports: dict[tuple[str, str, str], list[CellReport]] = {}
        self.stores: dict[str, Any] = {}

    def run(self) -> list[CellReport]:
        """Takes cells until none waits (and, with `wait`, none runs elsewhere)."""
        done: list[CellReport] = []
        try:
            while True:
                grids = queue.queued_grids(self.storage)
                claimed = queue.claim_next_cell(grids, self.say)
                if claimed is None:
                    if self.options.wait and queue.has_running(grids):
                        time.sleep(self.options.poll_s)
                        continue
                    break
                done.append(self.serve(claimed))
        except KeyboardInterrupt:
            self.close("KILLED")
            raise
        except Exception:
            self.close("FAILED")
            raise
        self.close(None)
        return done

    def serve(self, claimed: queue.ClaimedCell) -> CellReport:
        """Trains a claimed cell while beating, then tells the queue how it ended. Whatever
        stops this worker on the way (Ctrl-C, an unreachable tracking server) gives the cell
        back to the queue at once."""
        cell = claimed.cell
        waiting = len(claimed.grid.trials(TrialState.WAITING))
        self.say(
            f"{claimed.grid.study.study_name} trial {claimed.trial.number}: cell "
            f"{cell_key(cell)} ({cell.method} lr={cell.lr:g} seed={cell.seed}); "
            f"{waiting} more waiting"
        )
        with queue.heartbeat(self.storage, claimed.trial_id):
            try:
                report = self.train(claimed, waiting + 1)
            except BaseException:
                queue.release(claimed, self.options.liveness)
                raise
        if report.outcome == "skipped":
            queue.complete(claimed, trial_value(report))
            self.say(f"  already FINISHED in MLflow (run {report.run_id}); not retrained")
        elif report.outcome in FINISHED_OUTCOMES:
            if not queue.complete(claimed, trial_value(report)):
                self.say(f"  trial {claimed.trial.number} was failed as stale meanwhile")
        else:
            queue.fail(claimed)
        return report

    def train(self, claimed: queue.ClaimedCell, queued: int) -> CellReport:
        """The cell's report: "skipped" when MLflow already has a FINISHED run of it, else
        what training it here gave (run_cells records it in MLflow)."""
        cell = claimed.cell
        uri = resolve_tracking_uri(self.options.tracking_uri, claimed.grid)
        client, experiment_id = self.experiment(uri, cell.grid)
        if claimed.previous_run_id:
            close_lost_run(client, claimed.previous_run_id)
        # runs (and parent runs) of workers whose process died, on this host or long silent
        orphans = close_orphans(client, running_runs(client, experiment_id))
        runs = {cell_key(cell): cell_runs_of(client, experiment_id, cell)}
        _, skipped = plan([cell], runs, False, self.options.data_root)
        if skipped:
            return skipped[0]
        tracker = self.tracker(uri, client, experiment_id, cell, queued)
        claim_tracker = _ClaimTracker(tracker, claimed)
        claim_tracker.interrupted = {
            cell_key(cell): [r for r in orphans if r.data.tags.get("cell_key") == cell_key(cell)]
        }
        options = RunOptions(
            checkpoint_root=store_folder(uri) / "checkpoints",
            device=self.options.device,
            data_root=self.options.data_root,
            train_fn=self.options.train_fn,
        )
        slot = (uri, cell.grid, cell.profile)
        try:
            [report] = run_cells([cell], claim_tracker, options, Progress(1))
        except KeyboardInterrupt:
            self.reports.setdefault(slot, []).append(CellReport(cell, "killed"))
            raise
        self.reports.setdefault(slot, []).append(report)
        return report

    def experiment(self, uri: str, grid: str) -> tuple[Any, str]:
        """The client of `uri` and the id of the grid's experiment (created if another store
        than the queueing process's is used)."""
        if uri not in self.stores:
            self.stores[uri] = open_store(uri)
        client = self.stores[uri]
        return client, ensure_experiment(client, uri, grid)

    def tracker(
        self, uri: str, client: Any, experiment_id: str, cell: CellConfig, queued: int
    ) -> GridTracker:
        """This worker's parent run for the cell's grid and profile, opened on first use."""
        slot = (uri, cell.grid, cell.profile)
        if slot not in self.trackers:
            self.trackers[slot] = GridTracker.start(
                client,
                experiment_id,
                grid=cell.grid,
                profile=cell.profile,
                shared_tags={
                    **environment_tags(),
                    "worker": self.name,
                    "queue": queue.grid_study_name(cell.grid),
                },
                command=self.options.command,
                cells_total=queued,
            )
        return self.trackers[slot]

    def close(self, status: str | None) -> None:
        """Closes this worker's parent runs with their outcome counts."""
        from bench.run.runner import FAILED_OUTCOMES, outcome_counts

        for slot, tracker in self.trackers.items():
            reports = self.reports.get(slot, [])
            failed = any(report.outcome in FAILED_OUTCOMES for report in reports)
            tracker.finish(status or ("FAILED" if failed else "FINISHED"), outcome_counts(reports))
        self.trackers.clear()


def cell_runs_of(client: Any, experiment_id: str, cell: CellConfig) -> list[Any]:
    """The cell's MLflow runs, newest first."""
    return list(
        client.search_runs(
            [experiment_id],
            filter_string=f"tags.cell_key = '{cell_key(cell)}'",
            order_by=["attributes.start_time DESC"],
            max_results=1000,
        )
    )


def close_lost_run(client: Any, run_id: str) -> None:
    """Marks a dead worker's run of a retried cell KILLED (outcome "worker lost"), and that
    worker's parent run too: nobody else would ever close them."""
    run = client.get_run(run_id)
    if run.info.status != "RUNNING":
        return
    client.set_tag(run_id, "outcome", "worker lost")
    client.set_terminated(run_id, "KILLED")
    parent_id = run.data.tags.get("mlflow.parentRunId")
    if parent_id and client.get_run(parent_id).info.status == "RUNNING":
        client.set_terminated(parent_id, "KILLED")


def reports_by_task(reports: Sequence[CellReport]) -> Mapping[str, list[CellReport]]:
    """Reports grouped by task (each task's summary table has its own metric columns)."""
    grouped: dict[str, list[CellReport]] = {}
    for report in reports:
        grouped.setdefault(report.cell.task, []).append(report)
    return grouped
