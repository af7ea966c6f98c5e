"""Runs a grid's cells with the shared trainer, one MLflow child run per cell.

The parent process owns the MLflow store and the progress display. With `jobs=1` cells train in
this process; with `jobs>1` each of N spawned cell processes trains one cell at a time and sends
its epochs and result back over a queue (they never touch the store). Whatever happens to one
cell (an exception, a dead process) is recorded on that cell's run and the grid goes on; a
diverged cell is a result, not a failure. Ctrl-C marks the open runs KILLED and re-raises.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import os
import queue
import shutil
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.run.cell import CellConfig, cell_key
from bench.run.progress import Progress, cell_label, format_value
from bench.track.claims import Claims, UnlockedClaims
from bench.track.tracking import CELL_DONE, GridTracker, cell_status

TrainFn = Callable[..., Any]
"""`train_cell(cell, *, device, on_epoch, checkpoint_dir, data_root) -> CellResult`."""

FAILED_OUTCOMES = ("failed", "not run")


@dataclass
class CellReport:
    """One row of the final summary.

    outcome: finished | diverged | failed | killed | skipped (done before) | not run (after a
    --fail-fast stop) | running elsewhere (another live process holds its claim; `error` says
    which). validation: the last epoch's validation metric; test: the task's first
    summary metric.
    """

    cell: CellConfig
    outcome: str
    validation: float | None = None
    test: float | None = None
    seconds: float | None = None
    run_id: str | None = None
    error: str | None = None


@dataclass
class RunOptions:
    """How cells execute. train_fn None means `bench.run.trainer.train_cell` (tests inject
    theirs)."""

    checkpoint_root: Path
    device: str = "cpu"
    jobs: int = 1
    fail_fast: bool = False
    force: bool = False
    data_root: Path | None = None
    train_fn: TrainFn | None = None


@dataclass
class TaskMetrics:
    """The two metric names the summary shows for a task."""

    validation: str
    test: str

    @classmethod
    def of(cls, cell: CellConfig, data_root: Path | None = None) -> TaskMetrics:
        """A data-shaped task (keypoints) reads its layout from the cell's cached data."""
        from bench.data.sources import cell_task

        task = cell_task(cell, data_root)
        return cls(task.validation_metric, task.summary_metrics[0])


def default_jobs(device: str) -> int:
    """One process per GPU when `device` is plain "cuda" and several GPUs are visible; two on a
    CPU with at least two cores (measured: 0.82x the wall time of one process on 2 cores, see
    docs/RESULTS.md); else 1."""
    import torch

    if device == "cuda":
        return max(1, torch.cuda.device_count())
    if device == "cpu" and len(os.sched_getaffinity(0)) >= 2:
        return 2
    return 1


