"""Does a task's quick profile train its detector properly? The regime criteria table.

Trains the task's reference fixed sigma (chosen without results, docs/data.md: CathDet sigma 40,
faces sigma 10, EndoVis sigma 20, at the grid's first learning rate) on the profile's training
set and on twice as many images, at seeds 0 and 1, and prints, per seed, the test metric at n
and 2n (data-sufficient: less than 15 % better at 2n) and the convergence of the n cell's
validation curve (bench/track/regime.py). Adaloss is never trained here.

    python tools/regime.py cathdet [--n-train N] [--epochs E] [--width W] [--jobs 2] [--seeds 1]

Without options the shipped profile is measured. --n-train, --epochs and --width try another
setting: only the training-set size changes in the generator (everything it models stays).
Each cell's result is appended to --results (JSON lines) and each cell checkpoints under
--data-root, so an interrupted run resumes (a finished cell is not retrained, an unfinished one
continues from its last checkpoint), and the table can be printed again with --table-only.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

from bench.track.regime import REFERENCE_METHODS as REFERENCE
from bench.track.regime import convergence, data_gain, data_sufficient

SEEDS = (0, 1)


def synthetic_module(task: str) -> Any:
    import importlib

    from bench.tasks import task_entry

    return importlib.import_module(str(task_entry(task).synthetic))


def cell_result(job: dict[str, Any]) -> dict[str, Any]:
    """Train one reference cell on a generator whose only change is n_train (a spawned worker)."""
    import torch

    from bench.run.grid import expand_cells, load_grid
    from bench.run.trainer import train_cell
    from bench.tasks import get_task

    torch.set_num_threads(job["threads"])
    module = synthetic_module(job["task"])
    module.PROFILES["quick"] = dataclasses.replace(module.PROFILES["quick"], n_train=job["n_train"])
    grid = load_grid(job["task"])
    (template,) = expand_cells(
        grid, "quick", methods=[REFERENCE[job["task"]]], lrs=[grid.lrs[0]], epochs=job["epochs"]
    )
    extra = dict(template.extra)
    if job["width"] is not None:
        extra["width"] = job["width"]
    cell = dataclasses.replace(template, seed=job["seed"], extra=extra, grid="regime")
    task = get_task(job["task"])
    # the cell key does not see n_train, so each training-set size keeps its own checkpoints
    root = Path(job["data_root"]) / f"n{job['n_train']}"
    label = f"seed {job['seed']} n_train {job['n_train']}"
    started = time.perf_counter()
    result = train_cell(
        cell,
        data_root=root,
        checkpoint_dir=root / "checkpoints",
        on_epoch=functools.partial(print_epoch, label, task.validation_metric, cell.epochs),
    )
    return {
        **{k: job[k] for k in ("task", "seed", "n_train", "epochs", "width")},
        "metric": task.headline_metric,
        "higher_is_better": task.headline_higher_is_better,
        "test": result.final_metrics.get(task.headline_metric, float("nan")),
        "validation": [record[task.validation_metric] for record in result.history],
        "train_loss": [record["train_loss"] for record in result.history],
        "seconds": time.perf_counter() - started,
        "threads": job["threads"],
    }


def print_epoch(
    label: str, metric: str, epochs: int, epoch: int, metrics: dict[str, float]
) -> None:
    """Prints an epoch's validation value to stderr, so that a cell of an hour shows progress."""
    value = metrics.get(metric, float("nan"))
    print(f"{label}: epoch {epoch}/{epochs} {metric} {value:.4g}", file=sys.stderr, flush=True)


def same_setting(record: dict[str, Any], job: dict[str, Any]) -> bool:
    keys = ("task", "seed", "n_train", "epochs", "width")
    return all(record[k] == job[k] for k in keys)


def table(records: list[dict[str, Any]], task: str, n_train: int, epochs: int, width: Any) -> str:
    """The criteria table of one setting, from its four cells (missing cells print as '-')."""

    def find(seed: int, n: int) -> dict[str, Any] | None:
        job = {"task": task, "seed": seed, "n_train": n, "epochs": epochs, "width": width}
        return next((r for r in records if same_setting(r, job)), None)

    lines = [
        f"{task} quick, reference {REFERENCE[task]}, n_train {n_train} vs {2 * n_train}, "
        f"{epochs} epochs, width {width or 'profile'}",
        "| seed | test n | test 2n | gain | data-sufficient | best val (epoch) | tail gain | "
        "tail gap | converged | status | s/cell n, 2n |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for seed in SEEDS:
        small, large = find(seed, n_train), find(seed, 2 * n_train)
        row = [str(seed)]
        if small is None:
            lines.append("| " + " | ".join(row + ["-"] * 10) + " |")
            continue
        higher = small["higher_is_better"]
        row.append(f"{small['test']:.2f}")
        if large is not None:
            gain = data_gain(small["test"], large["test"], higher_is_better=higher)
            sufficient = data_sufficient(small["test"], large["test"], higher_is_better=higher)
            row += [f"{large['test']:.2f}", f"{100 * gain:+.1f} %", "yes" if sufficient else "NO"]
        else:
            row += ["-", "-", "-"]
        judged = convergence(small["validation"], small["train_loss"])
        row += [
            f"{judged.best:.2f} ({judged.best_epoch})",
            f"{100 * judged.tail_gain:.1f} %",
            f"{100 * judged.tail_gap:.1f} %",
            "yes" if judged.meets_criterion else "NO",
            judged.status,
            f"{small['seconds']:.0f}, " + (f"{large['seconds']:.0f}" if large else "-"),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(REFERENCE))
    parser.add_argument("--n-train", type=int, default=None, help="default: the shipped profile")
    parser.add_argument("--epochs", type=int, default=None, help="default: the shipped profile")
    parser.add_argument("--width", type=int, default=None, help="default: the shipped profile")
    parser.add_argument("--jobs", type=int, default=2, help="cells trained at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per cell")
    parser.add_argument("--data-root", default="datasets/regime")
    parser.add_argument("--results", default="datasets/regime/results.jsonl")
    parser.add_argument(
        "--seeds", type=int, nargs="+", choices=SEEDS, default=list(SEEDS),
        help="train only these seeds' cells (the table prints every seed on record)",
    )  # fmt: skip
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()

    from bench.tasks import get_task

    n_train = args.n_train or synthetic_module(args.task).PROFILES["quick"].n_train
    epochs = args.epochs or get_task(args.task).profiles["quick"].epochs
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    records = (
        [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
        if results.exists()
        else []
    )
    jobs = [
        {
            "task": args.task,
            "seed": seed,
            "n_train": n,
            "epochs": epochs,
            "width": args.width,
            "threads": args.threads,
            "data_root": args.data_root,
        }
        for n in (2 * n_train, n_train)  # the longest first, so the two workers finish together
        for seed in args.seeds
    ]
    todo = (
        [] if args.table_only else [j for j in jobs if not any(same_setting(r, j) for r in records)]
    )
    if todo:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            for record in pool.imap_unordered(cell_result, todo):
                records.append(record)
                with results.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
                print(
                    f"done: seed {record['seed']} n_train {record['n_train']}: "
                    f"{record['metric']} {record['test']:.2f} ({record['seconds']:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    print(table(records, args.task, n_train, epochs, args.width))


if __name__ == "__main__":
    main()
