"""The pre-registered confirmation of the selected Adaloss reading (docs/RESULTS.md).

Takes the selected reading from the selection record (the rule of tools/select_reading.py), then,
per task, the result of every cell of `confirmation.confirmation_cells` (seeds 0-4 of the selected
and the literal reading and of the fixed sigmas of the task's own grid, at the readings' learning
rate, profile quick) from an MLflow store: a session's own runs and those `bench runs import` put
there, found by cell key, so a run of another configuration (other epochs) never counts. Prints
the two families of paired tests (bench/track/confirmation.py) as Markdown and the decision on
the library's default.

Until every one of those cells has a usable run (finished, with its test metric, or diverged) it
names the missing ones and prints no test value (exit 1): the confirmation is read once, complete.

With `--every-candidate` it prints the same two families for every candidate reading instead, in
two tables, and no decision: a description after the fact, corrected across the tasks within
each reading but not across the readings, that can change no default.

    python tools/confirm_reading.py [--tracking-uri sqlite:///mlruns/mlflow.db] \
        [--record docs/results/readings_validation.json] [--every-candidate]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.run.cell import cell_key
from bench.run.grid import load_grid
from bench.tasks import get_task
from bench.track.confirmation import (
    TaskRuns,
    candidates_markdown,
    confirmation_cells,
    confirmation_markdown,
    confirmation_table,
    usable_run,
)
from bench.track.report import run_records
from bench.track.selection import (
    READINGS_TASKS,
    SELECTION_SEEDS,
    load_record,
    readings_grid,
    score_table,
    select,
)
from bench.track.tracking import existing_cell_runs, store_exists, tracking_uri


def selected_reading(record: Path) -> str:
    """The reading the pre-registered selection picks from the values in `record`."""
    order = list(load_grid(readings_grid(READINGS_TASKS[0])).methods)
    table = score_table(load_record(record), READINGS_TASKS, SELECTION_SEEDS, order)
    missing = sum(value is None for cells in table.values() for value in cells.values())
    if missing:
        raise SystemExit(f"{record}: {missing} selection cells have no value; select first")
    return select(table, order).selected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument(
        "--record", type=Path, default=Path("docs/results/readings_validation.json")
    )
    parser.add_argument(
        "--every-candidate",
        action="store_true",
        help="describe every candidate reading after the fact instead (no decision)",
    )
    args = parser.parse_args()
    try:
        selected = selected_reading(args.record)
    except ValueError as error:
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"selected reading: {selected}")
    uri = tracking_uri(args.tracking_uri)
    if not store_exists(uri):
        print(f"Error: no MLflow store at {uri}; name it with --tracking-uri", file=sys.stderr)
        sys.exit(2)
    readings = list(load_grid(readings_grid(READINGS_TASKS[0])).methods)
    compared = readings if args.every_candidate else [selected]
    found: dict[str, dict[str, TaskRuns]] = {reading: {} for reading in compared}
    missing: list[str] = []
    stored: dict[str, dict[str, list[Any]]] = {}  # grid -> its runs by cell key, read once
    for reading in compared:
        for task_name in READINGS_TASKS:
            found[reading][task_name], absent = task_runs(uri, stored, task_name, reading)
            missing += [name for name in absent if name not in missing]
    if missing:
        print(f"incomplete: {len(missing)} cells have no usable run: " + ", ".join(missing))
        sys.exit(1)
    tables = {reading: confirmation_table(tasks, reading) for reading, tasks in found.items()}
    if args.every_candidate:
        print("\n".join(candidates_markdown(tables)))
    else:
        print("\n".join(confirmation_markdown(tables[selected], selected)))


def task_runs(
    uri: str, stored: dict[str, dict[str, list[Any]]], task_name: str, reading: str
) -> tuple[TaskRuns, list[str]]:
    """The usable runs of `task_name`'s confirmation cells for `reading`, and the names of the
    cells that have none; `stored` caches each grid's runs across calls."""
    task = get_task(task_name)
    cells = confirmation_cells(task_name, reading)
    for grid in {cell.grid for cell in cells} - set(stored):
        stored[grid] = existing_cell_runs(uri, grid)
    runs, missing = [], []
    for cell in cells:
        run = usable_run(stored[cell.grid].get(cell_key(cell), []), task.headline_metric)
        if run is None:
            missing.append(f"{cell.grid} {cell.method} seed {cell.seed}")
        else:
            runs.append(run)
    records = run_records(runs, [task.headline_metric])
    return TaskRuns(records, task.headline_metric, task.headline_higher_is_better), missing


if __name__ == "__main__":
    main()
