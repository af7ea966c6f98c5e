"""The pre-registered selection of an Adaloss reading (docs/RESULTS.md, "Pre-registration").

Reads the cell runs of the grids readings_cathdet, readings_face300w and readings_endovis
(profile quick, seeds 0-2) from an MLflow store, takes each run's validation metric at its last
epoch (a diverged run ranks last), ranks the six candidates within every (task, seed) and prints
the ranks and the mean rank; the lowest mean rank is the selected reading. While a cell has no
finished run it says which and selects nothing (exit 1). Test metrics are not read.

The grids cost more than one session's machine can train, and a store does not outlive a session
here, so `--record FILE` keeps the finished cells' values in a JSON file committed beside the
results: values already in the file are kept (a cell trained again later does not replace its
first result; a disagreement is printed), new ones from the store are added, and the selection
is made from both.

    bench run --grid readings_cathdet --profile quick --device cpu   # and face300w, endovis
    python tools/select_reading.py [--tracking-uri sqlite:///mlruns/mlflow.db] \
        [--record docs/results/readings_validation.json]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from bench.run.grid import load_grid
from bench.tasks import task_profiles
from bench.track.report import select_runs
from bench.track.selection import (
    READINGS_PROFILE,
    READINGS_TASKS,
    SELECTION_SEEDS,
    CellValues,
    keep_first,
    load_record,
    readings_grid,
    save_record,
    score_table,
    select,
)
from bench.track.tracking import cell_runs, open_store, tracking_uri

VALIDATION = {"cathdet": "val_distance", "face300w": "val_nme", "endovis": "val_error"}


def store_values(client: Any, task: str, order: list[str]) -> dict[int, dict[str, float]]:
    """The finished readings cells of `task` in the store: seed -> method -> value."""
    experiment = client.get_experiment_by_name(readings_grid(task))
    if experiment is None:
        return {}
    runs = [r for group in cell_runs(client, experiment.experiment_id).values() for r in group]
    found: dict[int, dict[str, float]] = {}
    for run in select_runs([r for r in runs if r.data.tags.get("profile") == READINGS_PROFILE]):
        seed, method = int(run.data.tags["seed"]), run.data.tags["method"]
        if run.info.status != "FINISHED" or seed not in SELECTION_SEEDS or method not in order:
            continue
        if run.data.tags.get("outcome") == "diverged":
            found.setdefault(seed, {})[method] = math.inf
        elif VALIDATION[task] in run.data.metrics:
            found.setdefault(seed, {})[method] = run.data.metrics[VALIDATION[task]]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--record", type=Path, default=None, help="JSON file of kept values")
    args = parser.parse_args()
    client = open_store(tracking_uri(args.tracking_uri))
    order = list(load_grid(readings_grid(READINGS_TASKS[0])).methods)
    found = {task: store_values(client, task, order) for task in READINGS_TASKS}
    try:
        recorded = load_record(args.record) if args.record else {}
    except ValueError as error:
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(2)  # bad input, as in bench's commands (1 means "incomplete" here)
    values: CellValues = keep_first(recorded, found)
    if args.record:
        save_record(args.record, values)
    rankings = score_table(values, READINGS_TASKS, SELECTION_SEEDS, order)
    for task in READINGS_TASKS:
        epochs = task_profiles(task)[READINGS_PROFILE].epochs
        print(f"{task}: {VALIDATION[task]} at epoch {epochs} (inf: diverged, None: no result yet)")
        for seed in SELECTION_SEEDS:
            print(f"  seed {seed}: " + ", ".join(f"{m} {rankings[(task, seed)][m]}" for m in order))
    missing = [(key, m) for key, cells in rankings.items() for m, v in cells.items() if v is None]
    if missing:
        cells = len(rankings) * len(order)
        print(f"incomplete: {len(missing)} of {cells} cells have no result yet")
        sys.exit(1)
    chosen = select(rankings, order)
    print("| candidate | " + " | ".join(f"{t} s{s}" for t, s in chosen.ranks) + " | mean rank |")
    print("|---|" + "---|" * (len(chosen.ranks) + 1))
    for name in order:
        ranks = " | ".join(f"{chosen.ranks[key][name]:g}" for key in chosen.ranks)
        print(f"| {name} | {ranks} | {chosen.mean_rank[name]:.2f} |")
    print(f"selected: {chosen.selected}")


if __name__ == "__main__":
    main()