def threads_per_process(jobs: int) -> int:
    """The torch threads of each of `jobs` cell processes: the visible cores shared out evenly."""
    return max(1, len(os.sched_getaffinity(0)) // jobs)


def process_devices(device: str, jobs: int) -> list[str]:
    """The device of each process slot: GPUs round-robin for plain "cuda", else `device`."""
    import torch

    count = torch.cuda.device_count() if device == "cuda" else 0
    if count > 1:
        return [f"cuda:{slot % count}" for slot in range(jobs)]
    return [device] * jobs


def plan(
    cells: Sequence[CellConfig],
    runs_by_key: Mapping[str, Sequence[Any]],
    force: bool,
    data_root: Path | None = None,
) -> tuple[list[CellConfig], list[CellReport]]:
    """(cells to run, reports of cells skipped because a FINISHED run of their key exists)."""
    to_run: list[CellConfig] = []
    skipped: list[CellReport] = []
    for cell in cells:
        runs = runs_by_key.get(cell_key(cell), [])
        if force or cell_status(runs) != CELL_DONE:
            to_run.append(cell)
            continue
        finished = next(run for run in runs if run.info.status == "FINISHED")
        metrics = TaskMetrics.of(cell, data_root)
        skipped.append(
            CellReport(
                cell,
                "skipped",
                validation=finished.data.metrics.get(metrics.validation),
                test=finished.data.metrics.get(metrics.test),
                run_id=finished.info.run_id,
            )
        )
    return to_run, skipped


def run_cells(
    cells: Sequence[CellConfig],
    tracker: GridTracker,
    options: RunOptions,
    progress: Progress,
    claims: Claims | None = None,
) -> list[CellReport]:
    """Trains `cells` in order (or over `options.jobs` processes), each once this process holds
    its claim (`bench.track.claims`; None: no other runner to fear); one report per cell."""
    # a process that would never get a cell only takes threads from the ones that do
    options = dataclasses.replace(options, jobs=min(options.jobs, max(1, len(cells))))
    session = _Session(tracker, options, progress, claims or UnlockedClaims())
    progress.plan(cells, options.jobs)
    if options.force:
        for cell in cells:
            shutil.rmtree(options.checkpoint_root / cell_key(cell), ignore_errors=True)
    try:
        if options.jobs <= 1:
            _run_inline(cells, session, options)
        else:
            _run_processes(cells, session, options)
    except KeyboardInterrupt:
        session.kill_open()
        raise
    finally:
        session.claims.close()
    done = {cell_key(report.cell) for report in session.reports}
    not_run = [CellReport(cell, "not run") for cell in cells if cell_key(cell) not in done]
    return session.reports + not_run


def run_grid(
    cells: Sequence[CellConfig],
    *,
    client: Any,
    experiment_id: str,
    grid: str,
    profile: str,
    options: RunOptions,
    command: str,
    progress: Callable[[int], Progress] = Progress,
    claims: Claims | None = None,
) -> list[CellReport]:
    """Skips done cells, opens the parent run, trains the rest, closes the parent run.

    Returns the reports of skipped cells, then those of the cells this call ran (or found
    running elsewhere: `claims`). No parent run is opened when nothing is left to run. Ctrl-C
    closes the parent run KILLED and re-raises.
    """
    from bench.track.orphans import close_orphans, mark_superseded
    from bench.track.tracking import ROLE_TAG, cell_runs, environment_tags, running_runs

    # runs of earlier invocations whose process died (SIGKILL, a crash) are closed first
    orphans = close_orphans(client, running_runs(client, experiment_id))
    to_run, skipped = plan(
        cells, cell_runs(client, experiment_id), options.force, options.data_root
    )
    if not to_run:
        return skipped
    tracker = GridTracker.start(
        client,
        experiment_id,
        grid=grid,
        profile=profile,
        shared_tags=environment_tags(),
        command=command,
        cells_total=len(to_run),
    )
    parents = [run for run in orphans if run.data.tags.get(ROLE_TAG) == "parent"]
    mark_superseded(client, parents, tracker.parent_run_id)
    for run in orphans:
        if "cell_key" in run.data.tags:
            tracker.interrupted.setdefault(run.data.tags["cell_key"], []).append(run)
    display = progress(len(to_run))
    try:
        reports = run_cells(to_run, tracker, options, display, claims)
    except KeyboardInterrupt:
        display.close()
        tracker.finish("KILLED", {"skipped": len(skipped)})
        raise
    display.close()
    counts = outcome_counts(reports)
    failed = any(report.outcome in FAILED_OUTCOMES for report in reports)
    tracker.describe(summary_markdown(skipped + reports, options.data_root))
    tracker.finish("FAILED" if failed else "FINISHED", {**counts, "skipped": len(skipped)})
    return skipped + reports


def outcome_counts(reports: Sequence[CellReport]) -> dict[str, int]:
    """outcome -> number of cells ("not run" becomes "not_run", a valid metric name)."""
    counts: dict[str, int] = {}
    for report in reports:
        name = report.outcome.replace(" ", "_")
        counts[name] = counts.get(name, 0) + 1
    return counts


def summary_rows(
    reports: Sequence[CellReport], data_root: Path | None = None
) -> list[tuple[str, ...]]:
    """The header and one row per cell: cell, outcome, validation metric, test metric, time.
    Cells of a grid with several budgets name their epochs."""
    metrics = TaskMetrics.of(reports[0].cell, data_root)
    header = ("cell", "outcome", f"{metrics.validation} (last epoch)", metrics.test, "time (s)")
    several_budgets = len({report.cell.epochs for report in reports}) > 1
    return [
        header,
        *(
            (
                cell_label(report.cell)
                + (f" epochs={report.cell.epochs}" if several_budgets else ""),
                report.outcome,
                format_value(report.validation),
                format_value(report.test),
                "-" if report.seconds is None else f"{report.seconds:.1f}",
            )
            for report in reports
        ),
    ]


def summary_markdown(reports: Sequence[CellReport], data_root: Path | None = None) -> str:
    """`summary_rows` as a Markdown table (the parent run's description in MLflow)."""
    if not reports:
        return "no cells"
    header, *rows = summary_rows(reports, data_root)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def summary_table(reports: Sequence[CellReport], data_root: Path | None = None) -> str:
    """`summary_rows` as a fixed-width table (the end of `bench run`)."""
    if not reports:
        return "no cells"
    header, *rows = summary_rows(reports, data_root)
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True))
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


