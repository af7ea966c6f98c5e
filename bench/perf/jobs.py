"""`bench perf jobs`: training throughput of several processes side by side against one process
with all the cores, the choice `bench run --jobs` makes on a CPU (and on one GPU, with
`--device cuda`: several cells sharing it against one alone).

One arrangement is one process on every visible core's thread; the other is `--jobs` processes
at once, each on its share of the threads (as `bench run --jobs` gives them). Every process
trains its own copy of the task's model (the profile's width, depth, kernel, batch and image
size, channels_last, Adam) on fixed random images against fixed random targets: the convolutions
that dominate a cell's time, without data loading, target rendering or logging. The processes
start their timed steps together and the throughput is all their images over the span from the
first start to the last finish. The arrangements alternate round by round so both see the same
machine load; the ratio compares the best round of each.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import queue
import time
from dataclasses import dataclass
from typing import Any

import click

from bench.cli.options import (
    json_option,
    perf_device_option,
    size_profile_option,
    synthetic_task_option,
)

WARM_UP_STEPS = 2


@dataclass(frozen=True)
class Workload:
    """What each process trains: the task's model at one profile, on batches of this shape."""

    task: str
    profile: str
    batch_size: int
    channels: int
    landmarks: int
    image_size: tuple[int, int]
    steps: int
    device: str = "cpu"


@click.command()
@synthetic_task_option
@size_profile_option
@click.option(
    "--jobs",
    "processes",
    type=click.IntRange(min=2),
    help="Processes side by side (default: what `bench run` uses on this CPU, at least 2).",
)
@click.option(
    "--steps",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Timed training steps per process and round.",
)
@click.option(
    "--repeats", default=2, show_default=True, type=click.IntRange(min=1), help="Rounds each."
)
@perf_device_option("Where the processes train (cuda: all on the first GPU, bf16 as the trainer).")
@json_option
def jobs(
    task_name: str,
    profile: str,
    processes: int | None,
    steps: int,
    repeats: int,
    device: str,
    as_json: bool,
) -> None:
    """Time one process on all cores against `--jobs` processes side by side, training the
    task's model; says which arrangement trains more images per second here."""
    from bench.run.runner import default_jobs, threads_per_process

    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise click.ClickException("--device cuda: CUDA is not available; use --device cpu")
    cores = threads_per_process(1)
    run_default = default_jobs(device)
    processes = processes or max(2, run_default)
    threads_each = threads_per_process(processes)
    workload = _workload(task_name, profile, steps, device)
    if not as_json:
        click.echo(
            f"{task_name}/{profile}: batch {workload.batch_size} x {workload.channels} x "
            f"{workload.image_size[0]} x {workload.image_size[1]}, {steps} steps per process; "
            f"{cores} cores; best of {repeats} rounds after {WARM_UP_STEPS} warm-up steps"
        )
    arrangements = {
        f"1 process x {_threads(cores)}": (1, cores),
        f"{processes} processes x {_threads(threads_each)}": (processes, threads_each),
    }
    best = dict.fromkeys(arrangements, 0.0)
    for _ in range(repeats):
        for label, (count, threads) in arrangements.items():
            best[label] = max(best[label], throughput(workload, count, threads))
    together, apart = best.values()
    if as_json:
        record = {
            "task": task_name,
            "profile": profile,
            "device": device,
            "processes": processes,
            "one_images_per_s": together,
            "several_images_per_s": apart,
            "ratio": apart / together,
            "bench_run_default_jobs": run_default,
        }
        click.echo(json.dumps(record, sort_keys=True))
        return
    for label, images_per_s in best.items():
        click.echo(f"{label + ':':<28} {images_per_s:8.1f} images/s")
    ratio = apart / together
    faster = f"--jobs {processes}" if ratio > 1 else "--jobs 1"
    click.echo(
        f"ratio {ratio:.3f}: {processes} processes train {ratio:.2f}x the images per second of "
        f"one; faster here: {faster} (bench run's default on this machine's {device}: --jobs "
        f"{run_default})"
    )


def _threads(count: int) -> str:
    return f"{count} thread" if count == 1 else f"{count} threads"


def _workload(task_name: str, profile: str, steps: int, device: str = "cpu") -> Workload:
    from bench.tasks import fixed_layout, get_task, task_entry

    generator = importlib.import_module(str(task_entry(task_name).synthetic))
    height, width = generator.PROFILES[profile].image_size
    layout = fixed_layout(task_name)
    return Workload(
        task=task_name,
        profile=profile,
        batch_size=get_task(task_name).settings(profile).batch_size,
        channels=layout.channels,
        landmarks=len(layout.landmark_names),
        image_size=(height, width),
        steps=steps,
        device=device,
    )


def throughput(workload: Workload, processes: int, threads: int) -> float:
    """Images per second of `processes` processes on `threads` torch threads each, training
    `workload` at the same time: all their images over the span of their timed steps."""
    context = multiprocessing.get_context("spawn")
    start_together = context.Barrier(processes)
    spans = context.Queue()
    workers = [
        context.Process(
            target=_train_steps, args=(workload, threads, start_together, spans), daemon=True
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    results: list[tuple[float, float]] = []
    while len(results) < processes:
        try:
            results.append(spans.get(timeout=1.0))
        except queue.Empty:
            # a process that died would leave the others waiting at the barrier for ever
            failed = [worker.exitcode for worker in workers if worker.exitcode not in (None, 0)]
            if failed:
                for worker in workers:
                    worker.terminate()
                raise click.ClickException(
                    f"a timing process exited with code {failed[0]}; its traceback is above"
                ) from None
    for worker in workers:
        worker.join()
    first_start = min(start for start, _ in results)
    last_end = max(end for _, end in results)
    return processes * workload.steps * workload.batch_size / (last_end - first_start)


def _train_steps(workload: Workload, threads: int, start_together: Any, spans: Any) -> None:
    """One timing process: warm up, wait for the others, then time `workload.steps` steps.
    time.monotonic is one clock for every process of the machine, so the spans compare."""
    import torch
    import torch.nn.functional as F

    from bench.run.trainer import prepare_model, uses_bf16
    from bench.tasks import get_task

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = torch.device(workload.device)
    bf16 = uses_bf16(device)
    task = get_task(workload.task)
    model = prepare_model(
        task.build_model(workload.profile, workload.channels, workload.landmarks), device
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    shape = (workload.batch_size, workload.channels, *workload.image_size)
    images = torch.rand(shape).to(device).contiguous(memory_format=torch.channels_last)
    targets = torch.rand(workload.batch_size, workload.landmarks, *workload.image_size).to(device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            heatmaps = model(images)
        loss = F.mse_loss(heatmaps.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(WARM_UP_STEPS):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start_together.wait()
    start = time.monotonic()
    for _ in range(workload.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    spans.put((start, time.monotonic()))
