"""The pre-registered confirmation of the selected Adaloss reading (docs/RESULTS.md).

Takes the selected reading from the selection record (the rule of tools/select_reading.py), then,
per task, the seeds 0-4 of the selected and the literal reading (grid readings_<task>) and of the
fixed sigmas of the task's own grid at the readings' learning rate, profile quick, from an MLflow
store (a session's own runs and those `bench runs import` put there). Prints the two families of
paired tests (bench/track/confirmation.py) as Markdown and the decision on the library's default.

Until every one of those cells has a finished run it names the missing ones and prints no test
value (exit 1): the confirmation is read once, complete.

    python tools/confirm_reading.py [--tracking-uri sqlite:///mlruns/mlflow.db] \
        [--record docs/results/readings_validation.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.run.grid import load_grid
from bench.tasks import get_task
from bench.track.confirmation import LITERAL, TaskRuns, confirmation_markdown, confirmation_table
from bench.track.report import run_records, select_runs
from bench.track.selection import (
    READINGS_TASKS,
    SELECTION_SEEDS,
    load_record,
    score_table,
    select,
)
from bench.track.tracking import cell_runs, open_store, tracking_uri

CONFIRMATION_SEEDS = (0, 1, 2, 3, 4)
PROFILE = "quick"


def selected_reading(record: Path) -> str:
    """The reading the pre-registered selection picks from the values in `record`."""
    order = list(load_grid("readings_cathdet").methods)
    table = score_table(load_record(record), READINGS_TASKS, SELECTION_SEEDS, order)
    missing = sum(value is None for cells in table.values() for value in cells.values())
    if missing:
        raise SystemExit(f"{record}: {missing} selection cells have no value; select first")
    return select(table, order).selected


def finished_runs(client: Any, grid: str, methods: set[str], lr: float) -> list[Any]:
    """The newest finished run of each (method, seed) of `grid` at `lr`, profile quick."""
    experiment = client.get_experiment_by_name(grid)
    if experiment is None:
        return []
    runs = [r for group in cell_runs(client, experiment.experiment_id).values() for r in group]
    return [
        run
        for run in select_runs([r for r in runs if r.data.tags.get("profile") == PROFILE])
        if run.info.status == "FINISHED"
        and run.data.tags["method"] in methods
        and float(run.data.tags["lr"]) == lr
        and int(run.data.tags["seed"]) in CONFIRMATION_SEEDS
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument(
        "--record", type=Path, default=Path("docs/results/readings_validation.json")
    )
    args = parser.parse_args()
    try:
        selected = selected_reading(args.record)
    except ValueError as error:
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"selected reading: {selected}")
    client = open_store(tracking_uri(args.tracking_uri))
    tasks: dict[str, TaskRuns] = {}
    missing: list[str] = []
    for task_name in READINGS_TASKS:
        readings = load_grid(f"readings_{task_name}")
        lr = readings.lrs[0]
        fixed = {
            label for label, spec in load_grid(task_name).methods.items() if spec.kind == "fixed"
        }
        runs = finished_runs(client, task_name, fixed, lr)
        runs += finished_runs(client, readings.name, {selected, LITERAL}, lr)
        have = {(r.data.tags["method"], int(r.data.tags["seed"])) for r in runs}
        missing += [
            f"{task_name} {method} seed {seed}"
            for method in sorted(fixed | {selected, LITERAL})
            for seed in CONFIRMATION_SEEDS
            if (method, seed) not in have
        ]
        task = get_task(task_name)
        records = run_records(runs, [task.headline_metric])
        tasks[task_name] = TaskRuns(records, task.headline_metric, task.headline_higher_is_better)
    if missing:
        print(f"incomplete: {len(missing)} cells have no finished run: " + ", ".join(missing))
        sys.exit(1)
    table = confirmation_table(tasks, selected)
    print("\n".join(confirmation_markdown(table, selected)))


if __name__ == "__main__":
    main()