@dataclass
class _OpenCell:
    cell: CellConfig
    run_id: str
    slot: int
    started: float
    metrics: TaskMetrics
    last_validation: float | None = None


@dataclass
class _Session:
    """Turns cell events (start, epoch, result, failure) into MLflow records and progress."""

    tracker: GridTracker
    options: RunOptions
    progress: Progress
    claims: Claims
    reports: list[CellReport] = field(default_factory=list)
    open: dict[str, _OpenCell] = field(default_factory=dict)
    stopped: bool = False

    def claim(self, cell: CellConfig) -> bool:
        """Whether this process may train `cell` now: it holds the cell's claim, and no run
        finished it since this invocation planned (another runner may have, just before);
        else the cell is reported as running elsewhere or skipped, and its claim let go."""
        from bench.track.tracking import finished_run

        key = cell_key(cell)
        if not self.claims.try_claim(key):
            holder = self.claims.holder(key)
            self.reports.append(CellReport(cell, "running elsewhere", error=holder))
            self.progress.note(f"{cell_label(cell)}: running elsewhere ({holder})")
            return False
        finished = None
        if not self.options.force:
            finished = finished_run(self.tracker.client, self.tracker.experiment_id, key)
        if finished is not None:
            self.claims.release(key)
            self.reports.append(CellReport(cell, "skipped", run_id=finished.info.run_id))
            self.progress.note(f"{cell_label(cell)}: finished elsewhere meanwhile")
            return False
        return True

    def begin(self, cell: CellConfig, slot: int, device: str) -> str:
        key = cell_key(cell)
        run_id = self.tracker.start_cell(cell, device)
        self.open[key] = _OpenCell(
            cell,
            run_id,
            slot,
            time.perf_counter(),
            TaskMetrics.of(cell, self.options.data_root),
        )
        self.progress.cell_started(slot, cell, device)
        return key

    def epoch(self, key: str, epoch: int, metrics: Mapping[str, float]) -> None:
        entry = self.open[key]
        self.tracker.log_epoch(entry.run_id, epoch, metrics)
        entry.last_validation = metrics.get(entry.metrics.validation, entry.last_validation)
        self.progress.epoch(entry.slot, entry.cell, epoch, metrics, entry.metrics.validation)

    def done(self, key: str, result: Any) -> None:
        entry = self.open[key]
        try:
            self.tracker.finish_cell(entry.run_id, entry.cell, result, entry.metrics.validation)
        except Exception:
            # A cell whose results cannot be recorded has no usable result: it is a failure.
            self.failed(key, traceback.format_exc())
            return
        shutil.rmtree(self.options.checkpoint_root / key, ignore_errors=True)
        if result.history:
            entry.last_validation = result.history[-1].get(entry.metrics.validation)
        self._end(key, result.outcome, test=result.final_metrics.get(entry.metrics.test))

    def failed(self, key: str, traceback_text: str) -> None:
        entry = self.open[key]
        self.tracker.fail_cell(entry.run_id, traceback_text)
        last_line = traceback_text.strip().splitlines()[-1] if traceback_text.strip() else ""
        self._end(key, "failed", error=last_line)
        self.progress.note(f"cell {cell_label(entry.cell)} failed: {last_line}")
        if self.options.fail_fast:
            self.stopped = True

    def kill_open(self) -> None:
        for key in list(self.open):
            self.tracker.kill_cell(self.open[key].run_id)
            self._end(key, "killed")

    def _end(
        self, key: str, outcome: str, *, test: float | None = None, error: str | None = None
    ) -> None:
        entry = self.open.pop(key)
        self.claims.release(key)
        seconds = time.perf_counter() - entry.started
        self.reports.append(
            CellReport(
                entry.cell, outcome, entry.last_validation, test, seconds, entry.run_id, error
            )
        )
        self.progress.cell_ended(entry.slot, entry.cell, outcome, seconds)


def _send_epoch(outbox: Any, slot: int, key: str, epoch: int, metrics: dict[str, float]) -> None:
    """`on_epoch` in a cell process: epochs go to the parent, which logs them."""
    outbox.put(("epoch", slot, key, (epoch, dict(metrics))))


