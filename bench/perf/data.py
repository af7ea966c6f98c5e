"""`bench perf data`: generating each task's synthetic data against loading it from the cache.

Each task is generated fresh into a temporary root (what a first `bench run` pays), then loaded
back from that cache as every later run does: memory-mapped, with the manifest's hashes checked.
The ratio is generation time over load time. The goal is all three quick profiles generated
within 60 s on 2 CPU cores.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import click

from bench.cli.options import size_profile_option
from bench.tasks import SYNTHETIC_TASKS

GOAL_SECONDS = 60.0


@click.command()
@size_profile_option
@click.option(
    "--task",
    "tasks",
    multiple=True,
    type=click.Choice(SYNTHETIC_TASKS),
    help="Only these tasks (repeatable); default all.",
)
@click.option(
    "--repeats", default=3, show_default=True, type=click.IntRange(min=1), help="Timed loads."
)
def data(profile: str, tasks: tuple[str, ...], repeats: int) -> None:
    """Time generating each task's synthetic profile and loading the cached copy."""
    import torch

    from bench.data.sources import prepare_dataset

    chosen = tasks or SYNTHETIC_TASKS
    click.echo(
        f"profile {profile}; load = median of {repeats} memory-mapped loads with hash check; "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    click.echo(f"{'task':<10} {'generate s':>10} {'load s':>8} {'ratio':>8} {'size MB':>8}  images")
    total = 0.0
    for task in chosen:
        with tempfile.TemporaryDirectory(prefix="bench-perf-data-") as root:
            start = time.perf_counter()
            made = prepare_dataset(task, profile, "synthetic", root)
            generate = time.perf_counter() - start
            loads = []
            for _ in range(repeats):
                start = time.perf_counter()
                loaded = prepare_dataset(task, profile, "synthetic", root)
                loads.append(time.perf_counter() - start)
                if loaded.action != "cached":
                    raise click.ClickException(f"{task}: cache not reused ({loaded.action})")
            load = statistics.median(loads)
            size = sum(p.stat().st_size for p in Path(made.directory).iterdir()) / 1e6
            count = sum(len(split) for split in made.dataset.splits.values())
            height, width = made.dataset.image_size
        total += generate
        click.echo(
            f"{task:<10} {generate:>10.2f} {load:>8.3f} {generate / load:>7.0f}x {size:>8.1f}  "
            f"{count} x {made.dataset.channels}x{height}x{width}"
        )
    verdict = "yes" if total <= GOAL_SECONDS else "NO"
    click.echo(
        f"all {len(chosen)} generated within {GOAL_SECONDS:.0f} s: {verdict} (total {total:.1f} s)"
    )
