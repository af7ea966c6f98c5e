"""The shared trainer: learning, schedule stepping, resume, divergence, checkpoints, units."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bench.run.trainer as trainer
from adaloss.schedules import FixedSigma, LinearDecay
from adaloss.targets import render_heatmaps
from bench.data.dataset import Split
from bench.data.sources import load_dataset
from bench.run.cell import CellConfig, cell_key
from bench.run.checkpoint import checkpoints, load_latest
from bench.run.schedule import ScheduleConfig, build_schedule
from bench.run.trainer import (
    LoopConfig,
    resolve_device,
    run_epoch,
    train_cell,
    update_due,
)
from bench.tasks.models import UNet

TIMING_KEYS = ("epoch_time_s",)


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """Tiny tensors gain nothing from threads, and on a shared machine OpenMP threads that wait
    for each other cost far more than the work itself."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root shared by this module's cells (the smoke datasets are generated once)."""
    return tmp_path_factory.mktemp("data")


def smoke_cell(**changes: Any) -> CellConfig:
    values: dict[str, Any] = {
        "grid": "test",
        "task": "cathdet",
        "method": "adaloss",
        "schedule": ScheduleConfig(kind="adaloss", window=2, sigma_ref=None),
        "lr": 1e-3,
        "seed": 3,
        "profile": "smoke",
        "epochs": 2,
        "batch_size": 8,
    }
    values.update(changes)
    return CellConfig(**values)


class EpochRecorder:
    def __init__(self, interrupt_at: int | None = None) -> None:
        self.epochs: list[int] = []
        self.records: list[dict[str, float]] = []
        self.interrupt_at = interrupt_at

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append(epoch)
        self.records.append(metrics)
        if epoch == self.interrupt_at:
            raise KeyboardInterrupt


def without_timing(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in history]


# --- the epoch loop --------------------------------------------------------------------------


