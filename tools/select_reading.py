"""The pre-registered selection of an Adaloss reading (docs/RESULTS.md, "Pre-registration").

Reads the cell runs of the grids readings_cathdet, readings_face300w and readings_endovis
(profile quick, seeds 0-2) from an MLflow store, takes each run's validation metric at its last
epoch (a diverged run ranks last), ranks the six candidates within every (task, seed) and prints
the ranks and the mean rank; the lowest mean rank is the selected reading. While a cell has no
finished run it says which and selects nothing (exit 1). Test metrics are not read.

    bench run --grid readings_cathdet --profile quick --device cpu   # and face300w, endovis
    python tools/select_reading.py [--tracking-uri sqlite:///mlruns/mlflow.db]
"""

from __future__ import annotations

import argparse
import math
import sys

from bench.run.grid import load_grid
from bench.tasks import task_profiles
from bench.track.report import select_runs
from bench.track.selection import select
from bench.track.tracking import cell_runs, open_store, tracking_uri

TASKS = ("cathdet", "face300w", "endovis")
SEEDS = (0, 1, 2)
VALIDATION = {"cathdet": "val_distance", "face300w": "val_nme", "endovis": "val_error"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args()
    client = open_store(tracking_uri(args.tracking_uri))
    order = list(load_grid("readings_cathdet").methods)
    scores: dict[tuple[str, int], dict[str, float | None]] = {}
    for task in TASKS:
        epochs = task_profiles(task)["quick"].epochs
        experiment = client.get_experiment_by_name(f"readings_{task}")
        runs = []
        if experiment is not None:
            runs = [
                r for group in cell_runs(client, experiment.experiment_id).values() for r in group
            ]
        runs = [r for r in runs if r.data.tags.get("profile") == "quick"]
        for seed in SEEDS:
            scores[(task, seed)] = dict.fromkeys(order)
        for run in select_runs(runs):
            seed = int(run.data.tags["seed"])
            value = None  # not finished: the selection waits for it
            if run.info.status == "FINISHED":
                diverged = run.data.tags.get("outcome") == "diverged"
                value = math.inf if diverged else run.data.metrics.get(VALIDATION[task])
            if seed in SEEDS and run.data.tags["method"] in order:
                scores[(task, seed)][run.data.tags["method"]] = value
        print(f"{task}: {VALIDATION[task]} at epoch {epochs} (inf: diverged, None: no result yet)")
        for seed in SEEDS:
            print(f"  seed {seed}: " + ", ".join(f"{m} {scores[(task, seed)][m]}" for m in order))
    missing = [(key, m) for key, values in scores.items() for m, v in values.items() if v is None]
    if missing:
        print(f"incomplete: {len(missing)} of {len(scores) * len(order)} cells have no result yet")
        sys.exit(1)
    chosen = select(scores, order)
    print("| candidate | " + " | ".join(f"{t} s{s}" for t, s in chosen.ranks) + " | mean rank |")
    print("|---|" + "---|" * (len(chosen.ranks) + 1))
    for name in order:
        ranks = " | ".join(f"{chosen.ranks[key][name]:g}" for key in chosen.ranks)
        print(f"| {name} | {ranks} | {chosen.mean_rank[name]:.2f} |")
    print(f"selected: {chosen.selected}")


if __name__ == "__main__":
    main()
