"""`bench perf trainer`: an epoch of the shared trainer against a bare PyTorch loop.

Both sides train identical copies of the task's model (same initial weights, same optimiser, the
same batches in the same order) with the same forward and backward passes. The bare loop reads
targets pre-rendered once and does nothing else. The trainer's epoch is what `train_cell` runs
per epoch minus validation: `run_epoch` (targets rendered on the device from the Adaloss
schedule's current sigma, per-landmark losses summed on the device, one sync, the finiteness
check, augmentation when the task has it), the schedule step, the epoch's metrics dict and
its logging to a temporary MLflow SQLite store through the harness's tracker. The two alternate
epoch by epoch, so both see the same machine load; the ratio is the fastest trainer epoch over the
fastest bare epoch (load from other processes only ever adds time), with the medians beside.
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bench.cli.options import (
    data_root_option,
    size_profile_option,
    synthetic_task_option,
    torch_threads_option,
)

if TYPE_CHECKING:
    import torch

GOAL_OVERHEAD = 0.10


@click.command()
@synthetic_task_option
@size_profile_option
@click.option(
    "--repeats", default=5, show_default=True, type=click.IntRange(min=1), help="Timed epochs each."
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="Where both loops train.",
)
@torch_threads_option
@data_root_option
def trainer(
    task_name: str, profile: str, repeats: int, device: str, threads: int, data_root: Path | None
) -> None:
    """Time one training epoch of the shared trainer (Adaloss, MLflow logging) against a bare
    PyTorch loop doing the same forward and backward passes; goal: at most 10 % overhead."""
    import torch

    from bench.data.sources import load_dataset
    from bench.run.trainer import deterministic_algorithms, resolve_device
    from bench.tasks import get_task

    if threads:
        torch.set_num_threads(threads)
    try:
        task = get_task(task_name)
        torch_device = resolve_device(device)
    except (ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from error
    dataset = load_dataset(task_name, profile=profile, root=data_root)
    settings = task.settings(profile)
    train = dataset.split("train")
    click.echo(
        f"{task_name}/{profile}: {len(train)} training images {tuple(train.images.shape[1:])}, "
        f"batch {settings.batch_size}, width {settings.width}; {torch_device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
        f"{repeats} epochs each after one warm-up"
    )
    with tempfile.TemporaryDirectory() as store, deterministic_algorithms(torch_device):
        epochs = _Epochs(task, dataset, settings, torch_device, Path(store))
        bare_times, ours_times = [], []
        epochs.bare(0)
        epochs.ours(0)
        for repeat in range(1, repeats + 1):
            bare_times.append(_timed(epochs.bare, repeat, torch_device))
            ours_times.append(_timed(epochs.ours, repeat, torch_device))
    bare, ours = min(bare_times), min(ours_times)
    overhead = ours / bare - 1.0
    verdict = "met" if overhead <= GOAL_OVERHEAD else "NOT met"
    for name, fastest, times in (("bare loop", bare, bare_times), ("trainer", ours, ours_times)):
        click.echo(
            f"{name + ':':<10} {fastest:8.3f} s/epoch fastest, {statistics.median(times):8.3f} "
            f"median  ({len(train) / fastest:7.1f} images/s)"
        )
    click.echo(
        f"ratio {ours / bare:.3f}: overhead {100 * overhead:+.1f} % "
        f"(goal <= {100 * GOAL_OVERHEAD:.0f} %: {verdict})"
    )


def _timed(run: Callable[[int], object], epoch: int, device: torch.device) -> float:
    """Seconds of `run(epoch)`, waiting for the device to finish."""
    import torch

    start = time.perf_counter()
    run(epoch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


class _Epochs:
    """The two loops, each with its own identically initialised model and optimiser."""

    def __init__(
        self, task: Any, dataset: Any, settings: Any, device: torch.device, store: Path
    ) -> None:
        import torch

        from adaloss.targets import render_heatmaps
        from bench.run.cell import CellConfig
        from bench.run.schedule import ScheduleConfig, build_schedule, sigma_scale
        from bench.run.trainer import LoopConfig, on_device, prepare_model, seed_everything

        self.dataset = dataset
        self.device = device
        self.cell = CellConfig(
            grid="perf",
            task=task.name,
            method="adaloss",
            schedule=ScheduleConfig(kind="adaloss"),
            lr=1e-3,
            seed=0,
            profile="perf",
            epochs=1,
            batch_size=settings.batch_size,
        )
        self.train = on_device(dataset.split("train"), device)
        self.loop = LoopConfig(
            batch_size=settings.batch_size,
            device=device,
            rotation_deg=settings.rotation_deg,
            normalize=settings.normalize,
        )
        models = []
        for _ in range(2):
            seed_everything(0)
            models.append(
                prepare_model(
                    task.build_model(settings, dataset.channels, dataset.num_landmarks), device
                )
            )
        self.model, self.bare_model = models
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cell.lr)
        self.bare_optimizer = torch.optim.Adam(self.bare_model.parameters(), lr=self.cell.lr)
        self.schedule = build_schedule(
            self.cell.schedule, dataset.num_landmarks, dataset.image_size
        )
        self.sigma_unit = sigma_scale(self.cell.schedule, dataset.image_size)
        self.targets = render_heatmaps(
            self.train.points,
            self.schedule.sigma.to(device, torch.float32),
            dataset.image_size,
            normalize=settings.normalize,
        )
        self.log_epoch = _tracker_log_epoch(store, self.cell, str(device))

    def ours(self, epoch: int) -> None:
        from bench.run.trainer import epoch_generator, epoch_record, run_epoch

        generator = epoch_generator(self.cell.seed, epoch)
        stats = run_epoch(
            self.model, self.optimizer, self.schedule, self.train, self.loop, generator
        )
        record = epoch_record(stats, {}, self.cell.lr, self.dataset, self.sigma_unit, stats.seconds)
        self.log_epoch(epoch + 1, record)

    def bare(self, epoch: int) -> None:
        import torch
        import torch.nn.functional as F

        from bench.run.trainer import epoch_generator

        model, optimizer, loop = self.bare_model, self.bare_optimizer, self.loop
        model.train()
        order = torch.randperm(len(self.train), generator=epoch_generator(self.cell.seed, epoch))
        order = order.to(self.device)
        for start in range(0, len(self.train), loop.batch_size):
            index = order[start : start + loop.batch_size]
            images = self.train.images[index].contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=loop.bf16):
                heatmaps = model(images)
            loss = F.mse_loss(heatmaps.float(), self.targets[index])
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimizer.step()


def _tracker_log_epoch(
    store: Path, cell: Any, device: str
) -> Callable[[int, dict[str, float]], None]:
    """The run command's path for epoch metrics: one batched MLflow call per epoch."""
    from bench.track.tracking import GridTracker, ensure_experiment, open_store

    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = open_store(uri)
    experiment_id = ensure_experiment(client, uri, "perf-trainer")
    tracker = GridTracker.start(
        client,
        experiment_id,
        grid="perf",
        profile=cell.profile,
        shared_tags={},
        command="bench perf trainer",
        cells_total=1,
    )
    return functools.partial(tracker.log_epoch, tracker.start_cell(cell, device))
