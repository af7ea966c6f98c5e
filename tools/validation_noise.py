"""How noisy is a task's validation metric, and how many validation images make it trustworthy?

Trains the task's reference fixed sigma (docs/data.md: CathDet sigma 40, faces sigma 10, EndoVis
sigma 20, at the grid's first learning rate, quick profile) at one seed, then predicts a pool of
fresh validation images drawn from the validation distribution of the generator (the same
parameters, only the split counts changed), and bootstraps the task's validation metric over
images: for each size n, the standard deviation of the metric over resamples of n images is its
standard error at n. Prints the relative standard error (SE / metric) at the shipped size and at
each size tried, and the smallest size whose relative SE is at most --target (2 %). Adaloss is
never trained here.

    python tools/validation_noise.py cathdet [--pool 4000] [--seed 0] [--resamples 300]

The trained cell checkpoints under --work, so a second run only measures.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

SIZES = (40, 100, 200, 400, 800, 1600, 3200)
COUNT_FIELDS = ("n_train", "n_test", "n_common", "n_challenging", "n_val_appended")


def reference_model(task_name: str, seed: int, work: Path) -> tuple[Any, Any]:
    """The trained reference cell's model (resumed from its checkpoint when finished) and cell."""

    from bench.run.cell import cell_key
    from bench.run.checkpoint import load_latest
    from bench.run.grid import expand_cells, load_grid
    from bench.run.trainer import train_cell
    from bench.tasks import get_task
    from bench.track.regime import REFERENCE_METHODS

    grid = load_grid(task_name)
    (template,) = expand_cells(
        grid, "quick", methods=[REFERENCE_METHODS[task_name]], lrs=[grid.lrs[0]]
    )
    cell = dataclasses.replace(template, seed=seed, grid="validation_noise")
    metric = get_task(task_name).validation_metric

    def show(epoch: int, record: dict[str, float]) -> None:
        print(f"epoch {epoch}/{cell.epochs} {metric} {record[metric]:.4g}", file=sys.stderr)

    train_cell(cell, data_root=work, checkpoint_dir=work / "checkpoints", on_epoch=show)
    state = load_latest(work / "checkpoints", cell_key(cell))
    assert state is not None and state["epoch"] == cell.epochs
    return state["model"], cell


def shipped_validation_size(task_name: str) -> int:
    from bench.data.sources import profile_params

    params = profile_params(task_name, "quick")
    return int(params.n_val + getattr(params, "n_val_appended", 0))


def pool_dataset(task_name: str, pool: int, seed: int) -> Any:
    """`pool` validation images of the quick profile's generator and nothing else, drawn from a
    seed the trained cell's splits do not use."""
    from bench.data.sources import import_module, profile_params
    from bench.tasks import task_entry

    params = profile_params(task_name, "quick")
    generator = import_module(task_name, str(task_entry(task_name).synthetic))
    counts = {name: 0 for name in COUNT_FIELDS if hasattr(params, name)}
    return generator.generate(dataclasses.replace(params, n_val=pool, **counts), seed=1000 + seed)


def bootstrap_se(metric_of: Any, n_pool: int, n: int, resamples: int, rng: Any) -> float:
    """Standard deviation of metric_of(indices) over `resamples` draws of n of the pool's
    images with replacement."""
    values = [metric_of(rng.integers(0, n_pool, n)) for _ in range(resamples)]
    return float(np.std(values, ddof=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=("cathdet", "endovis", "face300w"))
    parser.add_argument("--pool", type=int, default=4000, help="fresh validation images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=300)
    parser.add_argument("--target", type=float, default=0.02, help="relative SE wanted")
    parser.add_argument("--work", default="datasets/validation_noise")
    args = parser.parse_args()

    import torch

    from bench.data.dataset import Split
    from bench.run.trainer import LoopConfig, predict
    from bench.tasks import get_task

    work = Path(args.work) / args.task
    weights, cell = reference_model(args.task, args.seed, work)
    dataset = pool_dataset(args.task, args.pool, args.seed)
    task = get_task(args.task, dataset.layout)
    settings = task.settings(cell.profile, cell.extra)
    model = task.build_model(settings, dataset.channels, dataset.num_landmarks)
    model.load_state_dict(weights)
    val = dataset.split("val")
    loop = LoopConfig(batch_size=64, device=torch.device("cpu"))
    points = predict(model, task, val.images, loop)

    def metric_of(indices: Any) -> float:
        index = torch.as_tensor(indices)
        split = Split(val.images[index], val.points[index])
        return task.validate(points[index], split, dataset)[task.validation_metric]

    rng = np.random.default_rng(args.seed)
    whole = metric_of(np.arange(len(val)))
    print(
        f"{args.task}: reference {cell.method} lr {cell.lr:g} seed {cell.seed}, "
        f"{task.validation_metric} on {len(val)} fresh validation images: {whole:.4g}"
    )
    print("| images | SE | SE / metric |")
    print("|---|---|---|")
    measured = []
    shipped = shipped_validation_size(args.task)
    for n in sorted({shipped, *(s for s in SIZES if s <= len(val))}):
        se = bootstrap_se(metric_of, len(val), n, args.resamples, rng)
        measured.append((n, se))
        mark = " (shipped)" if n == shipped else ""
        print(f"| {n}{mark} | {se:.4g} | {100 * se / abs(whole):.2f} % |")
    # SE falls as 1 / sqrt(n): the largest bootstrapped size gives the most accurate constant
    n_big, se_big = measured[-1]
    needed = math.ceil(n_big * (se_big / (args.target * abs(whole))) ** 2)
    print(
        f"smallest size with SE <= {100 * args.target:g} % of the metric (from n = {n_big}, "
        f"SE proportional to 1/sqrt(n)): {needed} images"
    )


if __name__ == "__main__":
    main()
