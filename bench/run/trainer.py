"""The one trainer every cell runs: `train_cell(cell)` reads like a reference training script.

What a cell does, top to bottom (`train_cell`):
 1. seed torch, numpy and Python from the cell's seed; build the task's model, Adam(lr) and the
    sigma schedule (sigmas converted from the grid's `sigma_ref` frame to heatmap pixels);
 2. resume from the newest checkpoint of the same cell key, if any;
 3. per epoch (`run_epoch`): visit the training images in an order drawn from a generator seeded
    by (seed, epoch), augment each batch on the device, render its targets on the device from
    the points with the schedule's current sigma, step Adam on the mean of the per-landmark MSE,
    and sum the per-landmark losses on the device; one host sync per epoch;
 4. a non-finite loss (or weight) ends the cell with outcome "diverged": a result, not an error;
 5. step the schedule on its clock (`bench.run.schedule.updates_per_epoch`: once an epoch by
    default, after every batch with `unit: iteration`, `updates / epochs` times an epoch with
    `updates:`), each time with the mean per-landmark loss since its last step; validate
    (decode + the task's metric), checkpoint
    every `checkpoint_every` epochs and after the last, and hand the epoch's metrics to
    `on_epoch` in one dict;
 6. evaluate the final model on the test split (the task's metrics, NTV of the conv layers).

Units: the logged sigmas ("sigma_mean", "sigma/<landmark>", "sigma_final_mean") are in the grid's
unit, pixels of a `sigma_ref`-wide frame (heatmap pixels when sigma_ref is None), so a "sigma5"
cell logs 5 at every profile; "sigma_final_mean_hm" is the same width in heatmap pixels. An
epoch's sigma is the one its last batch was rendered with.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from adaloss.losses import labelled, landmark_mse
from adaloss.metrics import model_ntv
from adaloss.schedules import Adaloss, SigmaSchedule
from adaloss.targets import render_heatmaps
from bench.data.dataset import LandmarkDataset, Split
from bench.data.sources import Prepared, prepare_cell_data
from bench.run.augment import random_rotation
from bench.run.cell import CellConfig, cell_key
from bench.run.checkpoint import load_latest, restore_rng_state, rng_state, save_checkpoint
from bench.run.schedule import build_schedule, sigma_scale, updates_per_epoch
from bench.tasks import get_task
from bench.tasks.base import Task, concat_points, landmark_group

OVERLAY_IMAGES = 8


@dataclass
class CellResult:
    """What a cell produced.

    outcome: "finished" or "diverged". history: the dicts passed to `on_epoch`, in order.
    final_metrics: test metrics (see the task), "ntv_all", "ntv_last", "sigma_final_mean",
        "sigma_final_mean_hm", "wall_time_s", "images_per_s"; a diverged cell has no test or NTV
        metrics but "diverged_epoch".
    per_landmark: CSV rows: landmark, group, sigma_final, sigma_final_hm and the task's errors.
    overlay: the first test images "images" (n, C, H, W) with "true" and "pred" points in image
        pixels; empty for a diverged cell.
    data: what the cell trained on (`data_record`): name, digest, source and split sizes.
    """

    outcome: str
    epochs_run: int
    history: list[dict[str, float]]
    final_metrics: dict[str, float]
    per_landmark: list[dict[str, Any]]
    overlay: dict[str, Tensor] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoopConfig:
    """The per-batch choices of a cell, fixed for its whole run.

    updates_per_epoch: how many times the schedule steps in an epoch, each time with the mean
        loss of the iterations since its last step (1: once after the epoch; the number of
        batches: after every batch). `bench.run.schedule.updates_per_epoch` decides it.
    keep_iteration_losses: the per-batch losses of those iterations go to the schedule
        (Adaloss's variance_of "iteration_losses"); target_energy: so does each landmark's mean
        square target (its loss_scale "relative").
    rotation_deg: on-device rotation augmentation (0: none). normalize: target normalisation.
    bf16: the forward pass under bfloat16 autocast (the trainer's choice on CUDA:
        `uses_bf16`). channels_last: batches in the channels_last layout the model is in
        (`prepare_model`).
    """

    batch_size: int
    device: torch.device
    updates_per_epoch: int = 1
    keep_iteration_losses: bool = False
    target_energy: bool = False
    rotation_deg: float = 0.0
    normalize: str | None = None
    bf16: bool = False
    channels_last: bool = True

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def uses_bf16(device: torch.device) -> bool:
    """Whether the trainer autocasts to bfloat16 on `device`: on CUDA (tensor cores), not on the
    CPU, where the regime criteria and every recorded result were measured in float32."""
    return device.type == "cuda"


@dataclass(frozen=True)
class EpochStats:
    """One training epoch. landmark_losses: (K,) float64 mean loss per landmark over the epoch's
    images (NaN/inf when it diverged). sigma: (K,) heatmap-pixel widths its last batch was
    rendered with."""

    landmark_losses: Tensor
    sigma: Tensor
    finite: bool
    images: int
    seconds: float


def train_cell(
    cell: CellConfig,
    *,
    device: str = "cpu",
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 5,
    data_root: Path | None = None,
) -> CellResult:
    """Train one cell, validating every epoch, and evaluate it on the test split.

    Resumes from the newest checkpoint of the same `cell_key` in `checkpoint_dir`. Every epoch of
    the returned history reaches `on_epoch(epoch, record)` exactly once per call, in order,
    including the epochs restored from a checkpoint (replayed before training continues). Raises
    on bad input and bugs; KeyboardInterrupt propagates with the last checkpoint intact.
    """
    started = time.perf_counter()
    torch_device = resolve_device(device)
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    prepared = prepare_cell_data(cell, data_root)
    dataset = prepared.dataset
    task = get_task(cell.task, dataset.layout, cell.task_options)
    settings = task.settings(cell.profile, cell.extra)
    key = cell_key(cell)
    loop = LoopConfig(
        batch_size=cell.batch_size,
        device=torch_device,
        updates_per_epoch=updates_per_epoch(
            cell.schedule, cell.epochs, math.ceil(len(dataset.split("train")) / cell.batch_size)
        ),
        keep_iteration_losses=cell.schedule.variance_of == "iteration_losses",
        target_energy=cell.schedule.loss_scale == "relative",
        rotation_deg=settings.rotation_deg,
        normalize=settings.normalize,
        bf16=uses_bf16(torch_device),
    )
    training_points = dataset.split("train").points
    if loop.keep_iteration_losses and training_points.ndim == 3 and training_points.isnan().any():
        # that reading's variance runs over every batch's loss, so a landmark some batch does
        # not label would enter it as a loss of 0
        raise ValueError(
            f"{cell.method}: variance_of: iteration_losses needs every training point labelled, "
            "and these data leave some out (NaN, COCO v = 0); use variance_of: epoch_means"
        )

    with deterministic_algorithms(torch_device):
        seed_everything(cell.seed)
        model = prepare_model(
            task.build_model(settings, dataset.channels, dataset.num_landmarks), torch_device
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=cell.lr)
        schedule = build_schedule(cell.schedule, dataset.num_landmarks, dataset.image_size)
        sigma_unit = sigma_scale(cell.schedule, dataset.image_size)
        progress = TrainingState()
        saved = load_latest(checkpoint_dir, key) if checkpoint_dir is not None else None
        if saved is not None:
            progress = restore(saved, model, optimizer, schedule, torch_device)
        for epoch, record in enumerate(progress.history, start=1):
            if on_epoch is not None:
                on_epoch(epoch, record)

        train = on_device(dataset.split("train"), torch_device)
        val = on_device(dataset.split("val"), torch_device)
        outcome = "finished"
        for epoch in range(progress.epoch + 1, cell.epochs + 1):
            stats = run_epoch(
                model, optimizer, schedule, train, loop, epoch_generator(cell.seed, epoch)
            )
            progress.add_training(stats)
            if not stats.finite:
                outcome = "diverged"
                break
            val_started = time.perf_counter()
            val_metrics = task.validate(predict(model, task, val.images, loop), val, dataset)
            seconds = stats.seconds + time.perf_counter() - val_started
            record = epoch_record(stats, val_metrics, cell.lr, dataset, sigma_unit, seconds)
            progress.finish_epoch(epoch, record, stats.sigma)
            if checkpoint_dir is not None and (
                epoch % checkpoint_every == 0 or epoch == cell.epochs
            ):
                elapsed = progress.wall_time_s + time.perf_counter() - started
                state = checkpoint_state(key, progress, model, optimizer, schedule, elapsed)
                save_checkpoint(checkpoint_dir, key, epoch, state)
            if on_epoch is not None:
                on_epoch(epoch, record)

        wall_time_s = progress.wall_time_s + time.perf_counter() - started
        if outcome == "diverged":
            result = diverged_result(progress, dataset, sigma_unit, wall_time_s)
        else:
            result = finished_result(progress, model, task, dataset, loop, sigma_unit, wall_time_s)
        return dataclasses.replace(result, data=data_record(prepared))


# --- the epoch ---------------------------------------------------------------------------------


def run_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: SigmaSchedule,
    train: Split,
    loop: LoopConfig,
    generator: torch.Generator,
) -> EpochStats:
    """One pass over `train` (tensors on `loop.device`) in the order drawn from `generator`.

    Targets are rendered per batch from the (augmented) points with the schedule's current sigma.
    The schedule steps `loop.updates_per_epoch` times, evenly spread over the batches (the last
    step after the last batch), each time with the mean per-landmark loss of the images since
    its previous step; only those steps wait for the device. A non-finite loss ends the epoch
    without stepping: the cell has diverged.

    With one instance per landmark, (B, K, 2) points, a NaN point is a label the annotator left
    out: it weighs nothing in the loss, in the epoch's and the schedule's loss means and in the
    target energy, and a due step waits for the next batch of the epoch that labels every
    landmark not labelled since the last step (one still waiting at the epoch's end is dropped).
    With several instances, (B, K, N, 2), NaN means "no instance here", and the all-zero target
    is what the model must learn.
    """
    started = time.perf_counter()
    model.train()
    size = tuple(train.images.shape[-2:])
    order = torch.randperm(len(train), generator=generator).to(loop.device)
    sigma = schedule.sigma.to(loop.device, torch.float32)
    k = train.points.shape[1]
    batches = math.ceil(len(train) / loop.batch_size)
    loss_sum = torch.zeros(k, dtype=torch.float64, device=loop.device)
    labels = torch.zeros(k, dtype=torch.float64, device=loop.device)
    interval = _Interval(k, loop.device)
    for batch, start in enumerate(range(0, len(train), loop.batch_size)):
        index = order[start : start + loop.batch_size]
        images, points = train.images[index], train.points[index]
        if loop.rotation_deg:
            images, points = random_rotation(images, points, loop.rotation_deg, generator)
        rendered = sigma
        targets = render_heatmaps(points, rendered, size, normalize=loop.normalize)
        images = images.contiguous(memory_format=loop.memory_format)
        with torch.autocast(loop.device.type, dtype=torch.bfloat16, enabled=loop.bf16):
            heatmaps = model(images)
        weight = labelled(points) if points.ndim == 3 else None  # (B, K), see above
        losses = landmark_mse(heatmaps.float(), targets, weight)  # (K,)
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(losses.mean())
        optimizer.step()
        batch_losses = losses.detach()
        counts = _labelled_counts(weight, len(index), k, loop.device)
        loss_sum += batch_losses.double() * counts
        labels += counts
        interval.add(batch_losses, targets if loop.target_energy else None, weight, counts)
        if update_due(batch, batches, loop.updates_per_epoch) or interval.overdue:
            if not bool(torch.isfinite(interval.loss_sum).all()):
                break  # the schedule refuses non-finite losses; the epoch has diverged
            if not bool((interval.labels > 0).all()):
                interval.overdue = True  # a landmark has no label since the last step: wait
                continue
            step_losses = interval.iteration_losses() if loop.keep_iteration_losses else None
            sigma = step_schedule(
                schedule,
                interval.mean_losses() if step_losses is None else step_losses,
                interval.mean_energy() if loop.target_energy else None,
            ).to(loop.device, torch.float32)
            interval = _Interval(k, loop.device)
    finite = torch.isfinite(loss_sum).all() & all_finite(model)
    # the epoch's one host sync; a landmark labelled nowhere in the split has loss 0
    landmark_losses = (loss_sum / labels.clamp_min(1)).cpu()
    return EpochStats(
        landmark_losses=landmark_losses,
        sigma=rendered.cpu().double(),
        finite=bool(finite),
        images=len(train),
        seconds=time.perf_counter() - started,
    )


def update_due(batch: int, batches: int, updates: int) -> bool:
    """Whether the schedule steps after 0-based `batch` of `batches`: `updates` steps spread
    evenly, the last one after the last batch (1: the epoch's end; `batches`: every batch)."""
    return (batch + 1) * updates // batches > batch * updates // batches


def _labelled_counts(weight: Tensor | None, images: int, k: int, device: torch.device) -> Tensor:
    """(K,) float64: how many images of the batch label each landmark (all of them when every
    point counts)."""
    if weight is None:
        return torch.full((k,), float(images), dtype=torch.float64, device=device)
    return weight.sum(dim=0).double()


class _Interval:
    """The losses (and target energies) of the iterations since the schedule's last step,
    summed on the device: float64 sums weighted by each landmark's labelled images, and each
    batch's (K,) losses for the "iteration_losses" reading. `overdue`: a due step was put off
    because a landmark had no label yet; it is taken after the next batch that brings one."""

    def __init__(self, k: int, device: torch.device) -> None:
        self.loss_sum = torch.zeros(k, dtype=torch.float64, device=device)
        self.energy_sum = torch.zeros(k, dtype=torch.float64, device=device)
        self.labels = torch.zeros(k, dtype=torch.float64, device=device)
        self.batches: list[Tensor] = []
        self.overdue = False

    def add(
        self, losses: Tensor, targets: Tensor | None, weight: Tensor | None, counts: Tensor
    ) -> None:
        self.loss_sum += losses.double() * counts
        self.batches.append(losses.double())
        self.labels += counts
        if targets is None:
            return
        if weight is None:  # the batch mean, computed as it always was: same bits
            energy = targets.square().mean(dim=(0, *range(2, targets.ndim)))  # (K,)
            self.energy_sum += energy.double() * counts
        else:
            per_image = targets.square().mean(dim=tuple(range(2, targets.ndim)))  # (B, K)
            self.energy_sum += (per_image * weight).double().sum(dim=0)

    def mean_losses(self) -> Tensor:
        return (self.loss_sum / self.labels).cpu()

    def iteration_losses(self) -> Tensor:
        return torch.stack(self.batches).cpu()

    def mean_energy(self) -> Tensor:
        return (self.energy_sum / self.labels).cpu()


def step_schedule(schedule: SigmaSchedule, losses: Tensor, target_energy: Tensor | None) -> Tensor:
    """Step the schedule with (K,) or (n, K) losses; Adaloss also takes the targets' energy."""
    if isinstance(schedule, Adaloss):
        return schedule.step(losses, target_energy=target_energy)
    return schedule.step(losses)


def all_finite(model: nn.Module) -> Tensor:
    """A 0-d bool tensor on the model's device: no parameter or buffer is NaN or infinite."""
    tensors = (*model.parameters(), *model.buffers())
    checks = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
    return torch.stack(checks).all()


@torch.no_grad()
def predict(model: nn.Module, task: Task, images: Tensor, loop: LoopConfig) -> Tensor:
    """Decoded points of (N, C, H, W) images (any device), batch by batch: (N, K, 2) or
    (N, K, M, 2) in image pixels, on the CPU. BatchNorm uses its running statistics."""
    model.eval()
    parts = []
    for start in range(0, len(images), loop.batch_size):
        batch = images[start : start + loop.batch_size].to(loop.device)
        batch = batch.contiguous(memory_format=loop.memory_format)
        with torch.autocast(loop.device.type, dtype=torch.bfloat16, enabled=loop.bf16):
            heatmaps = model(batch)
        parts.append(task.decode(heatmaps.float()))
    return concat_points(parts)


# --- setup -------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """ "cpu", "cuda" or "cuda:N"; raises one clear line when CUDA is asked for but missing."""
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"device {name!r} is not a torch device; use 'cpu' or 'cuda'") from error
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not supported; use 'cpu' or 'cuda'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {name!r} requested but CUDA is not available (torch {torch.__version__}); "
            "use device 'cpu'"
        )
    return device


@contextlib.contextmanager
def deterministic_algorithms(device: torch.device) -> Iterator[None]:
    """Deterministic kernels on the CPU, where they cost nothing; on CUDA the bilinear upsampling
    backward has no deterministic kernel, so the global setting is left alone there."""
    if device.type != "cpu":
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (the global RNG library code draws from)
    random.seed(seed)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of one epoch's data order and augmentation, a function of (seed, epoch)
    only, so a resumed cell draws exactly what an uninterrupted one would."""
    mixed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    return torch.Generator().manual_seed(mixed)


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool = True) -> nn.Module:
    """The model on `device` in channels_last (unless told otherwise), the layout the batches
    are given in: faster on CUDA (tensor cores) and on the CPU (1.6x for the quick U-Net,
    `bench perf trainer`)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(device).to(memory_format=layout)  # type: ignore[call-overload]


def on_device(split: Split, device: torch.device) -> Split:
    return Split(split.images.to(device), split.points.to(device), split.subsets)


# --- bookkeeping -------------------------------------------------------------------------------


def data_record(prepared: Prepared) -> dict[str, str]:
    """The dataset as MLflow records a run's input: "task/variant", the cache's content hash, the
    cache folder, the split sizes and the layout (JSON; `bench report` rebuilds the task from
    it)."""
    from bench.data.cache import MANIFEST

    manifest = json.loads((prepared.directory / MANIFEST).read_text())
    sizes = {name: len(split) for name, split in prepared.dataset.splits.items()}
    return {
        "name": f"{prepared.dataset.task}/{prepared.directory.name}",
        "digest": str(manifest["content_hash"]),
        "source": str(prepared.directory.resolve()),
        "splits": json.dumps(sizes),
        "layout": prepared.dataset.layout.to_json(),
    }


@dataclass
class TrainingState:
    """What a cell has done so far; all of it goes into a checkpoint.

    sigma: (K,) heatmap-pixel widths of the last finished epoch (None before the first).
    """

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    sigma: Tensor | None = None
    train_images: int = 0
    train_seconds: float = 0.0
    wall_time_s: float = 0.0

    def add_training(self, stats: EpochStats) -> None:
        self.train_images += stats.images
        self.train_seconds += stats.seconds

    def finish_epoch(self, epoch: int, record: dict[str, float], sigma: Tensor) -> None:
        self.epoch = epoch
        self.history.append(record)
        self.sigma = sigma


def epoch_record(
    stats: EpochStats,
    val_metrics: dict[str, float],
    lr: float,
    dataset: LandmarkDataset,
    sigma_unit: float,
    seconds: float,
) -> dict[str, float]:
    """The epoch's metrics, one flat dict of floats (`on_epoch`'s one call per epoch)."""
    sigma = stats.sigma / sigma_unit
    return {
        "train_loss": float(stats.landmark_losses.mean()),
        **val_metrics,
        "sigma_mean": float(sigma.mean()),
        **{
            f"sigma/{name}": float(s) for name, s in zip(dataset.landmark_names, sigma, strict=True)
        },
        "epoch_time_s": seconds,
        "lr": lr,
    }


def checkpoint_state(
    key: str,
    progress: TrainingState,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: SigmaSchedule,
    wall_time_s: float,
) -> dict[str, Any]:
    """Everything a resumed cell needs to continue on the same trajectory."""
    device = next(model.parameters()).device
    return {
        "cell_key": key,
        "epoch": progress.epoch,
        "history": progress.history,
        "sigma": progress.sigma,
        "train_images": progress.train_images,
        "train_seconds": progress.train_seconds,
        "wall_time_s": wall_time_s,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": rng_state(device),
    }


def restore(
    state: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: SigmaSchedule,
    device: torch.device,
) -> TrainingState:
    """Load a checkpoint into the freshly built objects; returns the progress it recorded."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    restore_rng_state(state["rng"], device)
    return TrainingState(
        epoch=state["epoch"],
        history=list(state["history"]),
        sigma=state["sigma"],
        train_images=state["train_images"],
        train_seconds=state["train_seconds"],
        wall_time_s=state["wall_time_s"],
    )


def final_sigma(progress: TrainingState) -> Tensor:
    """(K,) heatmap-pixel widths the final model was last trained with."""
    if progress.sigma is None:
        raise ValueError("no epoch finished, so there is no final sigma")
    return progress.sigma


def timing_metrics(progress: TrainingState, wall_time_s: float) -> dict[str, float]:
    rate = progress.train_images / progress.train_seconds if progress.train_seconds else math.nan
    return {"wall_time_s": wall_time_s, "images_per_s": rate}


def sigma_rows(
    dataset: LandmarkDataset, sigma_hm: Tensor | None, sigma_unit: float
) -> list[dict[str, Any]]:
    groups = landmark_group(dataset)
    rows = []
    for index, name in enumerate(dataset.landmark_names):
        width = math.nan if sigma_hm is None else float(sigma_hm[index])
        rows.append(
            {
                "landmark": name,
                "group": groups[index],
                "sigma_final": width / sigma_unit,
                "sigma_final_hm": width,
            }
        )
    return rows


def diverged_result(
    progress: TrainingState, dataset: LandmarkDataset, sigma_unit: float, wall_time_s: float
) -> CellResult:
    sigma_hm = progress.sigma
    final = {
        "diverged_epoch": float(progress.epoch + 1),
        "sigma_final_mean": math.nan if sigma_hm is None else float(sigma_hm.mean()) / sigma_unit,
        "sigma_final_mean_hm": math.nan if sigma_hm is None else float(sigma_hm.mean()),
        **timing_metrics(progress, wall_time_s),
    }
    return CellResult(
        outcome="diverged",
        epochs_run=progress.epoch,
        history=progress.history,
        final_metrics=final,
        per_landmark=sigma_rows(dataset, sigma_hm, sigma_unit),
    )


def finished_result(
    progress: TrainingState,
    model: nn.Module,
    task: Task,
    dataset: LandmarkDataset,
    loop: LoopConfig,
    sigma_unit: float,
    wall_time_s: float,
) -> CellResult:
    """Evaluate the final model on the test split and assemble the result."""
    test = dataset.split("test")
    points = predict(model, task, test.images, loop)
    test_metrics, test_rows = task.test(points, test, dataset)
    ntv = model_ntv(model)
    sigma_hm = final_sigma(progress)
    final = {
        **test_metrics,
        "ntv_all": ntv["all"],
        "ntv_last": ntv["last"],
        "sigma_final_mean": float(sigma_hm.mean()) / sigma_unit,
        "sigma_final_mean_hm": float(sigma_hm.mean()),
        **timing_metrics(progress, wall_time_s),
    }
    rows = [
        {**sigma_row, **{k: v for k, v in test_row.items() if k not in sigma_row}}
        for sigma_row, test_row in zip(
            sigma_rows(dataset, sigma_hm, sigma_unit), test_rows, strict=True
        )
    ]
    shown = min(OVERLAY_IMAGES, len(test))
    overlay = {
        "images": test.images[:shown].clone(),
        "true": test.points[:shown].clone(),
        "pred": points[:shown].clone(),
    }
    return CellResult(
        outcome="finished",
        epochs_run=progress.epoch,
        history=progress.history,
        final_metrics=final,
        per_landmark=rows,
        overlay=overlay,
    )
