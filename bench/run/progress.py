"""What `bench run` shows while it works: tqdm bars on a terminal, plain log lines elsewhere.

A bar over cells, and one bar over epochs per running cell (one per worker slot) showing the
training loss, the mean sigma and the task's validation metric. When stderr is not a terminal
(CI logs, `nohup`), every start, epoch and end is one line instead. Once the cells to run are
known (`plan`), every finished cell also says the grid's estimated time left (`time_left`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from bench.run.cell import CellConfig, cell_key

# cells of one task and profile take about as long an epoch: the unit the estimate learns in
Pace = tuple[str, str]


def pace_of(cell: CellConfig) -> Pace:
    return (cell.task, cell.profile)


def time_left(
    seconds_per_epoch: Mapping[Pace, float],
    epochs_left: Iterable[tuple[Pace, int]],
    jobs: int,
) -> float | None:
    """Seconds until the last cell ends: the epochs still to train (those left in the running
    cells and all of the pending ones), each at its task and profile's measured seconds per
    epoch, divided over the `jobs` cells that train side by side. A task and profile without a
    measurement yet takes the mean of the others; None while nothing was measured."""
    if not seconds_per_epoch:
        return None
    fallback = sum(seconds_per_epoch.values()) / len(seconds_per_epoch)
    work = sum(epochs * seconds_per_epoch.get(pace, fallback) for pace, epochs in epochs_left)
    return work / max(1, jobs)


def duration_text(seconds: float) -> str:
    """'45 s', '12 min', '2 h 05 min' (at least '1 s')."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def cell_label(cell: CellConfig) -> str:
    return f"{cell.method} lr={cell.lr:g} seed={cell.seed}"


def format_value(value: float | None) -> str:
    """4 significant digits; '-' for a missing value."""
    return "-" if value is None else f"{value:.4g}"


class Progress:
    """Receives the runner's events for `total` cells and renders them on `stream`."""

    def __init__(
        self, total: int, *, stream: TextIO | None = None, interactive: bool | None = None
    ):
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.total = total
        # cells run side by side: a start is numbered by starts, an end by ends
        self.started = 0
        self.ended = 0
        self.epoch_bars: dict[int, Any] = {}
        self.epochs: dict[int, int] = {}
        self.cells_bar: Any = None
        # for the time left: cells not started (key -> cell), each slot's cell and epochs done,
        # and the measured epoch times per task and profile
        self.pending: dict[str, CellConfig] = {}
        self.running: dict[int, tuple[CellConfig, int]] = {}
        self.epoch_seconds: dict[Pace, list[float]] = {}
        self.jobs = 1
        if self.interactive and total:
            from tqdm import tqdm

            self.cells_bar = tqdm(
                total=total,
                desc="cells",
                unit="cell",
                position=0,
                file=self.stream,
                dynamic_ncols=True,
            )

    def plan(self, cells: Iterable[CellConfig], jobs: int) -> None:
        """The cells this invocation will try, and how many train side by side."""
        self.pending = {cell_key(cell): cell for cell in cells}
        self.jobs = jobs

    def seconds_left(self) -> float | None:
        """`time_left` of what is running and pending now."""
        measured = {pace: sum(times) / len(times) for pace, times in self.epoch_seconds.items()}
        left = [(pace_of(cell), cell.epochs - done) for cell, done in self.running.values()]
        left += [(pace_of(cell), cell.epochs) for cell in self.pending.values()]
        return time_left(measured, left, min(self.jobs, max(1, len(left))))

    def note(self, text: str) -> None:
        """A line that does not break the bars."""
        if self.cells_bar is not None:
            self.cells_bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def cell_started(self, slot: int, cell: CellConfig, device: str) -> None:
        self.started += 1
        self.epochs[slot] = cell.epochs
        self.pending.pop(cell_key(cell), None)
        self.running[slot] = (cell, 0)
        if self.interactive:
            from tqdm import tqdm

            self.epoch_bars[slot] = tqdm(
                total=cell.epochs,
                desc=cell_label(cell),
                unit="epoch",
                position=slot + 1,
                leave=False,
                file=self.stream,
                dynamic_ncols=True,
            )
        else:
            self.note(
                f"{_clock()} [{self.started}/{self.total}] start {cell.task} "
                f"{cell_label(cell)} on {device} ({cell.epochs} epochs)"
            )

    def epoch(
        self,
        slot: int,
        cell: CellConfig,
        epoch: int,
        metrics: Mapping[str, float],
        validation_metric: str,
    ) -> None:
        self.running[slot] = (cell, epoch)
        if "epoch_time_s" in metrics:  # replayed epochs of a resumed cell carry theirs too
            self.epoch_seconds.setdefault(pace_of(cell), []).append(metrics["epoch_time_s"])
        shown = {
            "loss": format_value(metrics.get("train_loss")),
            "sigma": format_value(metrics.get("sigma_mean")),
            validation_metric: format_value(metrics.get(validation_metric)),
        }
        bar = self.epoch_bars.get(slot)
        if bar is not None:
            bar.update(epoch - bar.n)
            bar.set_postfix(shown, refresh=True)
        else:
            values = " ".join(f"{name}={value}" for name, value in shown.items())
            self.note(f"{_clock()}   {cell_label(cell)} epoch {epoch}/{cell.epochs} {values}")

    def cell_ended(self, slot: int, cell: CellConfig, outcome: str, seconds: float) -> None:
        self.ended += 1
        self.running.pop(slot, None)
        bar = self.epoch_bars.pop(slot, None)
        if bar is not None:
            bar.close()
        left = self.seconds_left()
        remaining = (
            ""
            if left is None or self.ended >= self.total
            else (f"; about {duration_text(left)} left")
        )
        if self.cells_bar is not None:
            self.cells_bar.update(1)
            if remaining:
                self.cells_bar.set_postfix_str(remaining[2:])
        self.note(
            f"{_clock()} [{self.ended}/{self.total}] {outcome} {cell.task} {cell_label(cell)} "
            f"in {seconds:.1f} s{remaining}"
        )

    def close(self) -> None:
        for bar in self.epoch_bars.values():
            bar.close()
        self.epoch_bars.clear()
        if self.cells_bar is not None:
            self.cells_bar.close()
            self.cells_bar = None


def _clock() -> str:
    return time.strftime("%H:%M:%S")