def _train_function(train_fn: TrainFn | None) -> TrainFn:
    if train_fn is not None:
        return train_fn
    from bench.run.trainer import train_cell

    return train_cell


def _run_inline(cells: Sequence[CellConfig], session: _Session, options: RunOptions) -> None:
    train = _train_function(options.train_fn)
    for cell in cells:
        if session.stopped:
            return
        if not session.claim(cell):
            continue
        key = session.begin(cell, 0, options.device)
        try:
            result = train(
                cell,
                device=options.device,
                on_epoch=functools.partial(session.epoch, key),
                checkpoint_dir=options.checkpoint_root / key,
                data_root=options.data_root,
            )
        except Exception:
            session.failed(key, traceback.format_exc())
        else:
            session.done(key, result)


def _run_processes(cells: Sequence[CellConfig], session: _Session, options: RunOptions) -> None:
    context = multiprocessing.get_context("spawn")
    outbox = context.Queue()
    devices = process_devices(options.device, options.jobs)
    threads = threads_per_process(options.jobs)
    inboxes: list[Any] = []
    processes: list[Any] = []

    def start_process(slot: int) -> Any:
        inbox = context.Queue()
        process = context.Process(
            target=_process_main,
            args=(slot, devices[slot], threads, inbox, outbox, options, os.getpid()),
            name=f"bench-cell-process-{slot}",
            daemon=True,
        )
        process.start()
        return inbox, process

    for slot in range(options.jobs):
        inbox, process = start_process(slot)
        inboxes.append(inbox)
        processes.append(process)

    pending = deque(cells)
    busy: dict[int, str] = {}
    idle = list(range(options.jobs))
    interrupted = True
    try:
        while True:
            while idle and pending and not session.stopped:
                cell = pending.popleft()
                if not session.claim(cell):
                    continue
                slot = idle.pop(0)
                busy[slot] = session.begin(cell, slot, devices[slot])
                inboxes[slot].put(cell)
            if not busy:
                break
            try:
                kind, slot, key, payload = outbox.get(timeout=0.5)
            except queue.Empty:
                for slot, process in enumerate(processes):
                    if slot in busy and not process.is_alive():
                        session.failed(
                            busy.pop(slot),
                            f"cell process {slot} ({devices[slot]}) exited with code "
                            f"{process.exitcode} while training this cell\n",
                        )
                        inboxes[slot], processes[slot] = start_process(slot)
                        idle.append(slot)
                continue
            if key not in session.open:
                continue  # from a process already given up for dead; its cell is recorded
            if kind == "epoch":
                session.epoch(key, *payload)
                continue
            busy.pop(slot)
            idle.append(slot)
            if kind == "done":
                session.done(key, payload)
            else:
                session.failed(key, payload)
        interrupted = False
    finally:
        for inbox in inboxes:
            inbox.put(None)
        for process in processes:
            if interrupted:
                process.terminate()
            process.join(timeout=30)


def _process_main(
    slot: int,
    device: str,
    threads: int,
    inbox: Any,
    outbox: Any,
    options: RunOptions,
    parent_pid: int,
) -> None:
    """A cell process: trains the cells it is sent until it receives None, and ends with its
    parent (`die_with_parent`)."""
    import torch

    die_with_parent(parent_pid)
    torch.set_num_threads(threads)
    train = _train_function(options.train_fn)
    try:
        while (cell := inbox.get()) is not None:
            key = cell_key(cell)
            try:
                result = train(
                    cell,
                    device=device,
                    on_epoch=functools.partial(_send_epoch, outbox, slot, key),
                    checkpoint_dir=options.checkpoint_root / key,
                    data_root=options.data_root,
                )
            except Exception:
                outbox.put(("failed", slot, key, traceback.format_exc()))
            else:
                outbox.put(("done", slot, key, _portable(result)))
    except KeyboardInterrupt:
        return  # the parent marks this process's run KILLED


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux's
    PR_SET_PDEATHSIG), so that a cell process whose `bench run` was killed (SIGKILL, a lost
    session) ends instead of waiting for cells for ever; exit at once if the parent is already
    gone. Elsewhere a no-op: the parent's terminate() still ends it on Ctrl-C and SIGTERM."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent_pid:
        os._exit(0)


def _portable(result: Any) -> Any:
    """The result with overlay tensors as numpy arrays, so it pickles without shared memory."""
    overlay = {
        name: value.detach().cpu().numpy() if hasattr(value, "detach") else value
        for name, value in (result.overlay or {}).items()
    }
    return dataclasses.replace(result, overlay=overlay)