def test_loss_falls_on_a_trivially_easy_task() -> None:
    # The image IS the target heatmap: the network only has to copy its input.
    torch.manual_seed(0)
    points = torch.rand(32, 1, 2, generator=torch.Generator().manual_seed(1)) * 13 + 1.5
    images = render_heatmaps(points, 2.0, (16, 16))
    model = UNet(1, 1, width=4, depth=2, kernel_size=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = FixedSigma(1, 2.0)
    loop = LoopConfig(batch_size=8, device=torch.device("cpu"))
    split = Split(images, points)
    losses = []
    for epoch in range(15):
        stats = run_epoch(
            model, optimizer, schedule, split, loop, torch.Generator().manual_seed(epoch)
        )
        losses.append(float(stats.landmark_losses[0]))
    assert losses[-1] < 0.2 * losses[0]


def test_epoch_loss_is_the_mean_over_images_of_the_batch_losses() -> None:
    # 10 images in batches of 4, 4, 2 and lr 0: the epoch's loss must weight batches by size.
    points = torch.rand(10, 2, 2, generator=torch.Generator().manual_seed(0)) * 10 + 3
    images = torch.rand(10, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = UNet(1, 2, width=2, depth=1, kernel_size=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loop = LoopConfig(batch_size=4, device=torch.device("cpu"))
    split = Split(images, points)
    stats = run_epoch(
        model, optimizer, FixedSigma(2, 1.5), split, loop, torch.Generator().manual_seed(7)
    )

    order = torch.randperm(10, generator=torch.Generator().manual_seed(7))
    total = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():  # train mode as in the epoch: BatchNorm uses each batch's statistics
        for batch in order.split(4):
            target = render_heatmaps(points[batch], 1.5, (16, 16))
            squared = (model(images[batch]) - target).square()
            total += squared.sum(dim=(0, 2, 3)).double() / (16 * 16)
    torch.testing.assert_close(stats.landmark_losses, total / 10)
    assert stats.images == 10
    assert stats.finite


def test_unlabelled_points_weigh_nothing_in_the_epoch_loss_or_the_schedule_steps() -> None:
    # 10 images in batches of 4, 4, 2 and lr 0, landmark 1 unlabelled (NaN) on 4 of them: its
    # loss means run over the 6 images that label it, landmark 0's over all 10; the schedule,
    # stepped after every batch, sees each batch's mean over its labelled images. Recomputed
    # here image by image, straight from the definition.
    points = torch.rand(10, 2, 2, generator=torch.Generator().manual_seed(0)) * 10 + 3
    points[[0, 3, 4, 8], 1] = math.nan
    images = torch.rand(10, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = UNet(1, 2, width=2, depth=1, kernel_size=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loop = LoopConfig(batch_size=4, device=torch.device("cpu"), updates_per_epoch=3)
    spy = SpySchedule(2, 1.5)
    stats = run_epoch(
        model, optimizer, spy, Split(images, points), loop, torch.Generator().manual_seed(7)
    )

    order = torch.randperm(10, generator=torch.Generator().manual_seed(7))
    total, labelled_images = (
        torch.zeros(2, dtype=torch.float64),
        torch.zeros(2, dtype=torch.float64),
    )
    steps = []
    with torch.no_grad():
        for batch in order.split(4):
            target = render_heatmaps(points[batch], 1.5, (16, 16))
            per_image = (model(images[batch]) - target).square().mean(dim=(2, 3)).double()
            labelled = ~torch.isnan(points[batch]).any(dim=-1)
            total += (per_image * labelled).sum(dim=0)
            labelled_images += labelled.sum(dim=0)
            steps.append((per_image * labelled).sum(dim=0) / labelled.sum(dim=0))
    assert labelled_images.tolist() == [10.0, 6.0]
    torch.testing.assert_close(stats.landmark_losses, total / labelled_images)
    assert len(spy.calls) == 3
    for call, expected in zip(spy.calls, steps, strict=True):
        torch.testing.assert_close(call.double(), expected, rtol=1e-6, atol=0)


def test_a_due_step_waits_for_a_batch_that_labels_every_landmark() -> None:
    # batches of 2 (by the drawn order); landmark 1 unlabelled on the first batch's images only:
    # the step due after batch 1 is taken after batch 2 with both batches' losses, then one a
    # batch: 4 steps for 5 batches.
    points = torch.rand(10, 2, 2, generator=torch.Generator().manual_seed(0)) * 10 + 3
    order = torch.randperm(10, generator=torch.Generator().manual_seed(7))
    points[order[:2], 1] = math.nan
    images = torch.rand(10, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    model = UNet(1, 2, width=2, depth=1, kernel_size=3)
    loop = LoopConfig(batch_size=2, device=torch.device("cpu"), updates_per_epoch=5)
    spy = SpySchedule(2, 1.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    run_epoch(model, optimizer, spy, Split(images, points), loop, torch.Generator().manual_seed(7))
    assert len(spy.calls) == 4


# --- train_cell ------------------------------------------------------------------------------


class SpySchedule(FixedSigma):
    """A fixed sigma that records every call to step."""

    def __init__(self, num_landmarks: int, sigma: float) -> None:
        super().__init__(num_landmarks, sigma)
        self.calls: list[torch.Tensor] = []

    def step(self, landmark_losses: Any) -> torch.Tensor:
        self.calls.append(torch.as_tensor(landmark_losses).clone())
        return super().step(landmark_losses)


@pytest.mark.parametrize(("unit", "steps_per_epoch"), [("epoch", 1), ("iteration", 3)])
def test_schedule_steps_once_per_epoch_or_per_batch(
    data_root: Path, monkeypatch: pytest.MonkeyPatch, unit: str, steps_per_epoch: int
) -> None:
    spies: list[SpySchedule] = []

    def spy_schedule(*args: Any) -> SpySchedule:
        spies.append(SpySchedule(1, 2.0))
        return spies[-1]

    monkeypatch.setattr(trainer, "build_schedule", spy_schedule)
    cell = smoke_cell(schedule=ScheduleConfig(kind="fixed", sigma=2.0, unit=unit), epochs=3)
    result = train_cell(cell, data_root=data_root)
    (spy,) = spies
    # smoke: 24 training images in batches of 8
    assert len(spy.calls) == 3 * steps_per_epoch
    if unit == "epoch":
        logged = [record["train_loss"] for record in result.history]
        assert [float(call.mean()) for call in spy.calls] == pytest.approx(logged)


@pytest.mark.parametrize(
    ("updates", "batches", "due"),
    [
        (1, 3, [False, False, True]),  # once an epoch: after its last batch
        (3, 3, [True, True, True]),  # every batch
        (2, 3, [False, True, True]),  # after 3 * 1/2 = 1.5 and 3 batches, rounded down
        (2, 4, [False, True, False, True]),
    ],
)
def test_updates_are_spread_evenly_over_the_epoch(
    updates: int, batches: int, due: list[bool]
) -> None:
    assert [update_due(b, batches, updates) for b in range(batches)] == due


def test_five_updates_in_125_batches_fall_every_25() -> None:
    steps = [b + 1 for b in range(125) if update_due(b, 125, 5)]
    assert steps == [25, 50, 75, 100, 125]


class SpyDecay(LinearDecay):
    """A linear decay that records what each step was given."""

    def __init__(self) -> None:
        super().__init__(1, 8.0, 1.0, 0.5)
        self.calls: list[torch.Tensor] = []

    def step(self, landmark_losses: Any) -> torch.Tensor:
        self.calls.append(torch.as_tensor(landmark_losses).clone())
        return super().step(landmark_losses)


def test_an_updates_clock_steps_mid_epoch_with_the_mean_loss_since_the_last_step(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # smoke CathDet: 24 training images in 3 batches of 8; 4 updates over 2 epochs = 2 an
    # epoch, after batches 2 and 3 of each epoch. The decay starts at 8 heatmap px, -1 a step.
    spies: list[SpyDecay] = []
    rendered: list[float] = []
    batch_losses: list[torch.Tensor] = []

    def spy_schedule(*args: Any) -> SpyDecay:
        spies.append(SpyDecay())
        return spies[-1]

    def spy_render(points: torch.Tensor, sigma: torch.Tensor, *args: Any, **kw: Any) -> Any:
        rendered.append(float(sigma[0]))
        return render_heatmaps(points, sigma, *args, **kw)

    real_mse = trainer.landmark_mse

    def spy_mse(pred: torch.Tensor, target: torch.Tensor, weight: Any = None) -> torch.Tensor:
        losses = real_mse(pred, target, weight)
        batch_losses.append(losses.detach().double().clone())
        return losses

    monkeypatch.setattr(trainer, "build_schedule", spy_schedule)
    monkeypatch.setattr(trainer, "render_heatmaps", spy_render)
    monkeypatch.setattr(trainer, "landmark_mse", spy_mse)
    config = ScheduleConfig(kind="linear", sigma0=8.0, k=1.0, sigma_ref=None, updates=4)
    result = train_cell(smoke_cell(schedule=config, epochs=2), data_root=data_root)
    (spy,) = spies
    assert rendered == [8.0, 8.0, 7.0, 6.0, 6.0, 5.0]
    # the logged sigma of an epoch is the one its last batch was rendered with
    assert [record["sigma/tip"] for record in result.history] == [7.0, 5.0]
    # landmark_mse runs in training only: batches 1-3 are epoch 1's, 4-6 epoch 2's
    train = batch_losses
    steps = [(train[0] + train[1]) / 2, train[2], (train[3] + train[4]) / 2, train[5]]
    assert len(spy.calls) == 4
    for call, expected in zip(spy.calls, steps, strict=True):
        torch.testing.assert_close(call, expected)


def test_the_default_clock_replays_through_a_fresh_schedule(data_root: Path) -> None:
    # Once an epoch with the epoch's mean loss: feeding the logged training losses (K = 1) to a
    # fresh Adaloss gives the sigma every next epoch was rendered with.
    config = ScheduleConfig(kind="adaloss", window=2, sigma_ref=None)
    result = train_cell(smoke_cell(schedule=config, epochs=5), data_root=data_root)
    replay = build_schedule(config, 1, (32, 32))
    expected = [float(replay.sigma[0])]
    for record in result.history[:-1]:
        expected.append(float(replay.step([record["train_loss"]])[0]))
    logged = [record["sigma/tip"] for record in result.history]
    assert logged == pytest.approx(expected, rel=1e-6)
    assert len(set(logged)) > 1  # the rule moved sigma, so the replay is not trivially equal


def test_with_unit_iteration_every_batch_renders_the_sigma_of_the_step_before(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # smoke CathDet: 3 batches an epoch; a linear decay from 8 heatmap px by 1 a step, stepped
    # after every batch: the batches render 8, 7, 6 | 5, 4, 3 (a stale sigma would repeat one)
    rendered: list[float] = []

    def spy_render(points: torch.Tensor, sigma: torch.Tensor, *args: Any, **kw: Any) -> Any:
        rendered.append(float(sigma[0]))
        return render_heatmaps(points, sigma, *args, **kw)

    monkeypatch.setattr(trainer, "render_heatmaps", spy_render)
    config = ScheduleConfig(kind="linear", sigma0=8.0, k=1.0, sigma_ref=None, unit="iteration")
    result = train_cell(smoke_cell(schedule=config, epochs=2), data_root=data_root)
    assert rendered == [8.0, 7.0, 6.0, 5.0, 4.0, 3.0]
    assert [record["sigma/tip"] for record in result.history] == [6.0, 3.0]


def test_bf16_autocast_on_the_cpu_gives_finite_float32_losses_close_to_fp32() -> None:
    # the CUDA path's autocast, exercised where CI runs: CPU autocast supports bfloat16
    points = torch.rand(16, 2, 2, generator=torch.Generator().manual_seed(1)) * 10 + 3
    images = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    split = Split(images, points)
    stats = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = UNet(1, 2, width=4, depth=2, kernel_size=3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        loop = LoopConfig(batch_size=8, device=torch.device("cpu"), bf16=bf16)
        stats[bf16] = run_epoch(
            model, optimizer, FixedSigma(2, 1.5), split, loop, torch.Generator().manual_seed(3)
        )
    assert stats[True].finite and stats[True].landmark_losses.dtype == torch.float64
    torch.testing.assert_close(
        stats[True].landmark_losses, stats[False].landmark_losses, rtol=0.05, atol=1e-4
    )


def test_cell_logs_one_dict_per_epoch_with_every_metric(data_root: Path) -> None:
    recorder = EpochRecorder()
    cell = smoke_cell(schedule=ScheduleConfig(kind="fixed", sigma=40.0, sigma_ref=256))
    result = train_cell(cell, on_epoch=recorder, data_root=data_root)
    assert result.outcome == "finished"
    assert recorder.epochs == [1, 2]
    assert recorder.records == result.history
    record = result.history[0]
    for key in ("train_loss", "val_distance", "sigma_mean", "sigma/tip", "epoch_time_s", "lr"):
        assert math.isfinite(record[key]), key
    # sigma is logged in the grid's unit: 40 px of the 256 frame (5 heatmap px at 32 px)
    assert record["sigma/tip"] == pytest.approx(40.0)
    assert result.final_metrics["sigma_final_mean_hm"] == pytest.approx(5.0)
    for key in ("test_distance", "ntv_all", "ntv_last", "wall_time_s", "images_per_s"):
        assert math.isfinite(result.final_metrics[key]), key
    assert result.per_landmark[0]["landmark"] == "tip"
    assert result.overlay["images"].shape == (8, 1, 32, 32)
    assert result.overlay["pred"].shape == result.overlay["true"].shape == (8, 1, 2)


def final_weights(directory: Path, cell: CellConfig) -> dict[str, torch.Tensor]:
    state = load_latest(directory, cell_key(cell))
    assert state is not None
    return state["model"]


def test_interrupted_and_resumed_cell_matches_an_uninterrupted_one(
    data_root: Path, tmp_path: Path
) -> None:
    cell = smoke_cell(epochs=4)

    def run(directory: Path, recorder: EpochRecorder | None = None) -> trainer.CellResult:
        return train_cell(
            cell,
            on_epoch=recorder,
            checkpoint_dir=directory,
            checkpoint_every=2,
            data_root=data_root,
        )

    straight = run(tmp_path / "a")

    # Interrupted while logging epoch 3: the newest checkpoint is epoch 2's.
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", EpochRecorder(interrupt_at=3))
    assert [epoch for epoch, _ in checkpoints(tmp_path / "b", cell_key(cell))] == [2]
    recorder = EpochRecorder()
    resumed = run(tmp_path / "b", recorder)

    assert recorder.epochs == [1, 2, 3, 4]  # the restored epochs are replayed, then 3 and 4
    assert without_timing(resumed.history) == without_timing(straight.history)
    sigmas = [record["sigma/tip"] for record in straight.history]
    assert len(set(sigmas)) > 1  # window 2: Adaloss moved sigma within these 4 epochs
    weights_a, weights_b = final_weights(tmp_path / "a", cell), final_weights(tmp_path / "b", cell)
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name
    timing = ("wall_time_s", "images_per_s")
    assert {k: v for k, v in resumed.final_metrics.items() if k not in timing} == {
        k: v for k, v in straight.final_metrics.items() if k not in timing
    }


class EpochCounter:
    """Wraps `trainer.run_epoch` and counts the epochs actually trained."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = trainer.run_epoch

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(trainer, "run_epoch", counted)


def test_finished_cell_rerun_only_evaluates(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cell = smoke_cell(epochs=2)
    first = train_cell(cell, checkpoint_dir=tmp_path, data_root=data_root)
    counter = EpochCounter(monkeypatch)
    recorder = EpochRecorder()
    again = train_cell(cell, on_epoch=recorder, checkpoint_dir=tmp_path, data_root=data_root)
    assert counter.calls == 0  # the checkpoint after the last epoch holds everything
    assert recorder.epochs == [1, 2]  # replayed, not trained
    assert again.final_metrics["test_distance"] == first.final_metrics["test_distance"]


def test_a_resumed_cell_trains_only_the_epochs_after_its_checkpoint(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cell = smoke_cell(epochs=5)
    with pytest.raises(KeyboardInterrupt):  # checkpoint after epoch 2; stopped after epoch 3
        train_cell(
            cell,
            on_epoch=EpochRecorder(interrupt_at=3),
            checkpoint_dir=tmp_path,
            checkpoint_every=2,
            data_root=data_root,
        )
    counter = EpochCounter(monkeypatch)
    train_cell(cell, checkpoint_dir=tmp_path, checkpoint_every=2, data_root=data_root)
    assert counter.calls == 3  # epochs 3-5; a resume that restored nothing would train 5


@pytest.mark.parametrize("unit", ["epoch", "iteration"])
def test_nan_loss_ends_the_cell_as_diverged(
    data_root: Path, monkeypatch: pytest.MonkeyPatch, unit: str
) -> None:
    # Poison the loss from the second epoch on (smoke: 3 batches per epoch).
    batches = []
    real_mse = trainer.landmark_mse

    def poisoned(pred: torch.Tensor, target: torch.Tensor, weight: Any = None) -> torch.Tensor:
        batches.append(1)
        losses = real_mse(pred, target, weight)
        return losses * math.nan if len(batches) > 3 else losses

    monkeypatch.setattr(trainer, "landmark_mse", poisoned)
    recorder = EpochRecorder()
    cell = smoke_cell(epochs=4, schedule=ScheduleConfig(kind="adaloss", unit=unit))
    result = train_cell(cell, on_epoch=recorder, data_root=data_root)
    assert result.outcome == "diverged"
    assert result.epochs_run == 1
    assert recorder.epochs == [1]
    assert len(result.history) == 1
    assert result.final_metrics["diverged_epoch"] == 2.0
    assert "test_distance" not in result.final_metrics
    assert result.overlay == {}


# --- setup pieces ----------------------------------------------------------------------------


def test_sigmas_are_scaled_from_the_reference_frame_to_heatmap_pixels() -> None:
    fixed = build_schedule(ScheduleConfig(kind="fixed", sigma=25.0), 1, (64, 64))
    assert fixed.sigma.tolist() == [6.25]  # 25 px of 256 is 6.25 px of 64
    adaloss = build_schedule(ScheduleConfig(kind="adaloss", max_step=8.0), 2, (64, 80))
    assert adaloss.sigma.tolist() == [16.0, 16.0]  # a quarter of the shorter side
    assert adaloss.max_step == pytest.approx(8.0 * 80 / 256)
    # every length is in the sigma_ref frame: rho 0.9 and sigma_min 1 px of 256 at 80 px wide
    assert adaloss.rho == pytest.approx(0.9 * 80 / 256)
    assert adaloss.sigma_min == pytest.approx(80 / 256)
    explicit = build_schedule(ScheduleConfig(kind="adaloss", sigma0=128.0), 1, (64, 64))
    assert explicit.sigma.tolist() == [32.0]
    linear = build_schedule(
        ScheduleConfig(kind="linear", k=4.0, sigma_ref=None, sigma_min=0.5), 1, (32, 32)
    )
    assert linear.sigma.tolist() == [8.0]
    assert linear.step([0.1]).tolist() == [4.0]


def test_quick_and_paper_heatmaps_run_the_same_rule() -> None:
    # The rule is equivariant to a common scale of its lengths, so with every length stated in
    # the 256 frame the sigma trajectory, in that frame, is the same at 64 and 256 px heatmaps.
    config = ScheduleConfig(kind="adaloss", sigma0=60.0, max_step=12.0, sigma_min=3.0)
    quick = build_schedule(config, 2, (64, 64))
    paper = build_schedule(config, 2, (256, 256))
    rng = np.random.default_rng(0)
    losses = np.cumsum(rng.uniform(-0.2, 0.1, size=(25, 2)), axis=0) + 5
    moved = False
    for row in losses:
        in_frame = quick.step(row.tolist()) * 4
        assert torch.allclose(in_frame, paper.step(row.tolist()), rtol=1e-12, atol=1e-9)
        moved |= bool((in_frame < 60).any())
    assert moved


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ScheduleConfig(kind="fixed"), "schedule.sigma is required"),
        (ScheduleConfig(kind="linear"), "schedule.k is required"),
        (ScheduleConfig(kind="cosine"), "schedule.kind"),
        (ScheduleConfig(kind="fixed", sigma=5.0, unit="batch"), "schedule.unit"),
    ],
)
def test_bad_schedule_configs_are_refused(config: ScheduleConfig, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_schedule(config, 1, (32, 32))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_clear_error() -> None:
    with pytest.raises(RuntimeError, match="CUDA is not available") as error:
        resolve_device("cuda")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="not supported"):
        resolve_device("meta")


def test_a_truncated_checkpoint_is_set_aside_and_the_cell_restarts(
    tmp_path: Path, data_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cell = smoke_cell()
    first = train_cell(cell, checkpoint_dir=tmp_path, checkpoint_every=1, data_root=data_root)
    ((epoch, path),) = checkpoints(tmp_path, cell_key(cell))
    assert epoch == 2
    path.write_bytes(path.read_bytes()[:100])  # a copy cut short
    again = train_cell(cell, checkpoint_dir=tmp_path, checkpoint_every=1, data_root=data_root)
    assert without_timing(again.history) == without_timing(first.history)
    assert (tmp_path / f"{path.name}.corrupt").exists()
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert f"checkpoint {path} is unreadable" in warning.getMessage()
    assert "\n" not in warning.getMessage()


def test_another_cells_checkpoint_is_set_aside(tmp_path: Path) -> None:
    cell = smoke_cell()
    path = tmp_path / f"{cell_key(cell)}-epoch0002.pt"
    torch.save({"cell_key": "0123456789abcdef"}, path)
    assert load_latest(tmp_path, cell_key(cell)) is None
    assert not path.exists() and (tmp_path / f"{path.name}.corrupt").exists()


@pytest.mark.slow  # creating the MLflow SQLite store dominates
def test_perf_trainer_reports_a_ratio(data_root: Path) -> None:
    from click.testing import CliRunner

    from bench.perf.trainer import trainer as perf_trainer

    arguments = ["--profile", "smoke", "--repeats", "1", "--data-root", str(data_root)]
    result = CliRunner().invoke(perf_trainer, arguments)
    assert result.exit_code == 0, result.output
    assert "bare loop:" in result.output
    assert "ratio " in result.output


@pytest.mark.parametrize("task", ["face300w", "endovis"])
def test_every_task_trains_and_reports_its_summary_metrics(data_root: Path, task: str) -> None:
    cell = smoke_cell(task=task, epochs=1, schedule=ScheduleConfig(kind="fixed", sigma=20.0))
    result = train_cell(cell, data_root=data_root)
    assert result.outcome == "finished"
    summary = trainer.get_task(task).summary_metrics
    assert set(summary) <= set(result.final_metrics)
    assert trainer.get_task(task).validation_metric in result.history[0]
    assert len(result.per_landmark) == {"face300w": 68, "endovis": 2}[task]


def test_faces_train_on_rotated_images_with_mean_normalised_targets(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, list[Any]] = {"rotation": [], "normalize": []}
    real_rotation, real_render = trainer.random_rotation, trainer.render_heatmaps

    def spy_rotation(images: Any, points: Any, degrees: float, generator: Any) -> Any:
        seen["rotation"].append(degrees)
        return real_rotation(images, points, degrees, generator)

    def spy_render(points: Any, sigma: Any, size: Any, *, normalize: Any = None) -> Any:
        seen["normalize"].append(normalize)
        return real_render(points, sigma, size, normalize=normalize)

    monkeypatch.setattr(trainer, "random_rotation", spy_rotation)
    monkeypatch.setattr(trainer, "render_heatmaps", spy_render)
    train_cell(smoke_cell(task="face300w", epochs=1), data_root=data_root)
    assert seen["rotation"] and set(seen["rotation"]) == {30.0}
    assert seen["normalize"] and set(seen["normalize"]) == {"mean"}

    seen["rotation"].clear()
    seen["normalize"].clear()
    train_cell(smoke_cell(epochs=1), data_root=data_root)  # cathdet: neither
    assert seen["rotation"] == []
    assert set(seen["normalize"]) == {None}


# --- the rule's readings reach the schedule --------------------------------------------------


def test_iteration_losses_and_target_energy_reach_the_schedule(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[torch.Tensor, Any]] = []
    real_step = trainer.Adaloss.step

    def recording_step(self: Any, losses: Any, target_energy: Any = None) -> torch.Tensor:
        calls.append((torch.as_tensor(losses).clone(), target_energy))
        return real_step(self, losses, target_energy=target_energy)

    monkeypatch.setattr(trainer.Adaloss, "step", recording_step)
    schedule = ScheduleConfig(
        kind="adaloss", sigma_ref=None, variance_of="iteration_losses", loss_scale="relative"
    )
    result = train_cell(smoke_cell(schedule=schedule, epochs=1), data_root=data_root)
    ((losses, energy),) = calls
    assert losses.shape == (3, 1)  # smoke: 24 training images in batches of 8
    assert float(losses.mean()) == pytest.approx(result.history[0]["train_loss"])
    # the epoch's target energy, computed at once over the training set (no augmentation here)
    dataset = load_dataset("cathdet", profile="smoke", root=data_root)
    train = dataset.split("train")
    sigma0 = min(dataset.image_size) / 4
    expected = render_heatmaps(train.points, sigma0, dataset.image_size).square().mean()
    assert float(energy[0]) == pytest.approx(float(expected), rel=1e-5)


# --- survivors of `tox -e mutation` (CONTRIBUTING.md) -----------------------------------------


def test_restore_returns_every_field_the_checkpoint_recorded() -> None:
    model = UNet(1, 1, width=2, depth=1, kernel_size=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = FixedSigma(1, 2.0)
    recorded = trainer.TrainingState(
        epoch=3,
        history=[{"train_loss": 0.5}, {"train_loss": 0.4}, {"train_loss": 0.3}],
        sigma=torch.tensor([2.0], dtype=torch.float64),
        train_images=120,
        train_seconds=7.5,
    )
    state = trainer.checkpoint_state("k", recorded, model, optimizer, schedule, wall_time_s=9.25)
    again = trainer.restore(state, model, optimizer, FixedSigma(1, 2.0), torch.device("cpu"))
    assert (again.epoch, again.history, again.train_images) == (3, recorded.history, 120)
    assert (again.train_seconds, again.wall_time_s) == (7.5, 9.25)
    assert again.sigma is not None and torch.equal(again.sigma, recorded.sigma)


def test_the_cell_s_learning_rate_and_epoch_generators_reach_training(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rates: list[float] = []
    seeds: list[int] = []

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params: Any, lr: float = 1e-3, **options: Any) -> None:
            rates.append(lr)
            super().__init__(params, lr=lr, **options)

    real_epoch = trainer.run_epoch

    def recording_epoch(*args: Any) -> Any:
        seeds.append(args[-1].initial_seed())  # the epoch's generator, as train_cell made it
        return real_epoch(*args)

    monkeypatch.setattr(trainer.torch.optim, "Adam", RecordingAdam)
    monkeypatch.setattr(trainer, "run_epoch", recording_epoch)
    train_cell(smoke_cell(lr=3e-4, seed=5, epochs=2), data_root=data_root)
    assert rates == [3e-4]
    assert seeds == [trainer.epoch_generator(5, epoch).initial_seed() for epoch in (1, 2)]
    assert seeds[0] != seeds[1]
