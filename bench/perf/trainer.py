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

How close to the machine's limit: the FLOPs of one training image (`bench.perf.flops`) times the
trainer's images per second, against a dense matmul's rate on the same device and dtype timed in
the same run. `--bf16`, `--channels-last` and `--images` (random data, no generation) are the
knobs `tools/gpu_check` turns.
"""

from __future__ import annotations

import functools
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bench.cli.options import (
    data_root_option,
    json_option,
    perf_device_option,
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
@perf_device_option("Where both loops train.")
@click.option(
    "--bf16/--no-bf16",
    default=None,
    help="bfloat16 autocast of the forward pass (default: the trainer's, on CUDA only).",
)
@click.option(
    "--channels-last/--no-channels-last",
    default=True,
    show_default=True,
    help="Model and batches in channels_last (the trainer's layout).",
)
@click.option(
    "--images",
    type=click.IntRange(min=1),
    help="Train on this many random images of the profile's shape instead of the task's "
    "generated data (no generation: the speed does not depend on the content).",
)
@json_option
@torch_threads_option
@data_root_option
def trainer(
    task_name: str,
    profile: str,
    repeats: int,
    device: str,
    bf16: bool | None,
    channels_last: bool,
    images: int | None,
    as_json: bool,
    threads: int,
    data_root: Path | None,
) -> None:
    """Time one training epoch of the shared trainer (Adaloss, MLflow logging) against a bare
    PyTorch loop doing the same forward and backward passes (goal: at most 10 % overhead), and
    how many FLOP/s that is against the device's dense-matmul peak."""
    import torch

    from bench.run.trainer import resolve_device, uses_bf16

    if threads:
        torch.set_num_threads(threads)
    try:
        torch_device = resolve_device(device)
    except (ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from error
    timing = measure(
        task_name,
        profile,
        torch_device,
        repeats=repeats,
        bf16=uses_bf16(torch_device) if bf16 is None else bf16,
        channels_last=channels_last,
        images=images,
        data_root=data_root,
    )
    if as_json:
        click.echo(json.dumps(timing, sort_keys=True))
        return
    click.echo(
        f"{task_name}/{profile}: {timing['images']} training images {timing['image_shape']}"
        f"{' (random)' if images else ''}, batch {timing['batch_size']}, width "
        f"{timing['width']}; {timing['device']}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, bf16 {'on' if timing['bf16'] else 'off'}, "
        f"channels_last {'on' if channels_last else 'off'}; {repeats} epochs each after one "
        "warm-up"
    )
    for name in ("bare", "trainer"):
        click.echo(
            f"{(name if name == 'trainer' else 'bare loop') + ':':<10} "
            f"{timing[name + '_s']:8.3f} s/epoch fastest, {timing[name + '_median_s']:8.3f} "
            f"median  ({timing[name + '_images_per_s']:7.1f} images/s)"
        )
    overhead = timing["ratio"] - 1.0
    verdict = "met" if overhead <= GOAL_OVERHEAD else "NOT met"
    click.echo(
        f"ratio {timing['ratio']:.3f}: overhead {100 * overhead:+.1f} % "
        f"(goal <= {100 * GOAL_OVERHEAD:.0f} %: {verdict})"
    )
    click.echo(
        f"compute: {timing['gflop_per_image']:.3g} GFLOP an image (forward and backward), "
        f"{timing['trainer_gflop_per_s']:.1f} GFLOP/s in the trainer against a "
        f"{timing['peak_size']} x {timing['peak_size']} {timing['peak_dtype']} matmul's "
        f"{timing['peak_gflop_per_s']:.1f}: {100 * timing['peak_fraction']:.1f} % of the peak"
    )


def measure(
    task_name: str,
    profile: str,
    device: torch.device,
    *,
    repeats: int,
    bf16: bool,
    channels_last: bool,
    images: int | None = None,
    data_root: Path | None = None,
) -> dict[str, Any]:
    """Fastest and median epoch of each loop, images/s, their ratio, the FLOPs of a training
    image and the device's matmul peak in the same run, as one flat dict."""
    import torch

    from bench.data.sources import load_dataset
    from bench.perf.flops import matmul_peak, training_flops
    from bench.run.trainer import deterministic_algorithms
    from bench.tasks import get_task

    task = get_task(task_name)
    settings = task.settings(profile)
    if images is None:
        dataset = load_dataset(task_name, profile=profile, root=data_root)
    else:
        dataset = random_dataset(task_name, profile, images)
    train = dataset.split("train")
    with tempfile.TemporaryDirectory() as store, deterministic_algorithms(device):
        epochs = _Epochs(task, dataset, settings, device, Path(store), bf16, channels_last)
        bare_times, ours_times = [], []
        epochs.bare(0)
        epochs.ours(0)
        for repeat in range(1, repeats + 1):
            bare_times.append(_timed(epochs.bare, repeat, device))
            ours_times.append(_timed(epochs.ours, repeat, device))
        batch = epochs.train.images[: settings.batch_size].contiguous(
            memory_format=epochs.loop.memory_format
        )
        flops = training_flops(
            epochs.bare_model, batch, epochs.targets[: settings.batch_size], bf16=bf16
        )
    peak = matmul_peak(device, torch.bfloat16 if bf16 else torch.float32)
    bare, ours = min(bare_times), min(ours_times)
    trainer_rate = len(train) / ours
    return {
        "task": task_name,
        "profile": profile,
        "device": str(device),
        "bf16": bf16,
        "channels_last": channels_last,
        "images": len(train),
        "image_shape": list(train.images.shape[1:]),
        "batch_size": settings.batch_size,
        "width": settings.width,
        "bare_s": bare,
        "bare_median_s": statistics.median(bare_times),
        "bare_images_per_s": len(train) / bare,
        "trainer_s": ours,
        "trainer_median_s": statistics.median(ours_times),
        "trainer_images_per_s": trainer_rate,
        "ratio": ours / bare,
        "gflop_per_image": flops / 1e9,
        "trainer_gflop_per_s": flops * trainer_rate / 1e9,
        "peak_gflop_per_s": peak.flops_per_s / 1e9,
        "peak_size": peak.size,
        "peak_dtype": str(peak.dtype).removeprefix("torch."),
        "peak_fraction": flops * trainer_rate / peak.flops_per_s,
    }


def random_dataset(task_name: str, profile: str, images: int) -> Any:
    """`images` random training images of the profile's shape and channels with random points
    inside them (one instance per landmark), under the task's layout; no validation or test
    images but one each, which the timing never uses."""
    import torch

    from bench.data.dataset import LandmarkDataset, Split
    from bench.data.sources import profile_image_size
    from bench.tasks import fixed_layout

    layout = fixed_layout(task_name)
    height, width = profile_image_size(task_name, profile)
    generator = torch.Generator().manual_seed(0)
    k = len(layout.landmark_names)

    def split(n: int) -> Split:
        pixels = torch.rand(n, layout.channels, height, width, generator=generator)
        points = torch.rand(n, k, 2, generator=generator) * torch.tensor([width - 1, height - 1])
        return Split(pixels, points[:, :, None] if layout.multi_instance else points)

    splits = {"train": split(images), "val": split(1), "test": split(1)}
    return LandmarkDataset.with_layout(task_name, "random", layout, splits)


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
        self,
        task: Any,
        dataset: Any,
        settings: Any,
        device: torch.device,
        store: Path,
        bf16: bool,
        channels_last: bool,
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
            bf16=bf16,
            channels_last=channels_last,
        )
        models = []
        for _ in range(2):
            seed_everything(0)
            models.append(
                prepare_model(
                    task.build_model(settings, dataset.channels, dataset.num_landmarks),
                    device,
                    channels_last,
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
            images = self.train.images[index].contiguous(memory_format=loop.memory_format)
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
