"""`bench perf targets`: render_heatmaps against the per-landmark NumPy loop a user would write.

Both render the same float32 points into float32 heatmaps in the same run; the speed-up is the
baseline's median time over ours. A third column times allocating and filling an output of the
same shape, the floor that any implementation pays, and the next gives our time over it. The goal
on the CPU, at every size and thread count: within GOAL_OVER_FLOOR of the floor and never slower
than the loop.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from bench.cli.options import torch_threads_option

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import torch

BATCH = 32
LANDMARKS = 68
SIDES = (64, 256)
# sigma as a fraction of the side: 2 px at 64, 8 px at 256 (the paper's range at 256 is 5-60)
SIGMA_PER_SIDE = 1 / 32
GOAL_DEVICE, GOAL_OVER_FLOOR, GOAL_SPEEDUP = "cpu", 1.5, 1.0
# float32 rendering of the same points: both sides round differently, never by more than this
AGREEMENT_TOLERANCE = 1e-5


@click.command()
@click.option(
    "--repeats", default=7, show_default=True, type=click.IntRange(min=1), help="Timed runs each."
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="auto: the CPU, and CUDA too when torch sees it.",
)
@torch_threads_option
def targets(repeats: int, device: str, threads: int) -> None:
    """Time render_heatmaps against a NumPy loop over landmarks (B=32, K=68, 64^2 and 256^2)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    devices = _devices(device, torch.cuda.is_available())
    click.echo(
        f"B={BATCH} K={LANDMARKS} float32, median of {repeats} after one warm-up; "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    header = (
        f"{'size':>9} {'device':>6} {'baseline ms':>12} {'ours ms':>9} {'speed-up':>9} "
        f"{'floor ms':>9} {'/ floor':>8} {'max |diff|':>11}  goal"
    )
    click.echo(header)
    failures = []
    for side in SIDES:
        points = _random_points(side)
        baseline_ms, expected = _time_baseline(points.numpy(), side, repeats)
        for name in devices:
            ours_ms, floor_ms, rendered = _time_ours(points, side, name, repeats)
            difference = float(abs(rendered - expected).max())
            if difference > AGREEMENT_TOLERANCE:
                failures.append(f"{side}x{side} on {name}: max |diff| {difference:.2e}")
            speedup, over_floor = baseline_ms / ours_ms, ours_ms / floor_ms
            goal = ""
            if name == GOAL_DEVICE:
                met = over_floor <= GOAL_OVER_FLOOR and speedup >= GOAL_SPEEDUP
                goal = (
                    f"<= {GOAL_OVER_FLOOR:g}x floor, >= {GOAL_SPEEDUP:g}x loop: "
                    f"{'met' if met else 'NOT met'}"
                )
            click.echo(
                f"{f'{side}x{side}':>9} {name:>6} {baseline_ms:>12.2f} {ours_ms:>9.2f} "
                f"{speedup:>8.1f}x {floor_ms:>9.2f} {over_floor:>7.2f}x {difference:>11.1e}  {goal}"
            )
    if failures:
        raise click.ClickException("outputs disagree: " + "; ".join(failures))


def _devices(choice: str, cuda_available: bool) -> list[str]:
    """The devices to time ours on, from the --device choice."""
    if choice == "cuda" and not cuda_available:
        raise click.BadParameter("torch sees no CUDA device", param_hint="--device")
    if choice == "auto":
        return ["cpu", "cuda"] if cuda_available else ["cpu"]
    return [choice]


def _random_points(side: int) -> torch.Tensor:
    """(B, K, 2) float32 points spread over a side x side heatmap, the same in every run."""
    import torch

    generator = torch.Generator().manual_seed(side)
    return torch.rand(BATCH, LANDMARKS, 2, generator=generator) * (side - 1)


def _numpy_baseline(points: npt.NDArray[np.float32], sigma: float, side: int) -> np.ndarray:
    """The straightforward renderer: one full-image Gaussian per landmark over a meshgrid.

    Args:
        points: (B, K, 2) float32 (x, y).

    Returns:
        (B, K, side, side) float32 heatmaps.
    """
    import numpy as np

    pixels = np.arange(side, dtype=np.float32)
    xs, ys = np.meshgrid(pixels, pixels)  # (H, W): xs varies along columns
    batch, landmarks, _ = points.shape
    heatmaps = np.empty((batch, landmarks, side, side), dtype=np.float32)
    for landmark in range(landmarks):
        dx = xs[None] - points[:, landmark, 0, None, None]
        dy = ys[None] - points[:, landmark, 1, None, None]
        heatmaps[:, landmark] = np.exp(-(dx**2 + dy**2) / np.float32(2 * sigma**2))
    return heatmaps


def _time_baseline(
    points: npt.NDArray[np.float32], side: int, repeats: int
) -> tuple[float, np.ndarray]:
    """Median ms of the NumPy baseline, and its output."""
    sigma = side * SIGMA_PER_SIDE
    return _median_ms(lambda: _numpy_baseline(points, sigma, side), repeats, lambda: None)


def _time_ours(
    points: torch.Tensor, side: int, device: str, repeats: int
) -> tuple[float, float, np.ndarray]:
    """Median ms of render_heatmaps and of an output-sized allocate-and-fill, and our output."""
    import torch

    from adaloss.targets import render_heatmaps

    sigma = side * SIGMA_PER_SIDE
    on_device = points.to(device)
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    ours_ms, rendered = _median_ms(
        lambda: render_heatmaps(on_device, sigma, (side, side)), repeats, synchronize
    )
    floor_ms, _ = _median_ms(_output_sized_fill(side, device), repeats, synchronize)
    return ours_ms, floor_ms, rendered.cpu().numpy()


def _output_sized_fill(side: int, device: str) -> Callable[[], object]:
    """Allocate and fill a (B, K, side, side) float32 output the way render_heatmaps allocates:
    through NumPy (huge pages) on the CPU, through torch's caching allocator on CUDA."""
    import numpy as np
    import torch

    shape = (BATCH, LANDMARKS, side, side)
    if device == "cpu":
        return lambda: np.full(shape, 0.5, dtype=np.float32)
    return lambda: torch.full(shape, 0.5, device=device)


def _median_ms(
    run: Callable[[], Any], repeats: int, synchronize: Callable[[], object]
) -> tuple[float, Any]:
    """Median wall time in ms of ``run`` over ``repeats`` timed calls, and the warm-up's result.

    Timed results are dropped at once, so each call allocates afresh as a training loop would.
    """
    result = run()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result
