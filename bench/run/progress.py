"""What `bench run` shows while it works: tqdm bars on a terminal, plain log lines elsewhere.

A bar over cells, and one bar over epochs per running cell (one per worker slot) showing the
training loss, the mean sigma and the task's validation metric. When stderr is not a terminal
(CI logs, `nohup`), every start, epoch and end is one line instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from bench.run.cell import CellConfig


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

    def note(self, text: str) -> None:
        """A line that does not break the bars."""
        if self.cells_bar is not None:
            self.cells_bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def cell_started(self, slot: int, cell: CellConfig, device: str) -> None:
        self.started += 1
        self.epochs[slot] = cell.epochs
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
        bar = self.epoch_bars.pop(slot, None)
        if bar is not None:
            bar.close()
        if self.cells_bar is not None:
            self.cells_bar.update(1)
        self.note(
            f"{_clock()} [{self.ended}/{self.total}] {outcome} {cell.task} {cell_label(cell)} "
            f"in {seconds:.1f} s"
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
